"""An SMSC connection, from one URL:

    smpp://SYSTEM_ID:PASSWORD@HOST:PORT?binds=2&window=10&receipt_id=auto
    smpps://...                       the same over TLS

``SMSLAB_SMPP_URL`` configures the platform ``smpp``; each ``SMSLAB_SMPP_URL_<NAME>`` adds a
platform ``smpp-<name>`` (lower case), so a gateway can send through several SMSCs. Every
setting is a query parameter; a bad one is refused at start with the parameter's name.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from typing import Mapping
from urllib.parse import parse_qsl, unquote, urlsplit

from gateway.platform import PlatformConfigError
from gateway.wire.smpp.receipts import ID_MODES

ENV = "SMSLAB_SMPP_URL"
LONG_MODES = ("udh", "sar", "payload")
BIND_MODES = ("trx", "tx+rx")


class SettingsError(PlatformConfigError):
    """A bad URL; the message names the parameter."""


@dataclass
class Settings:
    name: str = "smpp"
    system_id: str = ""
    password: str = ""
    host: str = "127.0.0.1"
    port: int = 2775
    tls: bool = False
    tls_verify: bool = True  # check the SMSC's certificate (tls_verify=false for a self-signed one in a test)
    cafile: str | None = None  # a CA bundle or the SMSC's own certificate to trust
    binds: int = 1  # sessions to the SMSC
    bind: str = "trx"  # one transceiver per session, or a transmitter and a receiver (tx+rx)
    window: int = 10  # unanswered requests per session
    system_type: str = ""
    source: str = "smslab"  # the sender: a number (TON 1) or a name (alphanumeric, TON 5)
    registered_delivery: int = 1  # 1: a receipt for every final state; 2: failures only; 0: none
    long: str = "udh"  # how a long text travels: udh, sar (TLVs) or payload (one message_payload)
    udh16: bool = False  # 16-bit concatenation references
    receipt_id: str = "auto"  # how receipt ids are matched to submit_sm_resp ids (see docs: README)
    timeout: float = 30.0  # seconds a response may take
    enquire_link: float = 30.0  # seconds of quiet before an enquire_link
    reconnect_min: float = 0.5  # the first wait before reconnecting; doubles up to reconnect_max, with jitter
    reconnect_max: float = 30.0
    hold_receipts: float = 60.0  # seconds a receipt for an id not answered yet waits for its submit_sm_resp
    connect_wait: float = 10.0  # seconds submit waits for a bound session before the batch is retried
    workspace: int | None = None  # the workspace every mobile-originated message belongs to (default: who sent to the number)
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_url(cls, url: str, name: str = "smpp") -> "Settings":
        parts = urlsplit(url)
        if parts.scheme not in ("smpp", "smpps"):
            raise SettingsError(f"{ENV}: the scheme must be smpp:// or smpps://, not {parts.scheme or 'none'!r}")
        if not parts.hostname:
            raise SettingsError(f"{ENV}: no host in {url!r}")
        s = cls(name=name, tls=parts.scheme == "smpps")
        s.system_id = unquote(parts.username or "")
        s.password = unquote(parts.password or "")
        if not s.system_id:
            raise SettingsError(f"{ENV}: the URL names no system_id (smpp://SYSTEM_ID:PASSWORD@HOST:PORT)")
        if len(s.system_id) > 15:
            raise SettingsError(f"{ENV}: system_id is at most 15 characters (SMPP 3.4)")
        if len(s.password) > 8:
            raise SettingsError(f"{ENV}: the password is at most 8 characters (SMPP 3.4)")
        s.host = parts.hostname
        try:
            s.port = parts.port or (3550 if s.tls else 2775)
        except ValueError:
            raise SettingsError(f"{ENV}: the port is not a number") from None
        known = {f.name: f for f in fields(cls)}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key not in known or key in ("name", "system_id", "password", "host", "port", "tls", "extra"):
                raise SettingsError(f"{ENV}: unknown parameter {key!r}")
            setattr(s, key, _convert(key, value, known[key].type))
        s.check()
        return s

    def check(self) -> None:
        for key, low, high in (("binds", 1, 64), ("window", 1, 10_000), ("registered_delivery", 0, 2)):
            value = getattr(self, key)
            if not low <= value <= high:
                raise SettingsError(f"{ENV}: {key} must be between {low} and {high}")
        for key in ("timeout", "enquire_link", "reconnect_min", "reconnect_max", "hold_receipts", "connect_wait"):
            if not getattr(self, key) > 0:
                raise SettingsError(f"{ENV}: {key} must be above 0")
        if self.long not in LONG_MODES:
            raise SettingsError(f"{ENV}: long must be one of {', '.join(LONG_MODES)}")
        if self.bind not in BIND_MODES:
            raise SettingsError(f"{ENV}: bind must be one of {', '.join(BIND_MODES)}")
        if self.receipt_id not in ID_MODES:
            raise SettingsError(f"{ENV}: receipt_id must be one of {', '.join(ID_MODES)}")
        if not self.source or len(self.source) > 20:
            raise SettingsError(f"{ENV}: source must be 1 to 20 characters")
        if len(self.system_type) > 12:
            raise SettingsError(f"{ENV}: system_type is at most 12 characters (SMPP 3.4)")
        # each goes as an SMPP C-string: one octet a character, and no NUL (it would end the field
        # early and shift the rest of the PDU)
        for key in ("system_id", "password", "system_type", "source"):
            value = getattr(self, key)
            if not all(" " <= c <= "~" for c in value):
                raise SettingsError(f"{ENV}: {key} may hold printable ASCII characters only")

    @property
    def source_ton_npi(self) -> tuple[int, int]:
        """An alphanumeric sender is TON 5 / NPI 0; digits (with an optional +) are international."""
        digits = self.source.lstrip("+")
        return (1, 1) if digits.isdigit() else (5, 0)

    def public(self) -> dict:
        """For ``GET /api/v1/platforms``: everything but the password."""
        return {"smsc": f"{'smpps' if self.tls else 'smpp'}://{self.system_id}@{self.host}:{self.port}", "binds": self.binds,
                "bind": self.bind, "window": self.window, "long": self.long, "receipt_id": self.receipt_id,
                "registered_delivery": self.registered_delivery, "source": self.source}


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _convert(key: str, value: str, kind) -> object:
    kind = str(kind)
    try:
        if "bool" in kind:
            if value.lower() in _TRUE:
                return True
            if value.lower() in _FALSE:
                return False
            raise ValueError
        if "int" in kind and "float" not in kind:
            return None if value == "" and "None" in kind else int(value)
        if "float" in kind:
            return float(value)
    except ValueError:
        raise SettingsError(f"{ENV}: {key}={value!r} is not a valid {kind.replace('|', 'or')}") from None
    return value


def from_environment(env: Mapping[str, str] | None = None) -> list[Settings]:
    """One Settings per ``SMSLAB_SMPP_URL`` / ``SMSLAB_SMPP_URL_<NAME>`` set."""
    env = os.environ if env is None else env
    out = []
    for key in sorted(env):
        if key == ENV:
            name = "smpp"
        elif key.startswith(ENV + "_"):
            suffix = key[len(ENV) + 1:].lower().replace("_", "-")
            if not re.fullmatch(r"[a-z0-9-]{1,30}", suffix):
                raise SettingsError(f"{key}: the name after {ENV}_ must be letters, digits and underscores")
            name = f"smpp-{suffix}"
        else:
            continue
        if env[key]:
            try:
                out.append(Settings.from_url(env[key], name))
            except SettingsError as exc:  # name the variable that holds the bad URL
                message = str(exc)
                raise SettingsError(key + message[len(ENV):] if message.startswith(ENV + ":") else message) from None
    return out
