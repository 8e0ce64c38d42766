"""Providers' own HTTP APIs, spoken by ``smslab carrier`` on its HTTP port (SPEC §13): an
application points its official SDK at the carrier and gets the carrier's seeded behaviour,
callbacks and ground truth.

Each provider is a front end (``simulator.standalone.FrontEnd``) like the SMSC: it admits and
decides through the one carrier core, under the account's tenant, and delivers the receipts the
outbox holds for its accounts in the provider's own way (Twilio's status callbacks, Alibaba
Cloud's ``SmsReport`` pushes). On top of the SMSC's methods a provider front end has:

- ``routes()``: the aiohttp route definitions of its API, added to the carrier's application;
- ``authenticates(path)``: True for the paths it authenticates itself (HTTP Basic, a request
  signature), which the control API's bearer token then does not guard.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_arguments(parser: argparse.ArgumentParser, env) -> None:
    """The command-line options of the provider APIs."""
    parser.add_argument("--twilio", action="append", metavar="ACCOUNT_SID:AUTH_TOKEN",
                        help="a Twilio account of the Messages API (repeatable)")
    parser.add_argument("--aliyun", action="append", metavar="ACCESS_KEY_ID:ACCESS_KEY_SECRET",
                        help="an Alibaba Cloud SMS account (repeatable)")
    parser.add_argument("--aliyun-report-url", default=env.get("SMSLAB_ALIYUN_REPORT_URL"),
                        help="where Alibaba Cloud SMS delivery reports (SmsReport) and replies (SmsUp) are pushed")


def accounts_from(args: argparse.Namespace) -> tuple[list[tuple[str, str, str]], str | None]:
    """``(name, secret, protocol)`` for each provider account of the command line, or an error."""
    out = []
    for option, protocol, values in (("--twilio", "twilio", args.twilio), ("--aliyun", "aliyun", args.aliyun)):
        for spec in values or []:
            name, sep, secret = spec.partition(":")
            if not sep or not name or not secret or len(name) > 64 or len(secret) > 64:
                return [], f"{option} {spec!r}: give ID:SECRET (each at most 64 characters)"
            out.append((name, secret, protocol))
    return out, None


def front_ends(args: argparse.Namespace) -> list[Any]:
    """The provider front ends: always there (accounts may be added later through the control API)."""
    from .aliyun import AliyunApi
    from .twilio import TwilioApi

    return [TwilioApi(), AliyunApi(report_url=getattr(args, "aliyun_report_url", None))]
