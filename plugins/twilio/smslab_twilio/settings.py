"""The ``twilio`` platform's settings: ``config.extras["twilio"]`` wins over the environment,
which wins over the defaults (as in smslab-http).

======================  ======================================  ==============================
extras key              environment variable                    default
======================  ======================================  ==============================
``name``                ``SMSLAB_TWILIO_NAME``                  ``twilio``
``account_sid``         ``SMSLAB_TWILIO_ACCOUNT_SID``           (none: the platform is off)
``auth_token``          ``SMSLAB_TWILIO_AUTH_TOKEN``            (none: the platform is off)
``from``                ``SMSLAB_TWILIO_FROM``                  (none) the sender: a number, short code or alphanumeric ID
``messaging_service_sid`` ``SMSLAB_TWILIO_MESSAGING_SERVICE_SID`` (none) instead of, or with, ``from``
``base_url``            ``SMSLAB_TWILIO_BASE_URL``              ``https://api.twilio.com``
``callback_url``        ``SMSLAB_TWILIO_CALLBACK_URL``          (none: no status callbacks, no receipts)
``concurrency``         ``SMSLAB_TWILIO_CONCURRENCY``           ``8`` requests at once
``timeout``             ``SMSLAB_TWILIO_TIMEOUT``               ``30`` seconds per request
======================  ======================================  ==============================
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import urlsplit

from gateway.platform import PlatformConfigError


@dataclass
class Settings:
    name: str = "twilio"
    account_sid: str = ""
    auth_token: str = ""
    sender: str = ""
    messaging_service_sid: str = ""
    base_url: str = "https://api.twilio.com"
    callback_url: str = ""
    concurrency: int = 8
    timeout: float = 30.0

    @classmethod
    def resolve(cls, extras: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        given = dict((extras or {}).get("twilio") or {})

        def pick(key: str, var: str, default: str = "") -> str:
            value = given.get(key)
            return str(value) if value not in (None, "") else env.get(var) or default

        s = cls()
        s.name = pick("name", "SMSLAB_TWILIO_NAME", s.name)
        s.account_sid = pick("account_sid", "SMSLAB_TWILIO_ACCOUNT_SID")
        s.auth_token = pick("auth_token", "SMSLAB_TWILIO_AUTH_TOKEN")
        s.sender = pick("from", "SMSLAB_TWILIO_FROM")
        s.messaging_service_sid = pick("messaging_service_sid", "SMSLAB_TWILIO_MESSAGING_SERVICE_SID")
        s.base_url = pick("base_url", "SMSLAB_TWILIO_BASE_URL", s.base_url).rstrip("/")
        s.callback_url = pick("callback_url", "SMSLAB_TWILIO_CALLBACK_URL")
        try:
            s.concurrency = int(pick("concurrency", "SMSLAB_TWILIO_CONCURRENCY", "8"))
            s.timeout = float(pick("timeout", "SMSLAB_TWILIO_TIMEOUT", "30"))
        except ValueError:
            raise PlatformConfigError("SMSLAB_TWILIO_CONCURRENCY is a whole number and SMSLAB_TWILIO_TIMEOUT seconds") from None
        return s

    @property
    def enabled(self) -> bool:
        return bool(self.account_sid and self.auth_token)

    def check(self) -> None:
        """Refuse a configuration that cannot work, naming the setting."""
        if not self.sender and not self.messaging_service_sid:
            raise PlatformConfigError("SMSLAB_TWILIO_FROM or SMSLAB_TWILIO_MESSAGING_SERVICE_SID: one is required"
                                      " (the sender of every message)")
        for var, url in (("SMSLAB_TWILIO_BASE_URL", self.base_url), ("SMSLAB_TWILIO_CALLBACK_URL", self.callback_url)):
            if url:
                parts = urlsplit(url)
                if parts.scheme not in ("http", "https") or not parts.hostname:
                    raise PlatformConfigError(f"{var}: an http:// or https:// URL, not {url!r}")
        if not 1 <= self.concurrency <= 1000:
            raise PlatformConfigError("SMSLAB_TWILIO_CONCURRENCY: 1 to 1000")
        if not self.timeout > 0:
            raise PlatformConfigError("SMSLAB_TWILIO_TIMEOUT: seconds above 0")
