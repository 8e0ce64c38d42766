"""Tokens on PostgreSQL (the interface and its guarantees: ``gateway/storage/tokens.py``)."""

from __future__ import annotations

import asyncpg

from ..tokens import TokenInfo, TokenOwner
from .db import Database

_INFO = (
    "SELECT t.id, w.name, t.label, t.admin, t.created_at, substr(t.hash, 1, 8) FROM tokens t"
    " JOIN workspaces w ON w.id = t.workspace_id"
)


def _info(row) -> TokenInfo:
    return TokenInfo(row[0], row[1], row[2], bool(row[3]), row[4], row[5])


async def _create(conn: asyncpg.Connection, workspace: str, digest: str, label: str | None, admin: bool, now: float) -> None:
    await conn.execute("INSERT INTO workspaces(name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", workspace, now)
    ws = await conn.fetchval("SELECT id FROM workspaces WHERE name=$1", workspace)
    await conn.execute("INSERT INTO tokens(hash, workspace_id, label, admin, created_at) VALUES ($1,$2,$3,$4,$5)",
                       digest, ws, label, int(admin), now)


async def _revoke(conn: asyncpg.Connection, where: str, arg) -> TokenInfo | None:
    # FOR UPDATE: two instances revoking the same token report it once
    row = await conn.fetchrow(f"{_INFO} WHERE t.{where} FOR UPDATE OF t", arg)
    if row is None:
        return None
    if await conn.execute("DELETE FROM tokens WHERE id=$1", row[0]) == "DELETE 0":
        return None
    return _info(row)


def _serve_key(workspace: str) -> str:
    return f"serve_token:{workspace}"


class PostgresTokenStore:
    def __init__(self, db: Database):
        self.db = db

    async def create(self, workspace: str, digest: str, label: str | None, admin: bool, now: float) -> None:
        await self.db.write(_create, workspace, digest, label, admin, now)

    async def owner(self, digest: str) -> TokenOwner | None:
        row = await self.db.fetchone(
            "SELECT w.id, w.name, t.admin FROM tokens t JOIN workspaces w ON w.id = t.workspace_id WHERE t.hash=$1", (digest,)
        )
        return TokenOwner(row[0], row[1], bool(row[2])) if row is not None else None

    async def listing(self) -> list[TokenInfo]:
        return [_info(r) for r in await self.db.fetchall(f"{_INFO} ORDER BY t.id")]

    async def revoke(self, *, token_id: int | None = None, digest: str | None = None) -> TokenInfo | None:
        if digest is not None:
            return await self.db.write(_revoke, "hash=$1", digest)
        return await self.db.write(_revoke, "id=$1", token_id)

    async def serve_token(self, workspace: str) -> str | None:
        row = await self.db.fetchone("SELECT value FROM service_state WHERE key=$1", (_serve_key(workspace),))
        return row[0] if row is not None else None

    async def keep_serve_token(self, workspace: str, token: str) -> None:
        await self.db.execute(
            "INSERT INTO service_state(key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (_serve_key(workspace), token),
        )
