"""smslab-twilio: the ``twilio`` platform, Twilio's Messages API with status callbacks (see README.md)."""

from .platform import TwilioPlatform
from .settings import Settings

__all__ = ["Settings", "TwilioPlatform"]
__version__ = "0.1.0"
