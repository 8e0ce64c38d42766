"""smslab gateway: SMS send tasks, platforms as plugins, a batched receipt pipeline."""

__version__ = "0.1.0"
