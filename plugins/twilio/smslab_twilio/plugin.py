"""Registers the ``twilio`` platform once it has an AccountSid and an auth token."""

from __future__ import annotations

import logging

from gateway.hookspecs import hookimpl

from .platform import TwilioPlatform
from .settings import Settings

log = logging.getLogger("smslab.twilio")
_told = False


@hookimpl
def smslab_register_platforms(config):
    settings = Settings.resolve(getattr(config, "extras", None) or {})
    if not settings.enabled:
        global _told
        if not _told:  # once per process
            _told = True
            log.info("platform 'twilio' is off: set SMSLAB_TWILIO_ACCOUNT_SID, SMSLAB_TWILIO_AUTH_TOKEN and"
                     " SMSLAB_TWILIO_FROM (SMSLAB_TWILIO_BASE_URL for smslab carrier) to send through Twilio")
        return []
    settings.check()
    return [TwilioPlatform(settings)]
