"""What every smslab locustfile shares: the command-line options (token, thresholds) and the
``quitting`` listener that turns missed thresholds into a non-zero exit code.

Imported by the locustfiles in this folder (locust puts a locustfile's folder on sys.path).
"""

from __future__ import annotations

import logging
import os

from locust import events

log = logging.getLogger("smslab.loadtests")


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    parser.add_argument("--token", default=os.environ.get("SMSLAB_TOKEN", ""),
                        help="smslab API token (default: $SMSLAB_TOKEN)", include_in_web_ui=False)
    parser.add_argument("--max-fail-ratio", type=float, default=0.01,
                        help="exit non-zero when more than this share of requests failed (default 0.01)")
    parser.add_argument("--max-p95-ms", type=float, default=1000.0,
                        help="exit non-zero when the 95th percentile response time of all requests is above this (ms)")
    parser.add_argument("--max-p99-ms", type=float, default=3000.0,
                        help="exit non-zero when the 99th percentile response time of all requests is above this (ms)")
    parser.add_argument("--min-rps", type=float, default=0.0,
                        help="exit non-zero when the average requests/s over the run is below this")


def check_thresholds(environment) -> list[str]:
    """The thresholds the run missed, as sentences (empty: all met)."""
    opts = environment.parsed_options
    total = environment.stats.total
    missed = []
    if total.num_requests == 0:
        return ["no request was made"]
    if total.fail_ratio > opts.max_fail_ratio:
        missed.append(f"failure ratio {total.fail_ratio:.4f} > {opts.max_fail_ratio}")
    p95 = total.get_response_time_percentile(0.95)
    if p95 > opts.max_p95_ms:
        missed.append(f"p95 {p95:.0f} ms > {opts.max_p95_ms:.0f} ms")
    p99 = total.get_response_time_percentile(0.99)
    if p99 > opts.max_p99_ms:
        missed.append(f"p99 {p99:.0f} ms > {opts.max_p99_ms:.0f} ms")
    runner = environment.runner
    if runner is not None and getattr(runner, "exceptions", None):
        missed.append(f"{sum(e['count'] for e in runner.exceptions.values())} exceptions in user code")
    if opts.min_rps and total.total_rps < opts.min_rps:
        missed.append(f"{total.total_rps:.1f} requests/s < {opts.min_rps}")
    return missed


@events.quitting.add_listener
def _exit_code(environment, **_kw) -> None:
    from locust.runners import WorkerRunner

    if isinstance(environment.runner, WorkerRunner):
        return  # the master judges the aggregated figures
    missed = check_thresholds(environment)
    if missed:
        log.error("thresholds missed: %s", "; ".join(missed))
        environment.process_exit_code = 1
    else:
        log.info("thresholds met")
        if environment.process_exit_code is None:
            environment.process_exit_code = 0


def auth_headers(environment) -> dict[str, str]:
    token = environment.parsed_options.token if environment.parsed_options else os.environ.get("SMSLAB_TOKEN", "")
    return {"Authorization": f"Bearer {token}"}
