"""Workspaces and their tokens. A token is shown once, when created; only its SHA-256 is stored
(tokens are 32 random bytes, so a fast hash is as safe as a slow one and keeps auth cheap).

A token belongs to one workspace and sees only it. An *admin* token also may use the controls
that act on the whole service (the virtual clock, ``/metrics``): one workspace moving the clock
moves it for every other. The token ``smslab serve`` prints for its default workspace is an
admin token, so a single user never meets the difference; it is kept (in ``service_state``, the
one place a token is stored in the clear, for the process that printed it to print it again)
until it is revoked.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

TOKEN_PREFIX = "smslab_"
CACHE_SECONDS = 2.0  # how long a running service trusts a token it looked up: a revocation takes effect within this


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for."""

    workspace_id: int
    workspace: str
    admin: bool


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


async def ensure_workspace(db, name: str, now: float) -> int:
    async with db.transaction() as conn:
        await conn.execute("INSERT OR IGNORE INTO workspaces(name, created_at) VALUES (?, ?)", (name, now))
        row = await db.one(conn, "SELECT id FROM workspaces WHERE name=?", (name,))
    return row[0]


async def create_token(db, workspace: str, now: float, label: str | None = None, admin: bool = False) -> str:
    ws = await ensure_workspace(db, workspace, now)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    await db.execute(
        "INSERT INTO tokens(hash, workspace_id, label, admin, created_at) VALUES (?,?,?,?,?)",
        (hash_token(token), ws, label, int(admin), now),
    )
    return token


async def serve_token(db, workspace: str, now: float) -> tuple[str, bool]:
    """The admin token ``smslab serve`` prints for ``workspace``: the one it printed before if it
    was not revoked, else a new one. Returns (token, whether it is new)."""
    key = f"serve_token:{workspace}"
    row = await db.fetchone("SELECT value FROM service_state WHERE key=?", (key,))
    if row is not None and await db.fetchone("SELECT 1 FROM tokens WHERE hash=?", (hash_token(row[0]),)):
        return row[0], False
    token = await create_token(db, workspace, now, label="serve", admin=True)
    await db.execute("INSERT OR REPLACE INTO service_state(key, value) VALUES (?, ?)", (key, token))
    return token, True


async def list_tokens(db) -> list[dict]:
    rows = await db.fetchall(
        "SELECT t.id, w.name, t.label, t.admin, t.created_at, substr(t.hash, 1, 8) FROM tokens t"
        " JOIN workspaces w ON w.id = t.workspace_id ORDER BY t.id"
    )
    return [{"id": r[0], "workspace": r[1], "label": r[2], "admin": bool(r[3]), "created_at": r[4], "fingerprint": r[5]}
            for r in rows]


async def revoke_token(db, which: str) -> dict | None:
    """Delete a token given by its id (as ``smslab token list`` shows it) or by the token itself.
    Returns what was revoked, or None when nothing matched."""
    if which.startswith(TOKEN_PREFIX):
        where, arg = "hash=?", hash_token(which)
    elif which.isascii() and which.isdigit():
        where, arg = "id=?", int(which)
    else:
        return None
    async with db.transaction() as conn:
        row = await db.one(conn, f"SELECT t.id, w.name, t.label, t.admin FROM tokens t JOIN workspaces w ON w.id = t.workspace_id WHERE t.{where}", (arg,))
        if row is None:
            return None
        await conn.execute("DELETE FROM tokens WHERE id=?", (row[0],))
    return {"id": row[0], "workspace": row[1], "label": row[2], "admin": bool(row[3])}


class TokenCache:
    """Token hash → Principal, remembered for ``CACHE_SECONDS`` of real time so that most
    requests cost no query, while a token revoked from the command line (another process) stops
    working within seconds."""

    def __init__(self, db, ttl: float = CACHE_SECONDS):
        self.db = db
        self.ttl = ttl
        self._known: dict[str, tuple[float, Principal]] = {}

    async def lookup(self, token: str) -> Principal | None:
        digest = hash_token(token)
        now = time.monotonic()
        hit = self._known.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        row = await self.db.fetchone(
            "SELECT w.id, w.name, t.admin FROM tokens t JOIN workspaces w ON w.id = t.workspace_id WHERE t.hash=?", (digest,)
        )
        if row is None:
            self._known.pop(digest, None)
            return None
        if len(self._known) > 10_000:  # tokens are few; this only bounds a flood of distinct ones
            self._known.clear()
        principal = Principal(row[0], row[1], bool(row[2]))
        self._known[digest] = (now + self.ttl, principal)
        return principal
