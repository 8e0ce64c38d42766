"""Workspaces and their tokens. A token is shown once, when created; only its SHA-256 is stored
(tokens are 32 random bytes, so a fast hash is as safe as a slow one and keeps auth cheap)."""

from __future__ import annotations

import hashlib
import secrets

TOKEN_PREFIX = "smslab_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def ensure_workspace(db, name: str, now: float) -> int:
    async with db.transaction() as conn:
        await conn.execute("INSERT OR IGNORE INTO workspaces(name, created_at) VALUES (?, ?)", (name, now))
        row = await db.one(conn, "SELECT id FROM workspaces WHERE name=?", (name,))
    return row[0]


async def create_token(db, workspace: str, now: float, label: str | None = None) -> str:
    ws = await ensure_workspace(db, workspace, now)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    await db.execute("INSERT INTO tokens(hash, workspace_id, label, created_at) VALUES (?,?,?,?)", (hash_token(token), ws, label, now))
    return token


class TokenCache:
    """Token hash → (workspace id, name), filled on first use; tokens are never edited."""

    def __init__(self, db):
        self.db = db
        self._known: dict[str, tuple[int, str]] = {}

    async def lookup(self, token: str) -> tuple[int, str] | None:
        digest = hash_token(token)
        hit = self._known.get(digest)
        if hit is not None:
            return hit
        row = await self.db.fetchone(
            "SELECT w.id, w.name FROM tokens t JOIN workspaces w ON w.id = t.workspace_id WHERE t.hash=?", (digest,)
        )
        if row is None:
            return None
        self._known[digest] = (row[0], row[1])
        return self._known[digest]
