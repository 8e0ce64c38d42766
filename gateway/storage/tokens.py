"""The tokens area: workspaces, the hashes of their tokens, and the one token kept in the clear
(the admin token ``smslab serve`` printed, so it can print it again)."""

from __future__ import annotations

from typing import NamedTuple, Protocol


class TokenOwner(NamedTuple):
    """Whom a token hash stands for."""

    workspace_id: int
    workspace: str
    admin: bool


class TokenInfo(NamedTuple):
    """A token as ``smslab token list`` shows it (never the token itself)."""

    id: int
    workspace: str
    label: str | None
    admin: bool
    created_at: float
    fingerprint: str  # the first characters of the hash


class TokenStore(Protocol):
    async def create(self, workspace: str, digest: str, label: str | None, admin: bool, now: float) -> None:
        """Store a token hash for ``workspace``, creating the workspace if it is new."""

    async def owner(self, digest: str) -> TokenOwner | None:
        """Whom the hash stands for; None for a hash no token has (or a revoked one)."""

    async def listing(self) -> list[TokenInfo]:
        """Every token, oldest first."""

    async def revoke(self, *, token_id: int | None = None, digest: str | None = None) -> TokenInfo | None:
        """Delete the token with this id or hash, in one transaction; returns what was deleted,
        None when nothing matched."""

    async def serve_token(self, workspace: str) -> str | None:
        """The token ``smslab serve`` last printed for ``workspace`` (maybe revoked since)."""

    async def keep_serve_token(self, workspace: str, token: str) -> None:
        """Remember the token ``smslab serve`` prints for ``workspace``."""


def tokens_in(where) -> TokenStore:
    """The token store of ``where``: a storage (its ``tokens``) or a token store itself."""
    tokens = getattr(where, "tokens", None)
    if tokens is not None:
        return tokens
    if hasattr(where, "owner"):
        return where
    raise TypeError(f"no token store in {type(where).__name__}: pass the storage (app[storage_key])")
