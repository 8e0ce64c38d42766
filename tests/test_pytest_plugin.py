"""The pytest plugin smslab installs (``pytest11`` entry point ``smslab``), run the way another
project runs it: test files written to a temporary folder and run by pytester."""

from __future__ import annotations

import json
import os

import pytest

from gateway.testing.pytest_plugin import GatewayProcess

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _no_outside_testbed(monkeypatch: pytest.MonkeyPatch):
    """The inner runs start their own processes unless a test says otherwise, whatever this
    shell's environment points at."""
    for name in ("SMSLAB_URL", "SMSLAB_TOKEN", "SMSLAB_CARRIER_URL", "SMSLAB_CARRIER_TOKEN", "SMSLAB_CARRIER_SMPP_PORT",
                 "SMSLAB_CARRIER_ACCOUNT"):
        monkeypatch.delenv(name, raising=False)


INNER = ("-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function")

TEN_LINES = """
def test_a_task_goes_out_as_the_carrier_decided(smslab_gateway):
    gw = smslab_gateway
    audience = gw.create_audience("friends", [f"+86138001{i:05d}" for i in range(20)])
    task = gw.create_task(name="hello", audience_id=audience["id"], platform="sim", text="Hello")
    gw.advance(72 * 3600)
    gw.wait_for_task(task["id"], "completed")
    gw.assert_matches_ground_truth(task["id"])
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie of a child is not alive either
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def test_the_ten_line_test_passes_with_the_installed_plugin(pytester: pytest.Pytester):
    """In a fresh interpreter: the fixtures come from the entry point, nothing else is configured."""
    pytester.makepyfile(test_ten=TEN_LINES)
    result = pytester.runpytest_subprocess(*INNER)
    result.assert_outcomes(passed=1)


def test_a_failing_test_shows_the_logs_and_the_differences_and_still_cleans_up(pytester: pytest.Pytester, tmp_path):
    record = tmp_path / "procs.json"
    pytester.makepyfile(test_fails=f"""
        import json

        def test_tampered(smslab_gateway, smslab_carrier):
            gw = smslab_gateway
            with open({str(record)!r}, "w") as f:
                json.dump([[p.proc.pid, str(p.dir)] for p in (gw.process, smslab_carrier.process)], f)
            gw.put_profile(moderation={{"review_seconds": 0}}, receipt_delay={{"kind": "fixed", "seconds": 3600}},
                           outcomes={{"delivered": 1, "failed": 0, "missing": 0}})
            audience = gw.create_audience("a", ["+8613800138000", "+8613800138001"])
            task = gw.create_task(name="t", audience_id=audience["id"], text="Hi")
            gw.advance(1)
            victim = gw.ground_truth(task["id"])["items"][0]
            gw.push_receipts("sim", [{{"platform_id": victim["platform_id"], "status": "failed", "code": "UNDELIV"}}])
            gw.advance(73 * 3600)
            gw.assert_matches_ground_truth(task["id"])
    """)
    result = pytester.runpytest(*INNER)
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "smslab gateway log (http://127.0.0.1:" in out and "smslab carrier log (http://127.0.0.1:" in out
    result.stdout.fnmatch_lines([
        "*task 1 does not match the carrier's ground truth (1 difference(s)):*",
        "*+8613800138000: gateway failed UNDELIV vs carrier expected succeeded*",
        "*API token for workspace 'default':*",
        "*SMPP 3.4 on 127.0.0.1:*",
    ])
    for pid, folder in json.loads(record.read_text()):
        assert not _alive(pid) and not os.path.exists(folder), (pid, folder)


def test_a_running_gateway_is_used_with_smslab_url(pytester: pytest.Pytester):
    with GatewayProcess() as running:
        pytester.makepyfile(test_url=f"""
            def test_it_is_the_running_one(smslab_gateway):
                assert smslab_gateway.base_url == {running.base_url!r}
                assert not hasattr(smslab_gateway, "process")  # nothing was started
                before = smslab_gateway.get_clock()["now"]
                smslab_gateway.advance(60)
                assert smslab_gateway.get_clock()["now"] > before
                assert smslab_gateway.create_audience("from-outside", ["+8613800138000"])["size"] == 1
        """)
        result = pytester.runpytest(*INNER, f"--smslab-url={running.base_url}",
                                    f"--smslab-token={running.token}")
        result.assert_outcomes(passed=1)
        assert [a["name"] for a in running.client().list_audiences()["items"]] == ["from-outside"]
        result = pytester.runpytest(*INNER, f"--smslab-url={running.base_url}")
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(["*--smslab-url needs --smslab-token*"])


def test_scope_session_shares_the_processes_and_the_clock_moves_both(pytester: pytest.Pytester):
    pytester.makepyfile(test_scope="""
        seen = []

        def test_one(smslab_gateway, smslab_carrier, smslab_clock):
            seen.append((smslab_gateway.base_url, smslab_carrier.base_url))
            before = [smslab_gateway.get_clock()["now"], smslab_carrier.get_clock()["now"]]
            smslab_clock.advance(3600)
            after = smslab_clock.now()
            assert after[0] > before[0] and after[1] > before[1]
            assert smslab_carrier.smpp_port and smslab_carrier.system_id and smslab_carrier.password
            assert smslab_carrier.get_account(smslab_carrier.system_id)["system_id"] == smslab_carrier.system_id

        def test_two(smslab_gateway, smslab_carrier):
            seen.append((smslab_gateway.base_url, smslab_carrier.base_url))

        def test_three():
            assert len(seen) == 2
            print("SHARED" if seen[0] == seen[1] else "SEPARATE")
    """)
    session = pytester.runpytest(*INNER, "-s", "--smslab-scope=session")
    session.assert_outcomes(passed=3)
    session.stdout.fnmatch_lines(["*SHARED*"])
    pytester.makeini("[pytest]\nsmslab_scope = function\n")
    separate = pytester.runpytest(*INNER, "-s")
    separate.assert_outcomes(passed=3)
    separate.stdout.fnmatch_lines(["*SEPARATE*"])


def test_extra_arguments_of_the_started_processes_come_from_the_ini(pytester: pytest.Pytester):
    pytester.makeini("[pytest]\nsmslab_gateway_args = --profile perfect\nsmslab_carrier_args = --profile black-hole\n")
    pytester.makepyfile(test_args="""
        def test_profiles(smslab_gateway, smslab_carrier):
            assert smslab_gateway.list_presets()["active"] == "perfect"
            assert smslab_carrier.get_profile()["outcomes"]["missing"] == 1
    """)
    pytester.runpytest(*INNER).assert_outcomes(passed=1)


def test_a_carrier_token_that_begins_with_a_dash_still_starts():
    # secrets.token_urlsafe gives one now and then; passed as "--token -x…" argparse took it for an option
    from gateway.testing.pytest_plugin import CarrierProcess

    with CarrierProcess(token="-Wi3mES2anlk524TYKOt4w") as carrier:
        assert carrier.client().health()["status"] == "ok"


def test_smslab_db_names_the_file_the_started_gateway_keeps(pytester: pytest.Pytester, tmp_path):
    db = tmp_path / "kept.db"
    pytester.makepyfile(test_db="""
        def test_it(smslab_gateway):
            smslab_gateway.create_audience("kept", ["+8613800138000"])
    """)
    pytester.runpytest_subprocess(*INNER, f"--smslab-db={db}").assert_outcomes(passed=1)
    assert db.is_file()  # the gateway's data, there to look at after the run


async def test_a_postgresql_server_gives_each_gateway_a_fresh_database_dropped_at_stop():
    import asyncpg

    from gateway.testing.pytest_plugin import PostgresDatabase
    from tests.pg_support import admin_url

    server = await admin_url()
    first, second = PostgresDatabase(server), PostgresDatabase(server)
    urls = [first.create(), second.create()]
    try:
        assert urls[0] != urls[1]
        for url in urls:
            conn = await asyncpg.connect(url)
            await conn.close()
    finally:
        first.drop()
        second.drop()
    for url in urls:
        with pytest.raises(asyncpg.InvalidCatalogNameError):
            await asyncpg.connect(url)
