"""Registers one ``smpp`` platform per configured SMSC (``SMSLAB_SMPP_URL``,
``SMSLAB_SMPP_URL_<NAME>``; ``config.extras["smpp"]`` may give URLs by name too)."""

from __future__ import annotations

import logging

from gateway.hookspecs import hookimpl

from .platform import SmppPlatform
from .settings import Settings, from_environment

log = logging.getLogger("smslab.smpp")
_told = False


@hookimpl
def smslab_register_platforms(config):
    extras = (getattr(config, "extras", None) or {}).get("smpp") or {}
    settings = [Settings.from_url(url, "smpp" if name == "smpp" else f"smpp-{name}") for name, url in extras.items()]
    settings += [s for s in from_environment() if s.name not in {x.name for x in settings}]
    if not settings:
        global _told
        if not _told:  # once per process, and only for whoever asked to see info
            _told = True
            log.info("platform 'smpp' is off: set SMSLAB_SMPP_URL=smpp://SYSTEM_ID:PASSWORD@HOST:PORT to send through an SMSC")
        return []
    return [SmppPlatform(s) for s in settings]
