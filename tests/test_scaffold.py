"""``smslab plugin new NAME`` writes a distribution that installs and passes its own tests.

The generated distribution is installed editable, without dependencies and without downloads,
into a throwaway virtual environment created with ``--system-site-packages`` (so it sees smslab,
pytest and the rest of this environment, while the shared environment never sees the plugin's
entry point), then its own test suite runs there in a subprocess, then it is uninstalled.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import site
import sys
from pathlib import Path

import pytest

from gateway import scaffold

ROOT = Path(__file__).resolve().parent.parent
NAME = "scaffoldtest"


def _can_build_in_place() -> bool:
    """``--no-build-isolation`` needs setuptools >= 64, and ``wheel`` below setuptools 70.1."""
    try:
        import setuptools
    except ImportError:
        return False
    version = tuple(int(p) for p in setuptools.__version__.split(".")[:2] if p.isdigit())
    if version < (64, 0):
        return False
    return version >= (70, 1) or importlib.util.find_spec("wheel") is not None


def _run(args: list[str], cwd: Path | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, PIP_NO_INPUT="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONDONTWRITEBYTECODE="1")
    env.pop("SMSLAB_PLUGINS", None)
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _scaffold_command(name: str, directory: Path) -> list[str]:
    """``smslab plugin new`` when the CLI has it, else the module's own entry."""
    from gateway import cli

    parser = cli.build_parser()
    try:
        parser.parse_args(["plugin", "new", name, "--dir", str(directory)])
    except SystemExit:
        return [sys.executable, "-m", "gateway.scaffold", "new", name, "--dir", str(directory)]
    return [sys.executable, "-m", "gateway.cli", "plugin", "new", name, "--dir", str(directory)]


def test_plugin_new_installs_and_passes_its_own_tests(tmp_path):
    made = _run(_scaffold_command(NAME, tmp_path), cwd=ROOT)
    assert made.returncode == 0, made.stderr
    dist = tmp_path / f"smslab-{NAME}"
    assert (dist / "pyproject.toml").is_file()
    assert f'{NAME} = "smslab_{NAME}.plugin"' in (dist / "pyproject.toml").read_text()

    venv = tmp_path / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    _see_this_environment(python)

    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    install = [*pip, "install", "--no-deps", "--no-index", "-e", str(dist)]
    if _can_build_in_place():
        install.insert(install.index("--no-deps"), "--no-build-isolation")
    else:
        # setuptools too old (or without `wheel`) to build here: let pip build in isolation
        # from the configured index (local file indexes or a mirror); no --no-index then
        install.remove("--no-index")
    installed = _run(install)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    try:
        # the entry point is visible in the venv only
        shown = _run([str(python), "-c", "from gateway.plugins import build_plugin_manager as b; "
                                          "print(sorted(n for n, _ in b().list_name_plugin()))"])
        assert shown.returncode == 0, shown.stderr
        assert NAME in shown.stdout
        tests = _run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=dist)
        assert tests.returncode == 0, tests.stdout + tests.stderr
        assert " passed" in tests.stdout and "failed" not in tests.stdout
    finally:
        removed = _run([*pip, "uninstall", "-y", f"smslab-{NAME}"])
        assert removed.returncode == 0, removed.stderr
    still = _run([str(python), "-c", f"import importlib.metadata as m; m.distribution('smslab-{NAME}')"])
    assert still.returncode != 0, "the plugin was not uninstalled"


def _see_this_environment(python: Path) -> None:
    """Let the throwaway venv import what this interpreter can (smslab, msgspec, pytest...).

    ``--system-site-packages`` would not do: from inside a venv it points at the *base*
    interpreter's packages, not this environment's. A ``.pth`` line that runs
    ``site.addsitedir`` on each of this interpreter's site directories does, including their own
    ``.pth`` files (editable installs)."""
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    dirs = [d for d in (*site.getsitepackages(), site.getusersitepackages(), str(ROOT)) if Path(d).is_dir()]
    Path(purelib).mkdir(parents=True, exist_ok=True)
    (Path(purelib) / "_outer_environment.pth").write_text(
        "import site; " + "; ".join(f"site.addsitedir({d!r})" for d in dirs) + "\n")


def test_add_plugin_commands_wires_into_a_parser(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="smslab")
    scaffold.add_plugin_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["plugin", "new", "acme-sms", "--dir", str(tmp_path)])
    assert args.func(args) == 0
    root = tmp_path / "smslab-acme-sms"
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) == sorted([
        ".gitignore", "README.md", "pyproject.toml", "smslab_acme_sms/__init__.py", "smslab_acme_sms/platform.py",
        "smslab_acme_sms/plugin.py", "tests/test_conformance.py", "tests/test_plugin.py",
    ])
    text = (root / "smslab_acme_sms" / "platform.py").read_text()
    assert 'name = "acme-sms"' in text and "class AcmeSmsPlatform(Platform)" in text
    compile(text, "platform.py", "exec")
    out = capsys.readouterr().out
    assert f"pip install -e '{root}[test]'" in out  # the plugin's own tests need its test extra
    # a second run refuses to overwrite
    assert args.func(args) == 2
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["", "Acme", "1abc", "a b", "class", "x" * 41, "a/b"])
def test_plugin_names_are_checked(tmp_path, bad):
    with pytest.raises(scaffold.ScaffoldError):
        scaffold.create(bad, tmp_path)
    assert not any(tmp_path.iterdir())


def test_rendered_files_compile():
    for path, text in scaffold.render("demo").items():
        if path.endswith(".py"):
            compile(text, path, "exec")
