"""The command line as a newcomer meets it: tokens (create, list, revoke, the one `smslab serve`
prints and keeps), a port already in use, the standalone carrier's bearer token, and README's
table of `smslab serve` options."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.pg_support import db_target, on_postgres
from tests.procs import free_port, smslab

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "gateway.cli"]


def _serve_token(db: str, port: int) -> str:
    """Start `smslab serve`, read the token it prints, stop it."""
    proc = subprocess.Popen([*CLI, "serve", "--port", str(port), "--db", str(db), "--clock", "virtual"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            m = re.match(r"API token for workspace 'default': (\S+)", line)
            if m:
                return m.group(1)
            if not line and proc.poll() is not None:
                break
        raise AssertionError("smslab serve printed no token")
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def _get(url: str, token: str | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_serve_keeps_its_token_until_it_is_revoked(tmp_path):
    db = db_target(tmp_path, "s.db")
    first = _serve_token(db, free_port())
    assert _serve_token(db, free_port()) == first
    listing = smslab("token", "list", "--db", str(db)).stdout
    row = next(line for line in listing.splitlines() if " default " in line)
    assert "yes" in row and "serve" in row and first not in listing  # never shows a token itself
    token_id = row.split()[0]
    out = smslab("token", "revoke", token_id, "--db", str(db)).stdout
    assert "revoked" in out
    assert _serve_token(db, free_port()) != first


def test_token_create_admin_list_and_revoke_by_token(tmp_path):
    db = db_target(tmp_path, "t.db")
    plain = smslab("token", "create", "--workspace", "acme", "--db", db).stdout.strip().splitlines()[-1]
    admin = smslab("token", "create", "--workspace", "ops", "--admin", "--db", db).stdout.strip().splitlines()[-1]
    rows = [line.split() for line in smslab("token", "list", "--db", db).stdout.splitlines()[1:]]
    assert [(r[1], r[2]) for r in rows] == [("acme", "no"), ("ops", "yes")]
    assert "revoked" in smslab("token", "revoke", plain, "--db", db).stdout
    missing = subprocess.run([*CLI, "token", "revoke", plain, "--db", db], capture_output=True, text=True)
    assert missing.returncode == 2 and "no token" in missing.stderr
    rows = [line.split() for line in smslab("token", "list", "--db", db).stdout.splitlines()[1:]]
    assert [r[1] for r in rows] == ["ops"] and admin.startswith("smslab_")


def test_a_revoked_token_stops_working_in_a_running_service(tmp_path):
    from tests.procs import Server, create_token

    db = db_target(tmp_path, "r.db")
    token = create_token(db, "w", admin=False)
    server = Server(db, "--clock", "virtual")
    try:
        assert server.request("GET", "/api/v1/tasks", token)[0] == 200
        smslab("token", "revoke", token, "--db", db)
        deadline = time.monotonic() + 10
        while server.request("GET", "/api/v1/tasks", token)[0] == 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert server.request("GET", "/api/v1/tasks", token)[0] == 401
    finally:
        server.stop()


def test_a_port_in_use_is_said_in_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([*CLI, "serve", "--port", str(port), "--db", db_target(tmp_path, "p.db")],
                              capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1 and "already in use" in proc.stderr
    if not on_postgres():
        assert not (tmp_path / "p.db").exists()  # nothing was created, no token minted


def test_the_standalone_carrier_needs_its_token(tmp_path):
    port = free_port()
    proc = subprocess.Popen([*CLI, "carrier", "--port", str(port), "--db", str(tmp_path / "c.db"), "--token", "s3cret"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, _ = _get(base + "/healthz")
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
        assert status == 200  # health stays public
        for path in ("/profile", "/presets", "/clock", "/ground-truth?task_id=1"):
            status, body = _get(base + path)
            assert status == 401 and body["error"]["code"] == "unauthorized", path
            assert _get(base + path, "wrong")[0] == 401
            assert _get(base + path, "s3cret")[0] == 200, path
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_the_carrier_refuses_to_listen_beyond_loopback_without_a_token(tmp_path):
    proc = subprocess.run([*CLI, "carrier", "--host", "0.0.0.0", "--port", str(free_port()), "--db", str(tmp_path / "c.db")],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "--token" in proc.stderr


def test_every_serve_option_is_in_the_readme():
    help_text = subprocess.run([*CLI, "serve", "--help"], capture_output=True, text=True, check=True).stdout
    options = sorted(set(re.findall(r"(--[a-z][a-z-]+)", help_text)) - {"--help"})
    readme = (ROOT / "README.md").read_text()
    missing = [o for o in options if f"`{o}" not in readme]
    assert not missing, f"README.md's configuration table lacks {missing}"
    assert len(options) >= 8


def test_a_wrong_profile_stops_serve_with_the_reason(tmp_path):
    """The sim plugin checks `--profile` while the app is built: one line, exit 2, nothing listens."""
    port = free_port()
    unknown = subprocess.run([*CLI, "serve", "--port", str(port), "--db", db_target(tmp_path, "a.db"), "--profile", "nope"],
                             capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines() == [
        "smslab: --profile 'nope' is neither a file nor a preset (black-hole, flaky, outage, perfect, realistic)"]
    bad = tmp_path / "bad.toml"
    bad.write_text("[outcomes]\ndelivered = 0\nfailed = 0\nmissing = 0\n")
    invalid = subprocess.run([*CLI, "serve", "--port", str(port), "--db", db_target(tmp_path, "b.db"), "--profile", str(bad)],
                             capture_output=True, text=True, timeout=60)
    assert invalid.returncode == 2
    assert invalid.stderr.strip().splitlines() == [
        f"smslab: --profile {str(bad)!r}: outcomes: at least one weight must be above 0"]
    assert "Traceback" not in unknown.stderr + invalid.stderr


def test_a_database_password_is_never_printed():
    from gateway.storage import shown

    assert shown("postgresql://bob:s3cret@db.example:5433/smslab?sslmode=require") == \
        "postgresql://bob:***@db.example:5433/smslab?sslmode=require"
    assert shown("postgresql:///smslab") == "postgresql:///smslab"
    assert shown("data/smslab.db") == "data/smslab.db"
