"""The simulated carrier as its own server: ``smslab carrier`` (or ``python -m simulator.server``).

Its HTTP API behaves like an SMS vendor's: a client submits batches of messages (``POST
/submit``), each with an idempotency key, and gets receipts as signed webhooks at its callback URL
(see :mod:`gateway.wire.webhooks`). The same process can speak SMPP 3.4 (``--smpp-port``): both
are front ends of one carrier core (``simulator/standalone.py``), so one profile and seed give the
same outcomes, codes, delays and duplicates whichever way a message came, and the same as the
in-process ``sim`` platform for the same decision key (``"{task_id}:{number}"``). Everything is
kept in the carrier's own SQLite file, so a restarted carrier carries on where it stopped.

Endpoints (JSON; errors are ``{"error": {"code", "message", "field"?}}``)::

    POST /submit                      {"messages": [{key, number, text, parts, task_id}]} -> {"results": [{key, platform_id}]}
    GET  /messages/{platform_id}      delivery details of one message
    GET|PUT|PATCH /profile            the active behaviour profile
    GET  /presets, POST /presets/{n}  the shipped presets; make one active
    POST /moderate                    {"text"} -> {"reasons": [...]}
    GET  /clock, POST /clock/advance  {"seconds"} (virtual clock only; 409 on the wall clock)
    GET  /ground-truth?task_id=|account=   paged decisions and receipts with their delivery state
    GET  /ground-truth/summary?task_id=
    GET  /accounts, GET|PUT|PATCH|DELETE /accounts/{system_id}   SMPP (and provider) accounts
    GET  /dialects                    the receipt dialect presets
    GET  /journal?account=&command=   every PDU in and out (bounded by --journal-max)
    POST /mo                          {"account", "from", "to", "text"}: a mobile-originated message
    POST /deliver                     push every due receipt now and answer when done
    POST /reset                       forget every message and receipt (?account= for one account's)
    GET  /healthz

With ``--token`` every endpoint but /healthz needs ``Authorization: Bearer <token>``. See
docs/carrier.md and docs/smpp.md.
"""

from __future__ import annotations

import argparse
import hmac
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import msgspec
from aiohttp import web

from gateway import paging
from gateway.clock import to_rfc3339
from gateway.errors import Conflict, Invalid, NotFound, ServiceError
from gateway.gc_tuning import gen0_from_env, tune_gc
from gateway.ports import port_taken
from gateway.web.bodies import read
from gateway.wire.smpp.receipts import PRESETS as DIALECT_PRESETS

from . import profile as profiles
from . import providers
from .accounts import AccountChange, AccountError, Password, SystemId, apply_change
from .standalone import MAX_SUBMIT_BATCH, StandaloneCarrier, SubmitIn

log = logging.getLogger("smslab.carrier")

CarrierServer = StandaloneCarrier  # the name this class had before the core was shared


class SubmitBody(msgspec.Struct, forbid_unknown_fields=True):
    messages: list[SubmitIn]


class AdvanceBody(msgspec.Struct, forbid_unknown_fields=True):
    seconds: Annotated[float, msgspec.Meta(ge=0, le=10 * 365 * 86400)]


# An address travels as an SMPP C-string of at most 20 octets (and in the providers' APIs as a
# phone number or a sender name): printable ASCII only, so no NUL ends it early and every
# character is one octet.
_ADDRESS = Annotated[str, msgspec.Meta(min_length=1, max_length=20, pattern=r"^[ -~]+$")]


class _CliAccount(msgspec.Struct):
    """``--account SYSTEM_ID:PASSWORD``, checked as the control API checks an account."""

    name: SystemId
    password: Password


class MoBody(msgspec.Struct, forbid_unknown_fields=True, rename={"from_": "from"}):
    account: str
    from_: _ADDRESS
    to: _ADDRESS
    text: Annotated[str, msgspec.Meta(max_length=1600)]


class ModerateBody(msgspec.Struct, forbid_unknown_fields=True):
    text: str


def _json(data: Any, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(body=msgspec.json.encode(data), status=status, content_type="application/json", headers=headers)


def _error(status: int, code: str, message: str, headers: dict | None = None) -> web.Response:
    return _json({"error": {"code": code, "message": message}}, status=status, headers=headers)


def _decode(raw: bytes, type_):
    if not raw.strip():
        raise Invalid("body: a JSON body is required", field="body")
    try:
        return msgspec.json.decode(raw, type=type_)
    except msgspec.ValidationError as exc:
        from gateway.web.bodies import field_error

        raise field_error(exc) from None
    except msgspec.DecodeError as exc:
        raise Invalid(f"body: malformed JSON ({exc})", field="body") from None


def load_profile(spec: str) -> profiles.Profile:
    """A profile from a TOML/JSON file or a preset name (raises ProfileError or KeyError)."""
    if Path(spec).is_file():
        return profiles.load_file(spec)
    return profiles.load_preset(spec)


# -- the web app ------------------------------------------------------------------------------------
carrier_key = web.AppKey("carrier", StandaloneCarrier)
routes = web.RouteTableDef()


PUBLIC_PATHS = ("/healthz",)


@web.middleware
async def _auth(request: web.Request, handler):
    """With a ``--token``, every endpoint but /healthz needs ``Authorization: Bearer <token>``.
    Without one the carrier listens on loopback only (``_run`` refuses anything else)."""
    carrier = request.app[carrier_key]
    token = carrier.token
    if token is None or request.path in PUBLIC_PATHS:
        return await handler(request)
    if any(getattr(front, "authenticates", None) and front.authenticates(request.path) for front in carrier.front_ends):
        return await handler(request)  # a provider's API: its own credentials (Basic auth, a signature)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), token.encode()):
        response = _error(401, "unauthorized", "the carrier's API needs 'Authorization: Bearer <token>' with its --token")
        response.headers["WWW-Authenticate"] = 'Bearer realm="smslab carrier"'
        return response
    return await handler(request)


@web.middleware
async def _errors(request: web.Request, handler):
    try:
        return await handler(request)
    except ServiceError as exc:
        body = {"code": exc.code, "message": exc.message}
        if exc.field:
            body["field"] = exc.field
        return _json({"error": body}, status=exc.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.status, "error", exc.reason, headers={k: v for k, v in exc.headers.items() if k == "Allow"})
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error(500, "internal_error", "the carrier hit an unexpected error; it was logged")


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    c = request.app[carrier_key]
    await c.db.fetchone("SELECT 1")
    return _json({"status": "ok", "clock": c.clock.mode, "now": to_rfc3339(c.clock.now()), "callback": c.callback,
                  "webhooks": c.stats, "protocols": ["http", *(f.protocol for f in c.front_ends)],
                  "receipts_queued": len(c.core.due), "outbox_open": len(c.outbox.items),
                  "outbox_busy": c.outbox.busy(c.clock.now())})


@routes.post("/submit")
async def submit(request: web.Request) -> web.Response:
    c = request.app[carrier_key]
    raw = await read(request)
    if raw.lstrip().startswith(b"["):  # a bare list of messages is accepted too
        items = _decode(raw, list[SubmitIn])
    else:
        items = _decode(raw, SubmitBody).messages
    if len(items) > MAX_SUBMIT_BATCH:
        raise Invalid(f"messages: at most {MAX_SUBMIT_BATCH} per request", field="messages")
    for i, item in enumerate(items):
        if not item.key or len(item.key) > 200:
            raise Invalid(f"messages.{i}.key: 1 to 200 characters", field=f"messages.{i}.key")
        if not 1 <= item.parts <= 63:
            raise Invalid(f"messages.{i}.parts: must be between 1 and 63", field=f"messages.{i}.parts")
        if isinstance(item.task_id, str) and not (item.task_id.isascii() and item.task_id.isdigit() and len(item.task_id) < 19):
            raise Invalid(f"messages.{i}.task_id: a number", field=f"messages.{i}.task_id")
        if isinstance(item.task_id, int) and not 0 <= item.task_id < 2**63:
            raise Invalid(f"messages.{i}.task_id: a number from 0", field=f"messages.{i}.task_id")
    refusal = c.admit(len(items))
    if refusal is not None:
        if refusal.kind == "throttled":
            return _error(429, "throttled", refusal.message, headers={"Retry-After": f"{refusal.retry_after:.3f}"})
        return _error(503, "outage", refusal.message)
    return _json({"results": await c.submit(items)})


@routes.get("/messages/{platform_id}")
async def message(request: web.Request) -> web.Response:
    found = await request.app[carrier_key].message(request.match_info["platform_id"])
    if found is None:
        raise NotFound(f"no message with platform_id {request.match_info['platform_id']!r}")
    return _json(found)


@routes.get("/profile")
async def get_profile(request: web.Request) -> web.Response:
    return _json(profiles.to_builtins(request.app[carrier_key].profile))


@routes.put("/profile")
async def put_profile(request: web.Request) -> web.Response:
    c = request.app[carrier_key]
    new = profiles.profile_from_request(await read(request))
    await c.set_profile(new)
    return _json(profiles.to_builtins(new))


@routes.patch("/profile")
async def patch_profile(request: web.Request) -> web.Response:
    c = request.app[carrier_key]
    new = profiles.profile_from_request(await read(request), patching=c.profile)
    await c.set_profile(new)
    return _json(profiles.to_builtins(new))


@routes.get("/presets")
async def list_presets(request: web.Request) -> web.Response:
    items = [{"name": n, "description": profiles.preset_description(n)} for n in profiles.preset_names()]
    return _json({"items": items, "next_cursor": None})


@routes.post("/presets/{name}")
async def activate_preset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    try:
        preset = profiles.load_preset(name)
    except KeyError:
        raise NotFound(f"no preset named {name!r}; presets: {', '.join(profiles.preset_names())}") from None
    await request.app[carrier_key].set_profile(preset)
    return _json(profiles.to_builtins(preset))


@routes.post("/moderate")
async def moderate(request: web.Request) -> web.Response:
    body = _decode(await read(request), ModerateBody)
    lowered = body.text.lower()
    words = request.app[carrier_key].profile.moderation.banned_words
    return _json({"reasons": [f'the content contains the banned word "{w}"' for w in words if w.lower() in lowered]})


@routes.get("/clock")
async def get_clock(request: web.Request) -> web.Response:
    c = request.app[carrier_key]
    return _json({"now": to_rfc3339(c.clock.now()), "mode": c.clock.mode})


@routes.post("/clock/advance")
async def advance_clock(request: web.Request) -> web.Response:
    c = request.app[carrier_key]
    body = _decode(await read(request), AdvanceBody)
    now = await c.advance(body.seconds)
    return _json({"now": to_rfc3339(now), "mode": c.clock.mode})


def _task_ref(request: web.Request, required: bool = True) -> int | None:
    raw = request.query.get("task_id")
    if not raw:
        if required:
            raise Invalid("task_id: required", field="task_id")
        return None
    value = paging.parse_id(raw) if raw != "0" else 0
    if value is None:
        raise Invalid("task_id: a task id (digits)", field="task_id")
    return value


@routes.post("/deliver")
async def deliver(request: web.Request) -> web.Response:
    c = request.app[carrier_key]
    if not c.callback:
        raise Conflict("the carrier has no --callback to deliver to", code="no_callback")
    return _json(await c.flush())


@routes.get("/ground-truth")
async def ground_truth(request: web.Request) -> web.Response:
    """Per message what the carrier decided and did, for a task submitted over the HTTP API
    (``task_id``) or for an account (``account``: every message it submitted, by SMPP or a
    provider API)."""
    c = request.app[carrier_key]
    account = request.query.get("account")
    task_ref = _task_ref(request, required=account is None)
    if account is not None and c.accounts.get(account) is None:
        raise NotFound(f"no account {account!r}")
    items, next_cursor = await c.ground_truth(task_ref=task_ref, account=account, cursor=request.query.get("cursor"),
                                              limit=paging.limit_of(request.query.get("limit")))
    return _json({"items": items, "next_cursor": next_cursor})


@routes.get("/ground-truth/summary")
async def ground_truth_summary(request: web.Request) -> web.Response:
    return _json(await request.app[carrier_key].summary(_task_ref(request)))


@routes.post("/reset")
async def reset(request: web.Request) -> web.Response:
    c = request.app[carrier_key]
    account = request.query.get("account")
    if account is not None and c.accounts.get(account) is None:
        raise NotFound(f"no account {account!r}")
    await c.reset(account)
    return _json({"reset": True, **({"account": account} if account else {})})


# -- accounts (SMPP system_ids, provider accounts) ---------------------------------------------------
@routes.get("/accounts")
async def list_accounts(request: web.Request) -> web.Response:
    accounts = request.app[carrier_key].accounts
    return _json({"items": [a.public() for _, a in sorted(accounts.by_name.items())], "next_cursor": None})


def _account_name(request: web.Request) -> str:
    name = request.match_info["system_id"]
    # an SMPP system_id has at most 15 characters (checked with the protocol, in apply_change); a
    # provider's account id is longer (a Twilio AccountSid has 34, an Alibaba AccessKeyId 24)
    if not (0 < len(name) <= 64 and name.isascii() and all(ch.isalnum() or ch in "_.-" for ch in name)):
        raise Invalid("system_id: 1 to 64 letters, digits, '_', '.' or '-'", field="system_id")
    return name


@routes.get("/accounts/{system_id}")
async def get_account(request: web.Request) -> web.Response:
    account = request.app[carrier_key].accounts.get(_account_name(request))
    if account is None:
        raise NotFound(f"no account {request.match_info['system_id']!r}")
    return _json(_account_view(request.app[carrier_key], account))


def _account_view(c, account) -> dict:
    """The account, with what is live: its bound sessions and its receipts and messages not yet
    acknowledged (``busy``: sent and waiting for the acknowledgement, or due and waiting for a
    receiver; a test that moved the clock waits for 0 before it looks at what arrived)."""
    out = account.public()
    sessions = [s for f in c.front_ends for s in getattr(f, "by_account", {}).get(account.name, [])]
    out["binds"] = [{"bind": s.id, "mode": s.mode, "state": s.state} for s in sessions]
    out["outbox"] = {"open": c.outbox.open_of(account.name),
                     "busy": c.outbox.busy(c.clock.now(), account.name, every_tenant=False)}
    return out


async def _change_account(request: web.Request, replace: bool) -> web.Response:
    c = request.app[carrier_key]
    name = _account_name(request)
    change = _decode(await read(request), AccountChange)
    current = c.accounts.get(name)
    if current is None and not replace:
        raise NotFound(f"no account {name!r}; create it with PUT")
    try:
        account = apply_change(name, current, change, replace)
    except AccountError as exc:
        raise Invalid(str(exc), field=exc.field) from None
    await c.accounts.put(account)
    c.core.tenant(name).throughput_limit = account.throughput_limit
    return _json(account.public(), status=201 if current is None else 200)


@routes.put("/accounts/{system_id}")
async def put_account(request: web.Request) -> web.Response:
    return await _change_account(request, replace=True)


@routes.patch("/accounts/{system_id}")
async def patch_account(request: web.Request) -> web.Response:
    return await _change_account(request, replace=False)


@routes.delete("/accounts/{system_id}")
async def delete_account(request: web.Request) -> web.Response:
    c = request.app[carrier_key]
    name = _account_name(request)
    if not await c.accounts.delete(name):
        raise NotFound(f"no account {name!r}")
    for front in c.front_ends:
        await front.account_removed(name)
    return web.Response(status=204)


@routes.get("/dialects")
async def list_dialects(request: web.Request) -> web.Response:
    from gateway.wire.smpp.receipts import dialect_from

    items = [{"name": name, "description": description, "dialect": msgspec.to_builtins(dialect_from(name))}
             for name, (description, _) in DIALECT_PRESETS.items()]
    return _json({"items": items, "next_cursor": None})


# -- the journal and mobile-originated messages ----------------------------------------------------
@routes.get("/journal")
async def journal(request: web.Request) -> web.Response:
    c = request.app[carrier_key]
    q = request.query
    after = 0
    if q.get("cursor"):
        after = paging.decode(q["cursor"])
    items, last = c.journal.page(after=after, limit=paging.limit_of(q.get("limit")), account=q.get("account"),
                                 command=q.get("command"))
    out = [{**entry, "at": to_rfc3339(entry["at"])} for entry in items]
    return _json({"items": out, "next_cursor": paging.encode(last) if last else None, "kept": len(c.journal),
                  "max": c.journal.max_entries})


@routes.post("/mo")
async def mobile_originated(request: web.Request) -> web.Response:
    c = request.app[carrier_key]
    body = _decode(await read(request), MoBody)
    account = c.accounts.get(body.account)
    if account is None:
        raise Invalid(f"account: no account {body.account!r}", field="account")
    front = c._front_for(body.account)
    if front is None or not hasattr(front, "mobile_originated"):
        raise Conflict(f"account: {body.account!r} speaks {account.protocol}, which takes no mobile-originated messages here",
                       field="account", code="no_mo")
    item = await front.mobile_originated(body.account, body.from_, body.to, body.text)
    return _json(item, status=201)


def create_app(carrier: CarrierServer) -> web.Application:
    from gateway.web import protocol_errors

    protocol_errors.install()
    app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[_errors, _auth])
    app[carrier_key] = carrier
    app.add_routes(routes)
    for front in carrier.front_ends:  # the provider APIs
        if hasattr(front, "routes"):
            app.add_routes(front.routes())

    async def lifecycle(_app: web.Application):
        await carrier.start()
        try:
            yield
        finally:
            await carrier.stop()

    app.cleanup_ctx.append(lifecycle)
    return app


# -- the command line ----------------------------------------------------------------------------------
def _run(args: argparse.Namespace) -> int:
    profile = None
    if args.profile:
        try:
            profile = load_profile(args.profile)
        except KeyError:
            print(f"smslab carrier: --profile {args.profile!r} is neither a file nor a preset "
                  f"({', '.join(profiles.preset_names())})", file=sys.stderr)
            return 2
        except profiles.ProfileError as exc:
            print(f"smslab carrier: --profile {args.profile}: {exc}", file=sys.stderr)
            return 2
    if args.callback and not args.secret:
        print("smslab carrier: --callback needs --secret (or SMSLAB_CARRIER_SECRET) to sign webhooks", file=sys.stderr)
        return 2
    if not args.token and not _loopback(args.host):
        print(f"smslab carrier: refusing to listen on {args.host} without --token (or SMSLAB_CARRIER_TOKEN):"
              " its API controls the carrier", file=sys.stderr)
        return 2
    accounts = []
    for spec in args.account or []:
        name, sep, password = spec.partition(":")
        try:  # the rules of PUT /accounts: the same account is refused however it is given
            msgspec.convert({"name": name, "password": password}, _CliAccount)
        except msgspec.ValidationError:
            print(f"smslab carrier: --account {spec!r}: give SYSTEM_ID:PASSWORD (system_id 1–15 of A-Z a-z 0-9 _ . -; "
                  "password 1–64 characters, no control characters)", file=sys.stderr)
            return 2
        accounts.append((name, password))
    provider_accounts, error = providers.accounts_from(args)
    if error:
        print(f"smslab carrier: {error}", file=sys.stderr)
        return 2
    for option, port in (("--port", args.port), ("--smpp-port", args.smpp_port), ("--smpp-tls-port", args.smpp_tls_port)):
        if port is not None and port_taken(args.host, port):
            print(f"smslab carrier: {args.host}:{port} ({option}) is already in use", file=sys.stderr)
            return 2
    carrier = CarrierServer(args.db, clock=args.clock, clock_start=args.clock_start, profile=profile,
                            callback=args.callback, secret=args.secret, token=args.token, accounts=accounts,
                            journal_max=args.journal_max, provider_accounts=provider_accounts)
    if args.smpp_port is not None or args.smpp_tls_port is not None:
        from .smpp.smsc import Smsc

        carrier.front_ends.append(Smsc(args.host, args.smpp_port, args.smpp_tls_port, args.tls_cert, args.tls_key))
    carrier.front_ends.extend(providers.front_ends(args))
    app = create_app(carrier)

    async def announce(_app: web.Application) -> None:
        print(f"smslab carrier serving on http://{args.host}:{args.port} (database {args.db}, clock {args.clock}, "
              f"callback {args.callback or 'none'})", flush=True)
        for front in carrier.front_ends:
            if front.protocol == "smpp":
                if args.smpp_port is not None:
                    print(f"SMPP 3.4 on {args.host}:{args.smpp_port}", flush=True)
                if args.smpp_tls_port is not None:
                    print(f"SMPP 3.4 over TLS on {args.host}:{args.smpp_tls_port} (certificate {front.tls_cert_path})", flush=True)
        if accounts:
            print(f"Accounts: {', '.join(name for name, _ in accounts)}", flush=True)
        print("Its API needs 'Authorization: Bearer <--token>'." if args.token
              else "Its API is open to this machine only (no --token).", flush=True)

    app.on_startup.append(announce)
    tune_gc(gen0_from_env())
    # a request line up to 64 KiB: Alibaba's SDK puts SendSms's PhoneNumbers (up to 1000) in the query string
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None, max_line_size=65536)
    return 0


def _env_int(env, name: str) -> int | None:
    value = env.get(name)
    return int(value) if value else None


def _loopback(host: str) -> bool:
    import ipaddress
    import socket

    if not host:
        return False  # every interface
    try:
        return all(ipaddress.ip_address(info[4][0]).is_loopback
                   for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM))
    except (OSError, ValueError):
        return False


def _configure(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    import os

    env = os.environ
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(env.get("SMSLAB_CARRIER_PORT", 9090)), help="default 9090")
    parser.add_argument("--db", default=env.get("SMSLAB_CARRIER_DB", "smslab-carrier.db"),
                        help="the carrier's own SQLite file (default: ./smslab-carrier.db)")
    parser.add_argument("--profile", default=env.get("SMSLAB_CARRIER_PROFILE"),
                        help="behaviour profile: a TOML/JSON file or a preset name (default: the stored one, else defaults)")
    parser.add_argument("--callback", default=env.get("SMSLAB_CARRIER_CALLBACK"),
                        help="URL receipts are pushed to, e.g. http://127.0.0.1:8080/api/v1/platforms/http/receipts")
    parser.add_argument("--secret", default=env.get("SMSLAB_CARRIER_SECRET"), help="shared secret that signs the webhooks")
    parser.add_argument("--token", default=env.get("SMSLAB_CARRIER_TOKEN"),
                        help="bearer token every API call but /healthz must carry (required to listen beyond loopback)")
    parser.add_argument("--clock", default="wall", choices=["wall", "virtual"],
                        help="wall time, or a virtual clock moved by POST /clock/advance")
    parser.add_argument("--clock-start", type=float, default=None,
                        help="virtual clock: its first instant in epoch seconds (default: now; a restart resumes where it was)")
    parser.add_argument("--smpp-port", type=int, default=_env_int(env, "SMSLAB_SMPP_PORT"),
                        help="also serve SMPP 3.4 on this port (the SMSC; see docs/smpp.md)")
    parser.add_argument("--smpp-tls-port", type=int, default=_env_int(env, "SMSLAB_SMPP_TLS_PORT"),
                        help="also serve SMPP 3.4 over TLS on this port")
    parser.add_argument("--tls-cert", default=env.get("SMSLAB_TLS_CERT"),
                        help="PEM certificate for --smpp-tls-port (default: a self-signed one made next to --db)")
    parser.add_argument("--tls-key", default=env.get("SMSLAB_TLS_KEY"), help="PEM private key of --tls-cert")
    parser.add_argument("--account", action="append", metavar="SYSTEM_ID:PASSWORD",
                        help="an SMPP account (repeatable; stored with its password hashed; more via PUT /accounts/{id})")
    parser.add_argument("--journal-max", type=int, default=_env_int(env, "SMSLAB_JOURNAL_MAX") or 100_000,
                        help="PDUs the journal keeps (GET /journal; default 100,000; 0 keeps none)")
    providers.add_arguments(parser, env)
    parser.set_defaults(func=_run)
    return parser


def add_carrier_command(subparsers) -> argparse.ArgumentParser:
    """Adds ``carrier`` to the ``smslab`` command line (gateway.cli.build_parser)."""
    parser = subparsers.add_parser("carrier", help="run the simulated carrier as its own HTTP server with signed webhooks",
                                   description="Run the simulated carrier as its own HTTP server (see docs/carrier.md).")
    return _configure(parser)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = _configure(argparse.ArgumentParser(prog="smslab carrier", description="Run the simulated carrier as its own HTTP server."))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
