"""smslab platform plugin: Alibaba Cloud SMS (see plugin.py and README.md)."""

__version__ = "0.1.0"
