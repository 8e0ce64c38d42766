"""smslab-http: the ``http`` platform, an SMS carrier reached over HTTP (see README.md)."""

from .plugin import HttpCarrier, Settings

__all__ = ["HttpCarrier", "Settings"]
__version__ = "0.1.0"
