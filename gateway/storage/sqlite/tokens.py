"""Tokens in SQLite (the interface and its guarantees: ``gateway/storage/tokens.py``)."""

from __future__ import annotations

import sqlite3

from ..tokens import TokenInfo, TokenOwner


def _create(conn: sqlite3.Connection, workspace: str, digest: str, label: str | None, admin: bool, now: float) -> None:
    conn.execute("INSERT OR IGNORE INTO workspaces(name, created_at) VALUES (?, ?)", (workspace, now))
    (ws,) = conn.execute("SELECT id FROM workspaces WHERE name=?", (workspace,)).fetchone()
    conn.execute("INSERT INTO tokens(hash, workspace_id, label, admin, created_at) VALUES (?,?,?,?,?)",
                 (digest, ws, label, int(admin), now))


def _revoke(conn: sqlite3.Connection, where: str, arg) -> TokenInfo | None:
    row = conn.execute(
        "SELECT t.id, w.name, t.label, t.admin, t.created_at, substr(t.hash, 1, 8) FROM tokens t"
        f" JOIN workspaces w ON w.id = t.workspace_id WHERE t.{where}", (arg,)).fetchone()
    if row is None:
        return None
    conn.execute("DELETE FROM tokens WHERE id=?", (row[0],))
    return TokenInfo(row[0], row[1], row[2], bool(row[3]), row[4], row[5])


def _serve_key(workspace: str) -> str:
    return f"serve_token:{workspace}"


class SqliteTokenStore:
    def __init__(self, db):
        self.db = db

    async def create(self, workspace: str, digest: str, label: str | None, admin: bool, now: float) -> None:
        await self.db.write(_create, workspace, digest, label, admin, now)

    async def owner(self, digest: str) -> TokenOwner | None:
        row = await self.db.fetchone(
            "SELECT w.id, w.name, t.admin FROM tokens t JOIN workspaces w ON w.id = t.workspace_id WHERE t.hash=?", (digest,)
        )
        return TokenOwner(row[0], row[1], bool(row[2])) if row is not None else None

    async def listing(self) -> list[TokenInfo]:
        rows = await self.db.fetchall(
            "SELECT t.id, w.name, t.label, t.admin, t.created_at, substr(t.hash, 1, 8) FROM tokens t"
            " JOIN workspaces w ON w.id = t.workspace_id ORDER BY t.id"
        )
        return [TokenInfo(r[0], r[1], r[2], bool(r[3]), r[4], r[5]) for r in rows]

    async def revoke(self, *, token_id: int | None = None, digest: str | None = None) -> TokenInfo | None:
        if digest is not None:
            return await self.db.write(_revoke, "hash=?", digest)
        return await self.db.write(_revoke, "id=?", token_id)

    async def serve_token(self, workspace: str) -> str | None:
        row = await self.db.fetchone("SELECT value FROM service_state WHERE key=?", (_serve_key(workspace),))
        return row[0] if row is not None else None

    async def keep_serve_token(self, workspace: str, token: str) -> None:
        await self.db.write(_keep, _serve_key(workspace), token)


def _keep(conn: sqlite3.Connection, key: str, token: str) -> None:
    conn.execute("INSERT OR REPLACE INTO service_state(key, value) VALUES (?, ?)", (key, token))
