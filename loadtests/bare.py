"""The same-run baseline: a bare aiohttp server that does the least a receipt endpoint can do.

``POST /api/v1/platforms/sim/receipts`` decodes the body with msgspec into the same Structs the
simulated carrier uses and answers ``{"accepted": n}``; ``GET /ping`` answers a small JSON
document. No auth, no database, no sink: what aiohttp + msgspec cost on this machine.

    python -m loadtests.bare --port 8099
"""

from __future__ import annotations

import argparse

import msgspec
from aiohttp import web

from gateway.wire.webhooks import WireReceipts

_decoder = msgspec.json.Decoder(WireReceipts)
_encode = msgspec.json.encode


async def receipts(request: web.Request) -> web.Response:
    body = await request.read()
    pushed = _decoder.decode(body)
    return web.Response(body=_encode({"accepted": len(pushed.receipts)}), content_type="application/json")


async def ping(request: web.Request) -> web.Response:
    return web.Response(body=_encode({"status": "ok"}), content_type="application/json")


def make_app() -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/api/v1/platforms/{name}/receipts", receipts)
    app.router.add_get("/ping", ping)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    print(f"bare server on http://{args.host}:{args.port}", flush=True)
    web.run_app(make_app(), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
