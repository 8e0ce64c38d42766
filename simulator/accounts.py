"""The accounts a standalone carrier knows: who may bind over SMPP (a ``system_id`` and its
password) or call a provider API, and how the carrier treats each (its receipt dialect, how many
binds it may hold, the requests a bind may leave unanswered either way, its own throughput
limit).

Passwords are stored as scrypt hashes (``scrypt$N$r$p$salt$hash``): the carrier's database may be
copied around a QA team, and SMPP passwords are often reused elsewhere. Checking one costs about
60 ms, paid once per bind, not per message.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated, Any, Literal

import msgspec

from gateway.wire.smpp.receipts import Dialect, dialect_from

SCRYPT = (2**14, 8, 1)
SystemId = Annotated[str, msgspec.Meta(min_length=1, max_length=15, pattern=r"^[A-Za-z0-9_.\-]+$")]
# No control characters: an SMPP password travels as a C-string (a NUL would cut it short, so the
# account could never bind), and a provider's secret is typed or pasted, never a control code.
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]


class Account(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """What the carrier stores per account (the password only as its hash)."""

    name: str
    password_hash: str
    protocol: Literal["smpp", "twilio", "aliyun"] = "smpp"
    dialect: Dialect = msgspec.field(default_factory=Dialect)
    max_binds: int = 10
    throughput_limit: float | None = None
    window: int = 100  # requests a bind may leave unanswered; past it the SMSC answers ESME_RTHROTTLED
    # the SMSC's own requests (receipts, replies) a bind may leave unanswered; None: ``window``
    receipt_window: int | None = None
    extra: dict[str, Any] = msgspec.field(default_factory=dict)  # protocol settings (templates, sign names...)
    # a provider account's secret itself (Twilio's auth token, Alibaba's AccessKey secret): the
    # carrier signs status callbacks and checks request signatures with it, which a hash cannot do
    secret: str = ""

    def check(self, password: str) -> bool:
        return verify_password(self.password_hash, password)

    def public(self) -> dict:
        """As the control API shows it: everything but the password hash."""
        out = msgspec.to_builtins(self)
        del out["password_hash"]
        out.pop("secret", None)
        out["system_id"] = out.pop("name")
        return out


class AccountChange(msgspec.Struct, forbid_unknown_fields=True):
    """A PUT or PATCH body of ``/accounts/{system_id}``."""

    password: Password | None = None
    protocol: Literal["smpp", "twilio", "aliyun"] | None = None
    dialect: str | dict | None = None
    max_binds: Annotated[int, msgspec.Meta(ge=1, le=1000)] | None = None
    throughput_limit: Annotated[float, msgspec.Meta(gt=0, le=1e9)] | None = None
    window: Annotated[int, msgspec.Meta(ge=1, le=100_000)] | None = None
    receipt_window: Annotated[int, msgspec.Meta(ge=1, le=100_000)] | None = None
    extra: dict[str, Any] | None = None


class AccountError(ValueError):
    """A bad account change; the message starts with the field it names."""

    @property
    def field(self) -> str:
        return str(self).split(":", 1)[0]


def hash_password(password: str) -> str:
    n, r, p = SCRYPT
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"scrypt${n}${r}${p}${salt.hex()}${digest.hex()}"


def verify_password(stored: str, password: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        given = hashlib.scrypt(password.encode("utf-8", "surrogateescape"), salt=bytes.fromhex(salt), n=int(n), r=int(r),
                               p=int(p), dklen=len(digest) // 2)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(given.hex(), digest)


def apply_change(name: str, current: Account | None, change: AccountChange, replace: bool) -> Account:
    """The account after a PUT (``replace``: left-out fields take their defaults) or a PATCH."""
    if current is None or replace:
        if change.password is None and current is None:
            raise AccountError("password: required for a new account")
        base = Account(name=name, password_hash=current.password_hash if current else "")
    else:
        base = current
    fields: dict[str, Any] = {}
    if change.password is not None:
        fields["password_hash"] = hash_password(change.password)
    if change.dialect is not None:
        try:
            fields["dialect"] = dialect_from(change.dialect)
        except ValueError as exc:
            raise AccountError(f"dialect.{exc}" if not str(exc).startswith("dialect") else str(exc)) from None
    for key in ("protocol", "max_binds", "throughput_limit", "window", "receipt_window", "extra"):
        value = getattr(change, key)
        if value is not None:
            fields[key] = value
    account = msgspec.structs.replace(base, **fields)
    if account.protocol != "smpp" and change.password is not None:
        account = msgspec.structs.replace(account, secret=change.password)
    elif account.protocol == "smpp" and account.secret:
        account = msgspec.structs.replace(account, secret="")
    if account.protocol != "smpp" and not account.secret:
        raise AccountError(f"password: a {account.protocol} account needs its secret (the password) set again")
    if account.protocol == "smpp" and len(name) > 15:
        raise AccountError("system_id: an SMPP system_id has at most 15 characters")
    return account


class Accounts:
    """The carrier's accounts, kept in memory and in ``sim_accounts``."""

    def __init__(self, db):
        self.db = db
        self.by_name: dict[str, Account] = {}

    async def load(self) -> None:
        rows = await self.db.fetchall("SELECT name, value FROM sim_accounts")
        self.by_name = {name: msgspec.json.decode(value, type=Account) for name, value in rows}

    def get(self, name: str) -> Account | None:
        return self.by_name.get(name)

    async def put(self, account: Account) -> Account:
        value = msgspec.json.encode(account).decode()
        await self.db.write(lambda conn: conn.execute(
            "INSERT OR REPLACE INTO sim_accounts(name, value) VALUES (?, ?)", (account.name, value)))
        self.by_name[account.name] = account
        return account

    async def delete(self, name: str) -> bool:
        if name not in self.by_name:
            return False
        await self.db.write(lambda conn: conn.execute("DELETE FROM sim_accounts WHERE name=?", (name,)))
        del self.by_name[name]
        return True

    async def ensure(self, name: str, password: str, protocol: str = "smpp") -> Account:
        """An account given on the command line: created, or its password set (the rest kept)."""
        current = self.by_name.get(name)
        if current is not None and current.check(password) and current.protocol == protocol:
            return current
        change = AccountChange(password=password, protocol=protocol)  # type: ignore[arg-type]
        return await self.put(apply_change(name, current, change, replace=False))
