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

from .storage.tokens import TokenStore, tokens_in

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


async def create_token(where, workspace: str, now: float, label: str | None = None, admin: bool = False) -> str:
    """A new token for ``workspace`` (created if new). ``where``: a storage or its token store."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    await tokens_in(where).create(workspace, hash_token(token), label, admin, now)
    return token


async def serve_token(where, workspace: str, now: float) -> tuple[str, bool]:
    """The admin token ``smslab serve`` prints for ``workspace``: the one it printed before if it
    was not revoked, else a new one. Returns (token, whether it is new)."""
    tokens = tokens_in(where)
    saved = await tokens.serve_token(workspace)
    if saved is not None and await tokens.owner(hash_token(saved)) is not None:
        return saved, False
    token = await create_token(tokens, workspace, now, label="serve", admin=True)
    await tokens.keep_serve_token(workspace, token)
    return token, True


async def list_tokens(where) -> list[dict]:
    return [{"id": t.id, "workspace": t.workspace, "label": t.label, "admin": t.admin, "created_at": t.created_at,
             "fingerprint": t.fingerprint} for t in await tokens_in(where).listing()]


async def revoke_token(where, which: str) -> dict | None:
    """Delete a token given by its id (as ``smslab token list`` shows it) or by the token itself.
    Returns what was revoked, or None when nothing matched."""
    if which.startswith(TOKEN_PREFIX):
        revoked = await tokens_in(where).revoke(digest=hash_token(which))
    elif which.isascii() and which.isdigit():
        revoked = await tokens_in(where).revoke(token_id=int(which))
    else:
        return None
    if revoked is None:
        return None
    return {"id": revoked.id, "workspace": revoked.workspace, "label": revoked.label, "admin": revoked.admin}


class TokenCache:
    """Token hash → Principal, remembered for ``CACHE_SECONDS`` of real time so that most
    requests cost no query, while a token revoked from the command line (another process) stops
    working within seconds."""

    def __init__(self, tokens: TokenStore, ttl: float = CACHE_SECONDS):
        self.tokens = tokens
        self.ttl = ttl
        self._known: dict[str, tuple[float, Principal]] = {}

    async def lookup(self, token: str) -> Principal | None:
        digest = hash_token(token)
        now = time.monotonic()
        hit = self._known.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        owner = await self.tokens.owner(digest)
        if owner is None:
            self._known.pop(digest, None)
            return None
        if len(self._known) > 10_000:  # tokens are few; this only bounds a flood of distinct ones
            self._known.clear()
        principal = Principal(owner.workspace_id, owner.workspace, owner.admin)
        self._known[digest] = (now + self.ttl, principal)
        return principal
