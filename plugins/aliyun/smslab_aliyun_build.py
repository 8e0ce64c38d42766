"""A tiny in-tree PEP 517 / PEP 660 build backend for smslab-aliyun.

Why not setuptools: an offline ``pip install --no-build-isolation -e plugins/aliyun`` must work
with whatever is installed, and setuptools before 70.1 cannot build any wheel (editable ones
included) without the separate ``wheel`` package. This backend needs only the standard library:
it reads ``[project]`` from pyproject.toml and writes the wheel (or the editable wheel, a ``.pth``
pointing at this folder) itself. Pure Python, one package, no compiled parts.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tarfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
PACKAGE = "smslab_aliyun"
TAG = "py3-none-any"


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _dist_name(project: dict) -> str:
    return project["name"].replace("-", "_")


def _dist_info(project: dict) -> str:
    return f"{_dist_name(project)}-{project['version']}.dist-info"


def _metadata(project: dict) -> str:
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {project['name']}",
        f"Version: {project['version']}",
        f"Summary: {project.get('description', '')}",
    ]
    if "requires-python" in project:
        lines.append(f"Requires-Python: {project['requires-python']}")
    if isinstance(project.get("license"), dict) and "text" in project["license"]:
        lines.append(f"License: {project['license']['text']}")
    for req in project.get("dependencies", []):
        lines.append(f"Requires-Dist: {req}")
    for extra, reqs in project.get("optional-dependencies", {}).items():
        lines.append(f"Provides-Extra: {extra}")
        for req in reqs:
            lines.append(f'Requires-Dist: {req}; extra == "{extra}"')
    readme = ROOT / project.get("readme", "README.md")
    body = ""
    if readme.is_file():
        lines.append("Description-Content-Type: text/markdown")
        body = readme.read_text()
    return "\n".join(lines) + "\n\n" + body


def _entry_points(project: dict) -> str:
    out = []
    for group, items in project.get("entry-points", {}).items():
        out.append(f"[{group}]")
        out += [f"{name} = {target}" for name, target in items.items()]
        out.append("")
    scripts = project.get("scripts", {})
    if scripts:
        out.append("[console_scripts]")
        out += [f"{name} = {target}" for name, target in scripts.items()]
        out.append("")
    return "\n".join(out)


def _wheel_file() -> str:
    return f"Wheel-Version: 1.0\nGenerator: smslab_aliyun_build\nRoot-Is-Purelib: true\nTag: {TAG}\n"


def _meta_files(project: dict) -> dict[str, bytes]:
    info = _dist_info(project)
    return {
        f"{info}/METADATA": _metadata(project).encode(),
        f"{info}/WHEEL": _wheel_file().encode(),
        f"{info}/entry_points.txt": _entry_points(project).encode(),
        f"{info}/top_level.txt": f"{PACKAGE}\n".encode(),
    }


def _write_wheel(wheel_directory: str, files: dict[str, bytes], project: dict) -> str:
    name = f"{_dist_name(project)}-{project['version']}-{TAG}.whl"
    record_name = f"{_dist_info(project)}/RECORD"
    records = []
    path = Path(wheel_directory) / name
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for arcname, data in files.items():
            zf.writestr(arcname, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            records.append(f"{arcname},sha256={digest},{len(data)}")
        records.append(f"{record_name},,")
        zf.writestr(record_name, "\n".join(records) + "\n")
    return name


def _package_files() -> dict[str, bytes]:
    files = {}
    for p in sorted((ROOT / PACKAGE).rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo"):
            files[p.relative_to(ROOT).as_posix()] = p.read_bytes()
    return files


# -- PEP 517 --------------------------------------------------------------------------------------------
def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    project = _project()
    for arcname, data in _meta_files(project).items():
        target = Path(metadata_directory) / arcname
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return _dist_info(project)


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    project = _project()
    return _write_wheel(wheel_directory, {**_package_files(), **_meta_files(project)}, project)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    """PEP 660: a wheel whose only module is a .pth that puts this folder on sys.path."""
    project = _project()
    pth = {f"__editable__.{_dist_name(project)}.pth": (str(ROOT) + os.linesep).encode()}
    return _write_wheel(wheel_directory, {**pth, **_meta_files(project)}, project)


def build_sdist(sdist_directory, config_settings=None):
    project = _project()
    base = f"{_dist_name(project)}-{project['version']}"
    name = f"{base}.tar.gz"
    with tarfile.open(Path(sdist_directory) / name, "w:gz") as tar:
        for rel in ["pyproject.toml", "README.md", "smslab_aliyun_build.py"]:
            if (ROOT / rel).is_file():
                tar.add(ROOT / rel, arcname=f"{base}/{rel}")
        for rel in _package_files():
            tar.add(ROOT / rel, arcname=f"{base}/{rel}")
        for p in sorted((ROOT / "tests").glob("*.py")):
            tar.add(p, arcname=f"{base}/tests/{p.name}")
        info = tarfile.TarInfo(f"{base}/PKG-INFO")
        data = _metadata(project).encode()
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return name
