"""Benchmarks with a same-run baseline. One command each:

    python -m loadtests.bench pipeline [--numbers 1000000] [--platform smpp --receipt-window 1000]
    python -m loadtests.bench ingest   [--receipts 500000 --batch 1000 --concurrency 8]
    python -m loadtests.bench webhooks [--seconds 10 --connections 64 --tool wrk|aiohttp]
    python -m loadtests.bench api      [--tasks 100000 --messages 5000000 --requests 500]
    python -m loadtests.bench smpp     [--messages 200000 --binds 4 --window 100]

Each starts its own server process(es) on 127.0.0.1 with a fresh SQLite file in a temporary
folder (``--workdir`` to keep it), prints the figure, the baseline measured in the same run and
the ratio. ``pipeline`` and ``ingest`` take ``--backend sqlite|postgres|both``: with postgres the
server runs ``smslab serve --db postgresql://…`` on a scratch database created and dropped here
(``--pg-url`` names the server), its baseline the raw PostgreSQL floor for the same rows
(``loadtests.pg_floor.hot_path_floor``: COPY in, UPDATE … FROM unnest of the results); ``both``
runs SQLite, then PostgreSQL, then prints both figures, both floors and both ratios. ``--spy FILE`` records the smslab server with py-spy (raw collapsed stacks) for
profiling. Every load loop is bounded by a count and a time limit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import msgspec

from gateway.clock import parse_rfc3339

from . import harness as H

HERE = Path(__file__).resolve().parent


def numbers(n: int) -> list[str]:
    return [f"+8613{i:09d}" for i in range(n)]


@contextlib.contextmanager
def workdir(arg: str | None):
    if arg:
        Path(arg).mkdir(parents=True, exist_ok=True)
        yield Path(arg)
    else:
        d = tempfile.mkdtemp(prefix="smslab-bench-")
        try:
            yield Path(d)
        finally:
            shutil.rmtree(d, ignore_errors=True)


def fmt(x: float, unit: str = "") -> str:
    if x >= 100:
        s = f"{x:,.0f}"
    elif x >= 1:
        s = f"{x:.2f}"
    else:
        s = f"{x:.3f}"
    return f"{s}{unit}"


# -- pipeline ---------------------------------------------------------------------------------
def sqlite_floor(path: Path, n: int) -> tuple[float, float]:
    """Raw sqlite3 executemany into the service's own messages table (same schema, indexes and
    pragmas): INSERT n rows in one transaction, then UPDATE the same n rows in one transaction."""
    H.init_db(str(path))
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA cache_size=-65536")
    nums = numbers(n)
    t0 = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO messages(id, task_id, number, parts, result) VALUES (?,1,?,1,3)", zip(range(1, n + 1), nums))
    conn.execute("COMMIT")
    t1 = time.perf_counter()
    now = time.time()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("UPDATE messages SET result=1, platform_id=?, receipt_at=? WHERE id=?",
                     ((f"sim-1-{i}", now, i) for i in range(1, n + 1)))
    conn.execute("COMMIT")
    t2 = time.perf_counter()
    conn.close()
    return t1 - t0, t2 - t1


async def _upload_csv(session: aiohttp.ClientSession, base: str, n: int) -> int:
    async def body():
        yield b"phone\n"
        chunk = 50_000
        for start in range(0, n, chunk):
            yield "".join(f"+8613{i:09d}\n" for i in range(start, min(n, start + chunk))).encode()

    async with session.post(f"{base}/api/v1/audiences?name=bench-{n}", data=body(), headers={"Content-Type": "text/csv"}) as r:
        data = await r.json()
        if r.status != 201:
            raise RuntimeError(f"audience upload: {r.status} {data}")
        return data["id"]


async def _pipeline_run(proc: H.Proc, n: int, timeout: float, poll: float, platform: str = "sim",
                        beside: tuple[H.Proc, ...] = ()) -> dict:
    """One task of ``n`` numbers, uploaded then sent; ``cpu`` (the server's), ``db_cpu``
    (PostgreSQL's processes) and ``beside_cpu`` (the ``beside`` processes', in order; each is
    recorded with py-spy too when it was started with one) are CPU seconds over the send alone,
    task created to completed."""
    headers = {"Authorization": f"Bearer {proc.token}"}
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=None)) as s:
        async with s.post(f"{proc.base}/api/v1/simulator/presets/perfect") as r:
            assert r.status == 200, await r.text()
        t = time.perf_counter()
        audience = await _upload_csv(s, proc.base, n)
        upload = time.perf_counter() - t
        task = {"name": f"bench pipeline {n}", "platform": platform, "sms_type": "marketing", "signature": "Shop",
                "content": {"text": "Spring sale: 20% off everything this weekend"}, "audience_id": audience,
                "send_type": "immediate", "sub_activities": []}
        for spied in (proc, *beside):
            spied.spy_start()
        cpu0, db_cpu0 = cpu_seconds(proc.pid), postgres_cpu_seconds()
        beside0 = [cpu_seconds(p.pid) for p in beside]
        t0 = time.perf_counter()
        async with s.post(f"{proc.base}/api/v1/tasks", json=task) as r:
            created = await r.json()
            assert r.status == 201, created
        timeline = []
        while True:
            async with s.get(f"{proc.base}/api/v1/tasks/{created['id']}") as r:
                row = await r.json()
            elapsed = time.perf_counter() - t0
            timeline.append((round(elapsed, 3), row["sent"], row["succeeded"] + row["failed"]))
            if row["status"] in ("completed", "failed", "rejected"):
                break
            if elapsed > timeout:
                raise RuntimeError(f"the task did not complete within {timeout:.0f} s: {row['status']}, {row['sent']} sent")
            await asyncio.sleep(poll)
        cpu, db_cpu = cpu_seconds(proc.pid) - cpu0, postgres_cpu_seconds() - db_cpu0
        beside_cpu = [cpu_seconds(p.pid) - c0 for p, c0 in zip(beside, beside0)]
        for spied in (proc, *beside):
            spied.spy_stop()
        polled = elapsed
        if row.get("completed_at") and row.get("created_at"):
            # the service's own timestamps (ms): the client's poll would add up to one interval
            elapsed = parse_rfc3339(row["completed_at"]) - parse_rfc3339(row["created_at"])
        return {"upload": upload, "elapsed": elapsed, "polled": polled, "row": row, "timeline": timeline,
                "cpu": cpu, "db_cpu": db_cpu, "beside_cpu": beside_cpu}


def bench_pipeline(args) -> dict:
    if args.platform == "smpp":
        return bench_pipeline_smpp(args)
    return by_backend(args, "pipeline", _pipeline_sqlite, _pipeline_postgres)


def _pipeline_sqlite(args) -> dict:
    with workdir(args.workdir) as wd:
        ins, upd = sqlite_floor(wd / "floor.db", args.numbers)
        db = str(wd / "pipeline.db")
        with H.smslab_server(db, profile="perfect", spy=args.spy) as proc:
            pid = proc.pid
            run = asyncio.run(_pipeline_run(proc, args.numbers, args.timeout, args.poll))
            rss = H.peak_rss_mb(pid)
    return _pipeline_report(args, run, rss, ins, upd, "insert", "update", "")


def _pipeline_postgres(args) -> dict:
    """The same task on ``smslab serve --db postgresql://…`` (a scratch database), next to the raw
    PostgreSQL floor for the same rows: COPY in, UPDATE … FROM unnest of their results."""
    from .pg_floor import hot_path_floor

    admin = H.pg_admin_url(args.pg_url)
    with workdir(args.workdir):
        ins, upd = asyncio.run(hot_path_floor(admin, args.numbers))
        with H.pg_scratch(admin) as url:
            # the simulated carrier keeps its books in the same database
            with H.smslab_server(url, profile="perfect", spy=args.spy) as proc:
                pid = proc.pid
                run = asyncio.run(_pipeline_run(proc, args.numbers, args.timeout, args.poll))
                rss = H.peak_rss_mb(pid)
    return _pipeline_report(args, run, rss, ins, upd, "COPY", "UPDATE … FROM unnest", " (--backend postgres)")


def write_timeline(path: str | None, run: dict) -> None:
    """The task's progress as the client polled it (``--timeline``): where a run stalled."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as f:
            f.write("seconds,sent,receipts_committed\n")
            f.writelines(f"{t},{a},{b}\n" for t, a, b in run["timeline"])


def _pipeline_report(args, run: dict, rss: float | None, ins: float, upd: float, ins_name: str, upd_name: str,
                     title: str) -> dict:
    floor = ins + upd
    row = run["row"]
    if row["status"] != "completed" or row["succeeded"] != args.numbers:
        raise SystemExit(f"pipeline: unexpected end state {row['status']} sent={row['sent']} succeeded={row['succeeded']}")
    rate = args.numbers / run["elapsed"]
    floor_rate = args.numbers / floor
    write_timeline(args.timeline, run)
    rows = [
        ("numbers", f"{args.numbers:,}", f"{args.numbers:,}", ""),
        ("send → completed (s; task created_at → completed_at)", fmt(run["elapsed"]),
         fmt(floor) + f" ({ins_name} " + fmt(ins) + f" + {upd_name} " + fmt(upd) + ")",
         f"{run['elapsed'] / floor:.2f}× the floor"),
        ("numbers/s", fmt(rate), fmt(floor_rate), f"{rate / floor_rate:.2f}"),
        ("peak RSS of the server (MB)", fmt(rss or float("nan")), "", ""),
        ("CPU µs per number: the server" + (" / PostgreSQL's processes" if ins_name == "COPY" else ""),
         f"{run['cpu'] * 1e6 / args.numbers:.1f}" + (f" / {run['db_cpu'] * 1e6 / args.numbers:.1f}"
                                                      if ins_name == "COPY" else ""), "", ""),
        ("seen completed by the client's poll (s)", fmt(run["polled"]), "", ""),
        ("audience upload (s, not timed above)", fmt(run["upload"]), "", ""),
    ]
    print(H.table(f"pipeline{title}: one task through the in-process carrier, perfect profile", rows))
    return {"rate": rate, "floor_rate": floor_rate, "elapsed": run["elapsed"], "floor": floor, "rss_mb": rss}


PG_TARGET = 2.0  # issue 13, item 7: PostgreSQL within 2× of its raw floor


def by_backend(args, name: str, sqlite_fn, postgres_fn) -> dict:
    """``--backend sqlite`` (the default, output as before), ``postgres``, or ``both``: SQLite
    then PostgreSQL in the same run, then a table with both figures, both floors, both ratios."""
    if args.backend == "sqlite":
        return sqlite_fn(args)
    if args.backend == "postgres":
        result = postgres_fn(args)
        print(f"\ntarget: within {PG_TARGET:.0f}× of the PostgreSQL floor "
              f"{_mark(result['floor_rate'] / result['rate'] <= PG_TARGET)}")
        return result
    results = {"sqlite": sqlite_fn(args)}
    print()
    results["postgres"] = postgres_fn(args)
    unit = "numbers/s" if name == "pipeline" else "receipts/s"
    head = ("backend", unit, f"database floor, {unit}", "time × the floor")
    rows = [(backend, fmt(r["rate"]), fmt(r["floor_rate"]), f"{r['floor_rate'] / r['rate']:.2f}×")
            for backend, r in results.items()]
    if name == "ingest":
        head += ("bare server, decoded/s",)
        rows = [(*row, fmt(r["bare_rate"])) for row, r in zip(rows, results.values())]
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    print(f"\n## {name}: SQLite and PostgreSQL, same run\n")
    print("\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)]))
    pg = results["postgres"]
    print(f"\ntarget: PostgreSQL within {PG_TARGET:.0f}× of its floor {_mark(pg['floor_rate'] / pg['rate'] <= PG_TARGET)}")
    return results


PIPELINE_SMPP_TARGET = 15_000  # numbers/s end to end through SMPP (issue 14), and at least a third of sim's


def bench_pipeline_smpp(args) -> dict:
    """The same task twice in one run: on the in-process ``sim`` platform (the baseline), then on
    the ``smpp`` platform through ``smslab carrier --smpp-port`` (perfect profile: every message
    delivered, its receipt due at once), the gateway and the SMSC as two processes on these two
    cores. Checked against the carrier's ground truth: every number once, every receipt acked."""
    n = args.numbers
    with workdir(args.workdir) as wd:
        # the baseline swings more from run to run than the smpp figure (50–120 k on the same
        # machine within minutes): its median of a few runs, each on a fresh server and database
        sims = []
        for k in range(max(1, args.baseline_runs)):
            with H.smslab_server(str(wd / f"sim-{k}.db"), profile="perfect") as proc:
                sims.append(asyncio.run(_pipeline_run(proc, n, args.timeout, args.poll)))
        sim = sorted(sims, key=lambda run: run["elapsed"])[len(sims) // 2]
        with smpp_carrier(str(wd / "carrier.db"), spy=args.spy_smsc) as carrier:
            check_perfect(carrier.base)
            _http_json("PATCH", f"{carrier.base}/accounts/{SMPP_ACCOUNT[0]}",
                       {"window": max(args.window, 100), "max_binds": max(args.binds * 2, 10),
                        "receipt_window": args.receipt_window})
            url = (f"smpp://{SMPP_ACCOUNT[0]}:{SMPP_ACCOUNT[1]}@127.0.0.1:{carrier.smpp_port}"
                   f"?binds={args.binds}&window={args.window}")
            env = {"SMSLAB_SMPP_URL": url, "SMSLAB_DISPATCH_BATCH": str(args.batch)}
            with H.smslab_server(str(wd / "gateway.db"), profile="perfect", spy=args.spy, env=env) as gw:
                # CPU from before the upload (the figure of earlier rounds: it counts the CSV's
                # parsing and number checks too) and during the send alone (task created to
                # completed), which is what bounds the rate
                cpu0_gw, cpu0_c = cpu_seconds(gw.pid), cpu_seconds(carrier.pid)
                smpp = asyncio.run(_pipeline_run(gw, n, args.timeout, args.poll, platform="smpp", beside=(carrier,)))
                cpu_gw, cpu_c = cpu_seconds(gw.pid) - cpu0_gw, cpu_seconds(carrier.pid) - cpu0_c
                send_gw, (send_c,) = smpp["cpu"], smpp["beside_cpu"]
                rss = H.peak_rss_mb(gw.pid)
            truth = ground_truth_counts(carrier.base, SMPP_ACCOUNT[0], time.monotonic() + max(120.0, args.timeout))
    for name, run in [*(("sim", run) for run in sims), ("smpp", smpp)]:
        row = run["row"]
        if row["status"] != "completed" or row["succeeded"] != n:
            raise SystemExit(f"pipeline ({name}): unexpected end state {row['status']} sent={row['sent']} succeeded={row['succeeded']}")
    write_timeline(args.timeline, smpp)
    truth_ok = truth["messages"] == n and truth["delivered"] == n and truth["sent"] == n and truth["acked"] == n
    rate, base_rate = n / smpp["elapsed"], n / sim["elapsed"]
    sim_rates = [n / run["elapsed"] for run in sims]
    rate_ok, share_ok = rate >= PIPELINE_SMPP_TARGET, rate >= base_rate / 3
    rows = [
        ("numbers (one task, perfect profile)", f"{n:,}", f"{n:,}", ""),
        ("send → completed (s; task created_at → completed_at)", fmt(smpp["elapsed"]), fmt(sim["elapsed"]), ""),
        (f"numbers/s (target ≥ {PIPELINE_SMPP_TARGET:,} and ≥ ⅓ of sim)", f"{fmt(rate)} {_mark(rate_ok)}", fmt(base_rate),
         f"{rate / base_rate:.2f} {_mark(share_ok)}"),
        ("sim's runs in order (numbers/s; the baseline is their median)", "",
         ", ".join(fmt(r) for r in sim_rates), ""),
        ("CPU s: gateway / SMSC", f"{cpu_gw:.1f} / {cpu_c:.1f}", "", ""),
        ("CPU µs per number: gateway / SMSC", f"{cpu_gw * 1e6 / n:.1f} / {cpu_c * 1e6 / n:.1f}", "", ""),
        ("… during the send only (task created → completed)", f"{send_gw * 1e6 / n:.1f} / {send_c * 1e6 / n:.1f}", "", ""),
        ("peak RSS of the gateway (MB)", fmt(rss or float("nan")), "", ""),
        ("ground truth: messages, delivered, receipts sent, acked",
         f"{truth['messages']:,}, {truth['delivered']:,}, {truth['sent']:,}, {truth['acked']:,} {_mark(truth_ok)}", "", ""),
    ]
    print(H.table(f"pipeline --platform smpp: one task through SMPP ({args.binds} binds × window {args.window}, "
                  f"the SMSC's receipt window {args.receipt_window:,}) "
                  "against the same task on the in-process sim platform, same run", rows))
    print(f"\ntargets: ≥ {PIPELINE_SMPP_TARGET:,} numbers/s {_mark(rate_ok)}, ≥ ⅓ of sim's rate {_mark(share_ok)}")
    if not truth_ok:
        raise SystemExit(f"pipeline smpp: the ground truth does not show {n:,} delivered messages, each receipt acked: {truth}")
    return {"rate": rate, "sim_rate": base_rate, "sim_rates": sim_rates, "cpu_gateway_s": cpu_gw, "cpu_smsc_s": cpu_c,
            "send_cpu_gateway_s": send_gw, "send_cpu_smsc_s": send_c, "ground_truth": truth}


# -- ingest -----------------------------------------------------------------------------------
def receipt_bodies(task_id: int, first: int, count: int, batch: int, at: float) -> list[bytes]:
    enc = msgspec.json.Encoder()
    out = []
    for start in range(0, count, batch):
        out.append(enc.encode({"receipts": [
            {"platform_id": f"sim-{task_id}-{first + i}", "status": "delivered" if i % 10 else "failed", "at": at,
             **({} if i % 10 else {"code": "UNDELIV", "message": "the message could not be delivered"})}
            for i in range(start, min(count, start + batch))
        ]}))
    return out


async def post_all(base: str, token: str | None, bodies: list[bytes], concurrency: int, timeout: float) -> tuple[float, int, int, list]:
    """POST every body with ``concurrency`` requests in flight; returns (seconds, ok, failed, timeline)."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    url = f"{base}/api/v1/platforms/sim/receipts"
    queue = list(reversed(bodies))
    ok = bad = 0
    done_receipts = 0
    timeline: list[tuple[float, int]] = []
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=120)) as s:
        t0 = time.perf_counter()
        deadline = t0 + timeout

        async def worker():
            nonlocal ok, bad, done_receipts
            while queue and time.perf_counter() < deadline:
                body = queue.pop()
                async with s.post(url, data=body, headers=headers) as r:
                    data = await r.read()
                    if r.status == 200:
                        ok += 1
                        done_receipts += msgspec.json.decode(data)["accepted"]
                    else:
                        bad += 1
                        if bad <= 3:
                            print(f"  {r.status}: {data[:200]!r}", file=sys.stderr)

        async def sampler():
            while True:
                timeline.append((round(time.perf_counter() - t0, 3), done_receipts))
                await asyncio.sleep(0.1)

        sam = asyncio.create_task(sampler())
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
        sam.cancel()
        timeline.append((round(elapsed, 3), done_receipts))
    return elapsed, ok, bad, timeline


def bench_ingest(args) -> dict:
    return by_backend(args, "ingest", _ingest_sqlite, _ingest_postgres)


def _ingest_sqlite(args) -> dict:
    n = args.receipts
    with workdir(args.workdir) as wd:
        db = str(wd / "ingest.db")
        H.init_db(db)
        task_id, first = H.seed_pending_task(db, n)
        bodies = receipt_bodies(task_id, first, n, args.batch, time.time())
        bare = _ingest_bare(args, bodies)
        with H.smslab_server(db, spy=args.spy) as proc:
            proc.spy_start()
            run = asyncio.run(post_all(proc.base, proc.token, bodies, args.concurrency, args.timeout))
            rss = H.peak_rss_mb(proc.pid)
        counts = H.task_counts(db, task_id)
        # ``--backend both`` sets the database's own floor next to PostgreSQL's: the UPDATE half of
        # sqlite_floor for the same number of rows (the bare server stays the table's baseline)
        floor = sqlite_floor(wd / "floor.db", n)[1] if args.backend == "both" else None
    return _ingest_report(args, len(bodies), bare, run, rss, counts, floor, "", "UPDATE executemany, one transaction")


def _ingest_postgres(args) -> dict:
    """The same bodies against ``smslab serve --db postgresql://…`` (a scratch database seeded
    with the pending task), next to the bare server and the raw PostgreSQL floor for the same
    rows (UPDATE … FROM unnest in the sink's batches)."""
    from .pg_floor import hot_path_floor

    n = args.receipts
    admin = H.pg_admin_url(args.pg_url)
    with workdir(args.workdir):
        floor = asyncio.run(hot_path_floor(admin, n))[1]
        with H.pg_scratch(admin) as url:
            task_id, first = H.pg_seed_pending_task(url, n)
            bodies = receipt_bodies(task_id, first, n, args.batch, time.time())
            bare = _ingest_bare(args, bodies)
            with H.smslab_server(url, spy=args.spy) as proc:
                proc.spy_start()
                run = asyncio.run(post_all(proc.base, proc.token, bodies, args.concurrency, args.timeout))
                rss = H.peak_rss_mb(proc.pid)
            counts = H.pg_task_counts(url, task_id)
    return _ingest_report(args, len(bodies), bare, run, rss, counts, floor, " (--backend postgres)",
                          "UPDATE … FROM unnest, batches of 4,000")


def _ingest_bare(args, bodies: list[bytes]) -> tuple:
    with H.bare_server() as bare:
        return asyncio.run(post_all(bare.base, None, bodies, args.concurrency, args.timeout))


def _ingest_report(args, posts: int, bare: tuple, run: tuple, rss: float | None, counts: tuple, floor: float | None,
                   title: str, floor_name: str) -> dict:
    n = args.receipts
    b_elapsed, b_ok, b_bad, _ = bare
    s_elapsed, s_ok, s_bad, timeline = run
    status, sent, succeeded, failed = counts
    if s_bad or b_bad or s_ok != posts:
        raise SystemExit(f"ingest: {s_bad} smslab / {b_bad} bare requests failed, {s_ok}/{posts} answered")
    if succeeded + failed != n:
        raise SystemExit(f"ingest: only {succeeded + failed} of {n} receipts are committed")
    rate, b_rate = n / s_elapsed, n / b_elapsed
    if args.timeline:
        Path(args.timeline).parent.mkdir(parents=True, exist_ok=True)
        with open(args.timeline, "w") as f:
            f.write("seconds,receipts_committed\n")
            f.writelines(f"{t},{c}\n" for t, c in timeline)
    rows = [
        ("receipts", f"{n:,} in {posts} POSTs of {args.batch}", "same bodies", ""),
        ("seconds", fmt(s_elapsed), fmt(b_elapsed), ""),
        ("receipts/s committed (baseline: decoded)", fmt(rate), fmt(b_rate), f"{rate / b_rate:.2f}"),
    ]
    if floor is not None:
        rows.append((f"receipts/s committed (baseline: the database floor, {floor_name})", fmt(rate), fmt(n / floor),
                     f"{floor / s_elapsed:.2f}; {s_elapsed / floor:.2f}× the floor"))
    rows += [
        ("end state", f"{status}: {succeeded:,} succeeded + {failed:,} failed", "", ""),
        ("peak RSS of the server (MB)", fmt(rss or float("nan")), "", ""),
    ]
    print(H.table(f"ingest{title}: batched receipts over HTTP, {args.concurrency} requests in flight (aiohttp client)", rows))
    return {"rate": rate, "bare_rate": b_rate, "floor_rate": n / floor if floor else None}


# -- webhooks ---------------------------------------------------------------------------------
WRK_SCRIPT = HERE / "webhook.lua"
_WRK_RPS = __import__("re").compile(r"Requests/sec:\s+([\d.]+)")
_WRK_NON2XX = __import__("re").compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_WRK_ERR = __import__("re").compile(r"Socket errors:.*")


def run_wrk(base: str, token: str, task_id: int, first: int, count: int, seconds: int, connections: int) -> tuple[float, int, str]:
    env = {**os.environ, "SMSLAB_TOKEN": token, "SMSLAB_TASK": str(task_id), "SMSLAB_FIRST": str(first),
           "SMSLAB_COUNT": str(count), "SMSLAB_AT": f"{time.time():.3f}"}
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency", "-s", str(WRK_SCRIPT),
            f"{base}/api/v1/platforms/sim/receipts"]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = float(_WRK_RPS.search(out).group(1))
    m = _WRK_NON2XX.search(out)
    errs = int(m.group(1)) if m else 0
    return rps, errs, out


async def _aiohttp_singles(base: str, token: str, task_id: int, first: int, count: int, seconds: float, connections: int) -> tuple[float, int]:
    at = time.time()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    url = f"{base}/api/v1/platforms/sim/receipts"
    sent = bad = 0
    conn = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=conn) as s:
        t0 = time.perf_counter()
        deadline = t0 + seconds

        async def worker():
            nonlocal sent, bad
            while time.perf_counter() < deadline and sent < count:
                i = sent
                sent += 1
                body = b'{"receipts":[{"platform_id":"sim-%d-%d","status":"delivered","at":%.3f}]}' % (task_id, first + i, at)
                async with s.post(url, data=body, headers=headers) as r:
                    await r.read()
                    bad += r.status != 200

        await asyncio.gather(*(worker() for _ in range(connections)))
        return sent / (time.perf_counter() - t0), bad


def bench_webhooks(args) -> dict:
    tool = args.tool or ("wrk" if shutil.which("wrk") else "aiohttp")
    count = args.messages
    with workdir(args.workdir) as wd:
        db = str(wd / "webhooks.db")
        H.init_db(db)
        task_id, first = H.seed_pending_task(db, count)

        def load(base: str, token: str) -> tuple[float, int]:
            if tool == "wrk":
                rps, errs, out = run_wrk(base, token, task_id, first, count, args.seconds, args.connections)
                if args.verbose:
                    print(out)
                return rps, errs
            return asyncio.run(_aiohttp_singles(base, token, task_id, first, count, args.seconds, args.connections))

        with H.bare_server() as bare:
            b_rps, b_err = load(bare.base, "none")
        with H.smslab_server(db, spy=args.spy) as proc:
            proc.spy_start()
            s_rps, s_err = load(proc.base, proc.token)
        status, sent, succeeded, failed = H.task_counts(db, task_id)
    if s_err or b_err:
        raise SystemExit(f"webhooks: {s_err} smslab / {b_err} bare requests answered non-2xx")
    rows = [
        ("load generator", f"{tool}, 1 thread, {args.connections} connections, {args.seconds} s", "same", ""),
        ("single-receipt POSTs/s (baseline: decoded)", fmt(s_rps), fmt(b_rps), f"{s_rps / b_rps:.2f}"),
        ("receipts committed", f"{succeeded + failed:,} of {count:,} seeded", "", ""),
    ]
    print(H.table("webhooks: one receipt per POST, acknowledged after commit", rows))
    return {"rate": s_rps, "bare_rate": b_rps}


# -- api --------------------------------------------------------------------------------------
def seed_api(path: str, tasks: int, messages: int) -> int:
    """``tasks`` completed tasks and ``messages`` message rows; task 1 holds a fifth of the rows
    (the big task whose numbers are paged), the rest are spread over the others."""

    H.init_db(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")
    now = time.time()
    big = messages // 5 if tasks > 1 else messages
    rest = messages - big
    per = rest // max(1, tasks - 1)
    extra = rest - per * max(1, tasks - 1)
    sizes = [big] + [per + (1 if i < extra else 0) for i in range(tasks - 1)]
    conn.execute("BEGIN")
    conn.execute("INSERT INTO audiences(workspace_id, name, source, size, ready, created_at) VALUES (1, 'bench', 'upload', 1, 1, ?)", (now,))
    rows = []
    for i, size in enumerate(sizes):
        s = int(size * 0.9)
        f = int(size * 0.07)
        rows.append(H.task_row(f"bench task {i + 1}", "completed", size, s, f, now))
    conn.executemany(f"INSERT INTO tasks({H.TASK_COLUMNS}) VALUES ({','.join('?' * 25)})", rows)
    conn.execute("COMMIT")
    # the messages table's indexes as the migrations left them, dropped for the bulk load and built after it
    indexes = conn.execute("SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name='messages' AND sql IS NOT NULL").fetchall()
    for name, _ in indexes:
        conn.execute(f"DROP INDEX {name}")
    reason = json.dumps([["UNDELIV", "the message could not be delivered"]])

    def gen():
        mid = 0
        for t, size in enumerate(sizes, start=1):
            for j in range(size):
                mid += 1
                r = j % 100
                res = 1 if r < 90 else 2 if r < 97 else 0
                yield (mid, t, f"+8613{mid:09d}", 1, res, f"sim-{t}-{mid}", now, now if res else None, reason if res == 2 else None)

    conn.execute("BEGIN")
    conn.executemany("INSERT INTO messages(id, task_id, number, parts, result, platform_id, submitted_at, receipt_at, reasons)"
                     " VALUES (?,?,?,?,?,?,?,?,?)", gen())
    conn.execute("COMMIT")
    for _, stmt in indexes:
        conn.execute(stmt)
    conn.execute("ANALYZE")
    conn.close()
    return big


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def _latencies(base: str, token: str | None, paths: list[str]) -> list[float]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    out = []
    async with aiohttp.ClientSession(headers=headers) as s:
        for path in paths[:20]:  # warm-up
            async with s.get(base + path) as r:
                await r.read()
        for path in paths:
            t = time.perf_counter()
            async with s.get(base + path) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"GET {path}: {r.status}")
            out.append((time.perf_counter() - t) * 1000)
    return out


def _sqlite_latencies(path: str, queries: list[tuple[str, tuple]]) -> list[float]:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA cache_size=-65536")
    out = []
    for sql, params in queries[:20]:
        conn.execute(sql, params).fetchall()
    for sql, params in queries:
        t = time.perf_counter()
        conn.execute(sql, params).fetchall()
        out.append((time.perf_counter() - t) * 1000)
    conn.close()
    return out


def bench_api(args) -> dict:
    from gateway import paging
    from gateway.storage.sqlite.tasks import ROW_COLUMNS as _ROW_COLUMNS

    rnd = random.Random(7)
    n = args.requests
    with workdir(args.workdir) as wd:
        db = str(wd / "api.db")
        if not (args.workdir and Path(db).exists()):
            t = time.perf_counter()
            big = seed_api(db, args.tasks, args.messages)
            print(f"seeded {args.tasks:,} tasks and {args.messages:,} message rows in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        else:
            big = sqlite3.connect(db).execute("SELECT sent FROM tasks WHERE id=1").fetchone()[0]
        T = args.tasks
        cursors = [rnd.randint(2, T + 1) for _ in range(n)]
        details = [rnd.randint(1, T) for _ in range(n)]
        msg_cursors = [rnd.randint(0, max(0, big - 60)) for _ in range(n)]
        small = [rnd.randint(2, T) if T > 1 else 1 for _ in range(n)]
        endpoints = {
            "task list (50 rows, random page)": (
                [f"/api/v1/tasks?limit=50&cursor={paging.encode(c)}" for c in cursors],
                [(f"SELECT {_ROW_COLUMNS} FROM tasks WHERE workspace_id=? AND id < ? ORDER BY id DESC LIMIT ?", (1, c, 51)) for c in cursors]),
            "task list, first page": (
                ["/api/v1/tasks?limit=50"] * n,
                [(f"SELECT {_ROW_COLUMNS} FROM tasks WHERE workspace_id=? ORDER BY id DESC LIMIT ?", (1, 51))] * n),
            "task detail": (
                [f"/api/v1/tasks/{d}" for d in details],
                [(f"SELECT {_ROW_COLUMNS} FROM tasks WHERE id=? AND workspace_id=?", (d, 1)) for d in details]),
            f"numbers page (50 rows, task of {big:,})": (
                [f"/api/v1/tasks/1/messages?limit=50&cursor={paging.encode(c)}" for c in msg_cursors],
                [("SELECT id, number, result, receipt_at, reasons, parts FROM messages WHERE task_id=?"
                  " AND id > ? ORDER BY id LIMIT ?", (1, c, 51)) for c in msg_cursors]),
            f"numbers page ?result=failed (task of {big:,})": (
                [f"/api/v1/tasks/1/messages?limit=50&result=failed&cursor={paging.encode(c)}" for c in msg_cursors],
                [("SELECT id, number, result, receipt_at, reasons, parts FROM messages WHERE task_id=? AND result IN (2) AND result <> 1"
                  " AND id > ? ORDER BY id LIMIT ?", (1, c, 51)) for c in msg_cursors]),
            "numbers page (small task)": (
                [f"/api/v1/tasks/{t}/messages?limit=50" for t in small],
                [("SELECT id, number, result, receipt_at, reasons, parts FROM messages WHERE task_id=?"
                  " AND id > ? ORDER BY id LIMIT ?", (t, -1, 51)) for t in small]),
        }
        results = {}
        with H.bare_server() as bare:
            bare_lat = asyncio.run(_latencies(bare.base, None, ["/ping"] * n))
        with H.smslab_server(db, spy=args.spy) as proc:
            proc.spy_start()
            for name, (paths, _) in endpoints.items():
                results[name] = asyncio.run(_latencies(proc.base, proc.token, paths))
        sql_lat = {name: _sqlite_latencies(db, queries) for name, (_, queries) in endpoints.items()}
    rows = [("bare aiohttp GET /ping p50 / p99 (ms)", "", f"{_pct(bare_lat, 50):.2f} / {_pct(bare_lat, 99):.2f}", "")]
    out = {}
    for name, lat in results.items():
        p50, p99 = _pct(lat, 50), _pct(lat, 99)
        q50, q99 = _pct(sql_lat[name], 50), _pct(sql_lat[name], 99)
        floor99 = q99 + _pct(bare_lat, 99)
        rows.append((f"{name} p50 / p99 (ms)", f"{p50:.2f} / {p99:.2f}", f"sqlite3 {q50:.2f} / {q99:.2f}",
                     f"p99 {p99 / floor99:.1f}× (sqlite3 + bare)"))
        out[name] = (p50, p99)
    print(H.table(f"api: {args.tasks:,} tasks, {args.messages:,} message rows, {n} sequential requests per endpoint", rows))
    return out


# -- smpp -------------------------------------------------------------------------------------
SMPP_ACCOUNT = ("bench", "secret")
SMPP_TOKEN = "bench-token"  # the carrier's control API token
SMPP_TARGET_RATE = 20_000  # messages/s with receipts, on the project's 2-core machine
SMPP_TARGET_CPU_US = 40.0  # SMSC CPU per message: submit_sm, its resp, the receipt, its resp, the ground truth row
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_times(pid: int) -> tuple[float, float]:
    """(utime, stime) of a process (all its threads) from /proc/PID/stat, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()  # fields[0] is field 3 (state); utime is 14, stime 15
    return int(fields[11]) / _CLK_TCK, int(fields[12]) / _CLK_TCK


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    return sum(cpu_times(pid))


def postgres_cpu_seconds() -> float:
    """utime + stime of every ``postgres`` process on this machine (backends, WAL writer,
    checkpointer, autovacuum), in seconds: the database server's share of a run when it runs here.
    A backend that exits during the run takes its share with it (the server's pool stays open)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() != "postgres":
                    continue
            total += cpu_seconds(int(entry))
        except OSError:  # gone meanwhile
            continue
    return total


def settle(pid: int, step: float = 0.25, quiet: float = 0.01, limit: float = 10.0) -> float:
    """Wait until the process stops working (at most ``quiet`` CPU seconds over ``step``: one
    tick), so what it deferred for the run (flushes, writes) is counted; its CPU seconds then."""
    last = cpu_seconds(pid)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        time.sleep(step)
        now = cpu_seconds(pid)
        if now - last <= quiet:
            return now
        last = now
    return last


def wait_tcp(port: int, proc: H.Proc, timeout: float = 60.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.popen.poll() is not None:
                output = proc.popen.stdout.read() if proc.popen.stdout else ""
                raise RuntimeError(f"the server exited with {proc.popen.returncode} before listening on {port}:\n{output}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listened on 127.0.0.1:{port} within {timeout:.0f} s")
            time.sleep(0.05)


@contextlib.contextmanager
def smpp_bare_server(raw: bool = False) -> "Iterator[H.Proc]":
    port = H.free_port()
    proc = H.Proc([sys.executable, "-m", "loadtests.smpp_bare", "--port", str(port), *(["--raw"] if raw else [])], port)
    try:
        wait_tcp(port, proc)
        yield proc
    finally:
        proc.stop()


@contextlib.contextmanager
def smpp_carrier(db: str, journal_max: int | None = None, spy: str | None = None) -> "Iterator[H.Proc]":
    """``smslab carrier --smpp-port`` with the ``perfect`` preset and the bench account; the
    Proc's ``port`` is the HTTP control API, ``smpp_port`` the SMSC."""
    http, smpp = H.free_port(), H.free_port()
    argv = [sys.executable, "-m", "gateway.cli", "carrier", "--host", "127.0.0.1", "--port", str(http), "--smpp-port", str(smpp),
            "--db", db, "--profile", "perfect", "--account", ":".join(SMPP_ACCOUNT), "--token", SMPP_TOKEN]
    if journal_max is not None:
        argv += ["--journal-max", str(journal_max)]
    proc = H.Proc(argv, http, spy=spy)
    proc.smpp_port = smpp
    try:
        H.wait_http(proc.base + "/healthz", proc=proc)
        wait_tcp(smpp, proc)
        yield proc
    finally:
        proc.stop()


def _http_json(method: str, url: str, body: dict | None = None) -> dict:
    import urllib.request

    req = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {SMPP_TOKEN}"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def check_perfect(base: str) -> None:
    """The carrier's profile is the one the figure assumes: every message delivered, its receipt
    due at once, no duplicates, no review, no throttling, no session chaos."""
    prof = _http_json("GET", base + "/profile")
    delay, outcomes = prof["receipt_delay"], prof["outcomes"]
    wrong = []
    if not (delay.get("kind") == "fixed" and delay.get("seconds") == 0):
        wrong.append(f"receipt_delay {delay}")
    if not (outcomes.get("delivered", 0) > 0 and not outcomes.get("failed") and not outcomes.get("missing")):
        wrong.append(f"outcomes {outcomes}")
    for key in ("duplicate_rate", "throughput_limit", "submit_latency"):
        if prof.get(key):
            wrong.append(f"{key} {prof[key]}")
    if (prof.get("moderation") or {}).get("review_seconds"):
        wrong.append(f"moderation {prof['moderation']}")
    if wrong:
        raise SystemExit(f"smpp: the carrier's 'perfect' profile is not what the benchmark assumes: {'; '.join(wrong)}")


def ground_truth_counts(base: str, account: str, deadline: float) -> dict:
    """Pages through ``GET /ground-truth?account=`` (1,000 a page) and counts messages, outcomes,
    distinct message ids and receipts by delivery state."""
    counts = {"messages": 0, "delivered": 0, "ids": 0, "receipts": 0, "duplicates": 0, "sent": 0, "acked": 0, "pages": 0}
    ids: set[str] = set()
    cursor = None
    while time.monotonic() < deadline:
        url = f"{base}/ground-truth?account={account}&limit=1000" + (f"&cursor={cursor}" if cursor else "")
        page = _http_json("GET", url)
        counts["pages"] += 1
        for item in page["items"]:
            counts["messages"] += 1
            counts["delivered"] += item["outcome"] == "delivered"
            ids.update(item.get("message_ids") or ())
            for r in item["receipts"]:
                counts["receipts"] += 1
                counts["duplicates"] += bool(r.get("duplicate"))
                counts["sent"] += r.get("delivery") == "sent"
                counts["acked"] += r.get("acked_at") is not None
        cursor = page.get("next_cursor")
        if not cursor:
            break
    else:
        raise SystemExit("smpp: reading the ground truth took too long")
    counts["ids"] = len(ids)
    return counts


def _smpp_run(proc: H.Proc, port: int, args) -> dict:
    """The load against one responder; adds the responder's CPU (at completion and settled), its
    peak RSS and the wall time of the run to the client's figures."""
    from . import smpp_load

    marks: dict[str, float] = {}

    def started() -> None:
        marks["user0"], marks["sys0"] = cpu_times(proc.pid)
        marks["cpu0"] = marks["user0"] + marks["sys0"]

    def done() -> None:
        marks["cpu1"] = cpu_seconds(proc.pid)

    result = asyncio.run(smpp_load.run("127.0.0.1", port, *SMPP_ACCOUNT, messages=args.messages, binds=args.binds,
                                       window=args.window, timeout=args.timeout, on_start=started, on_done=done))
    if not result["complete"]:
        raise SystemExit(f"smpp: the load did not complete within {args.timeout:.0f} s on {proc.popen.args[2]}: "
                         f"{result['responses']:,} responses, {result['receipts']:,} receipts of {args.messages:,}")
    settled = settle(proc.pid)
    user, system = cpu_times(proc.pid)
    n = max(1, result["accepted"])
    result["server_user_sys_us_per_message"] = ((user - marks["user0"]) * 1e6 / n, (system - marks["sys0"]) * 1e6 / n)
    result["server_cpu_s"] = settled - marks["cpu0"]
    result["server_cpu_us_per_message"] = (settled - marks["cpu0"]) * 1e6 / n
    result["server_cpu_us_at_completion"] = (marks["cpu1"] - marks["cpu0"]) * 1e6 / n
    result["server_cpu_share"] = (marks["cpu1"] - marks["cpu0"]) / result["elapsed_s"]
    result["server_rss_mb"] = H.peak_rss_mb(proc.pid)
    return result


def _mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def bench_smpp(args) -> dict:
    n = args.messages
    with workdir(args.workdir) as wd:
        with smpp_bare_server(raw=args.bare == "raw") as bare:
            b = _smpp_run(bare, bare.port, args)
        with smpp_carrier(str(wd / "carrier.db"), journal_max=args.journal_max, spy=args.spy) as proc:
            check_perfect(proc.base)
            # the account's own limits must not refuse the load (ESME_RTHROTTLED past its window, ESME_RBINDFAIL
            # past max_binds); the control API leaves out a field at its default (window 100, max_binds 10)
            account = _http_json("GET", f"{proc.base}/accounts/{SMPP_ACCOUNT[0]}")
            window, max_binds = account.get("window", 100), account.get("max_binds", 10)
            if args.window > window or args.binds > max_binds:
                _http_json("PATCH", f"{proc.base}/accounts/{SMPP_ACCOUNT[0]}",
                           {"window": max(args.window, window), "max_binds": max(args.binds, max_binds)})
            idle0 = cpu_seconds(proc.pid)
            time.sleep(1.0)
            idle = cpu_seconds(proc.pid) - idle0
            proc.spy_start()
            try:
                s = _smpp_run(proc, proc.smpp_port, args)
            finally:
                proc.spy_stop()
            truth = ground_truth_counts(proc.base, SMPP_ACCOUNT[0], time.monotonic() + max(120.0, args.timeout))
    refused = {**b["refused"], **s["refused"]}
    if refused or b["accepted"] != n or s["accepted"] != n:
        raise SystemExit(f"smpp: not every submit_sm was accepted (bare {b['accepted']:,}, smslab {s['accepted']:,} of {n:,}): {refused}")
    truth_ok = (truth["messages"] == n and truth["delivered"] == n and truth["ids"] == n and truth["receipts"] == n
                and truth["sent"] == n and truth["acked"] == n and not truth["duplicates"])
    rate_ok = s["messages_per_s"] >= SMPP_TARGET_RATE
    cpu_ok = s["server_cpu_us_per_message"] <= SMPP_TARGET_CPU_US
    bl, sl = b["latency_ms"], s["latency_ms"]
    baseline = "bare asyncio responder" + (", headers only" if args.bare == "raw" else ", project codec")
    rows = [
        ("load (loadtests/smpp_load.py, 1 process)", f"{n:,} submit_sm, {args.binds} transceiver binds × window {args.window}",
         "same", ""),
        (f"messages/s, each receipt acknowledged (target ≥ {SMPP_TARGET_RATE:,})", f"{fmt(s['messages_per_s'])} {_mark(rate_ok)}",
         fmt(b["messages_per_s"]), f"{s['messages_per_s'] / b['messages_per_s']:.2f}"),
        (f"SMSC CPU µs per message, utime+stime, settled (target ≤ {SMPP_TARGET_CPU_US:.0f})",
         f"{s['server_cpu_us_per_message']:.1f} {_mark(cpu_ok)}", f"{b['server_cpu_us_per_message']:.1f}",
         f"{s['server_cpu_us_per_message'] / max(1e-9, b['server_cpu_us_per_message']):.2f}"),
        ("of which user / system (µs)", "%.1f / %.1f" % s["server_user_sys_us_per_message"],
         "%.1f / %.1f" % b["server_user_sys_us_per_message"], ""),
        ("SMSC CPU µs per message at completion / share of a core during the run",
         f"{s['server_cpu_us_at_completion']:.1f} / {100 * s['server_cpu_share']:.0f}%",
         f"{b['server_cpu_us_at_completion']:.1f} / {100 * b['server_cpu_share']:.0f}%", ""),
        ("submit latency p50 / p99 (ms)", f"{sl['p50']:.2f} / {sl['p99']:.2f}", f"{bl['p50']:.2f} / {bl['p99']:.2f}",
         f"p99 {sl['p99'] / max(1e-9, bl['p99']):.2f}"),
        ("load generator CPU µs per message / share of a core", f"{s['client_cpu_us_per_message']:.1f} / {100 * s['client_cpu_share']:.0f}%",
         f"{b['client_cpu_us_per_message']:.1f} / {100 * b['client_cpu_share']:.0f}%", ""),
        ("load generator alone could drive (messages/s, 10⁶ / its µs)", fmt(1e6 / max(1e-9, s["client_cpu_us_per_message"])),
         fmt(1e6 / max(1e-9, b["client_cpu_us_per_message"])), ""),
        ("seconds (submit phase / until the last receipt)", f"{s['submit_phase_s']:.2f} / {s['elapsed_s']:.2f}",
         f"{b['submit_phase_s']:.2f} / {b['elapsed_s']:.2f}", ""),
        ("peak RSS of the SMSC process (MB)", fmt(s["server_rss_mb"] or float("nan")), fmt(b["server_rss_mb"] or float("nan")), ""),
        ("SMSC idle CPU before the run (share of a core)", f"{100 * idle:.1f}%", "", ""),
        ("ground truth: messages, delivered, ids, receipts sent, acked",
         f"{truth['messages']:,}, {truth['delivered']:,}, {truth['ids']:,}, {truth['sent']:,}, {truth['acked']:,} {_mark(truth_ok)}",
         f"{b['receipts']:,} receipts acked by the client", ""),
    ]
    title = f"smpp: submit_sm with a receipt each, smslab carrier --smpp-port (perfect) against a {baseline}"
    print(H.table(title, rows))
    client_limit = s["client_cpu_share"] > 0.85
    print(f"\ntargets: ≥ {SMPP_TARGET_RATE:,} messages/s {_mark(rate_ok)}, ≤ {SMPP_TARGET_CPU_US:.0f} µs SMSC CPU per message {_mark(cpu_ok)}")
    print(f"load generator: {100 * s['client_cpu_share']:.0f}% of a core against smslab, "
          f"{100 * b['client_cpu_share']:.0f}% against the baseline: "
          + ("it may be the limit of this run" if client_limit else "not the limit of this run"))
    if not truth_ok:
        raise SystemExit(f"smpp: the ground truth does not show exactly {n:,} messages with one acknowledged receipt each: {truth}")
    return {"smslab": s, "bare": b, "ground_truth": truth, "idle_cpu_share": idle}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="bench", required=True)

    def common(sp):
        sp.add_argument("--workdir", default=None, help="keep the databases here (default: a temporary folder)")
        sp.add_argument("--spy", default=None, help="record the smslab server with py-spy into this file (raw format)")
        sp.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds of load")

    def backend(sp):
        sp.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="sqlite",
                        help="the gateway's database: a SQLite file (default), a scratch PostgreSQL database, or both"
                             " in turn (then a table of both figures, both floors, both ratios)")
        sp.add_argument("--pg-url", default=None,
                        help="with postgres/both: a database on the server to create the scratch ones from (default:"
                             " the local server as this user over the Unix socket, then 127.0.0.1:5432, then user postgres)")

    sp = sub.add_parser("pipeline")
    common(sp)
    sp.add_argument("--numbers", type=int, default=1_000_000)
    sp.add_argument("--poll", type=float, default=0.1)
    sp.add_argument("--timeline", default=None, help="write seconds,sent,receipts_committed CSV here")
    sp.add_argument("--platform", choices=["sim", "smpp"], default="sim",
                    help="smpp: the task through smslab carrier --smpp-port, next to the same task on sim in the same run")
    sp.add_argument("--binds", type=int, default=2, help="with --platform smpp: SMPP sessions")
    sp.add_argument("--window", type=int, default=500,
                    help="with --platform smpp: requests per session (docs/benchmarks.md: 500 against 300, 300 against 100)")
    sp.add_argument("--baseline-runs", type=int, default=3,
                    help="with --platform smpp: runs of the same task on sim, the baseline being their median")
    sp.add_argument("--batch", type=int, default=1000, help="with --platform smpp: SMSLAB_DISPATCH_BATCH")
    sp.add_argument("--receipt-window", type=int, default=1000,
                    help="with --platform smpp: receipts the SMSC sends a bind ahead of its answers (the account's receipt_window)")
    sp.add_argument("--spy-smsc", default=None,
                    help="with --platform smpp: record the SMSC (smslab carrier) with py-spy into this file (raw format)")
    backend(sp)
    sp = sub.add_parser("ingest")
    common(sp)
    sp.add_argument("--receipts", type=int, default=500_000)
    sp.add_argument("--batch", type=int, default=1000)
    sp.add_argument("--concurrency", type=int, default=8)
    sp.add_argument("--timeline", default=None)
    backend(sp)
    sp = sub.add_parser("webhooks")
    common(sp)
    sp.add_argument("--seconds", type=int, default=10)
    sp.add_argument("--connections", type=int, default=64)
    sp.add_argument("--messages", type=int, default=300_000, help="pending messages seeded (receipts beyond are duplicates)")
    sp.add_argument("--tool", choices=["wrk", "aiohttp"], default=None)
    sp.add_argument("--verbose", action="store_true")
    sp = sub.add_parser("api")
    common(sp)
    sp.add_argument("--tasks", type=int, default=100_000)
    sp.add_argument("--messages", type=int, default=5_000_000)
    sp.add_argument("--requests", type=int, default=500)
    sp = sub.add_parser("smpp")
    common(sp)
    sp.add_argument("--messages", type=int, default=200_000)
    sp.add_argument("--binds", type=int, default=4)
    sp.add_argument("--window", type=int, default=100, help="unanswered submit_sm per bind")
    sp.add_argument("--bare", choices=["codec", "raw"], default="codec",
                    help="baseline: the bare responder with the project's PDU codec (default) or headers only")
    sp.add_argument("--journal-max", type=int, default=None, help="the carrier's --journal-max (default: its own default)")
    args = p.parse_args(argv)
    fn = {"pipeline": bench_pipeline, "ingest": bench_ingest, "webhooks": bench_webhooks, "api": bench_api,
          "smpp": bench_smpp}[args.bench]
    fn(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
