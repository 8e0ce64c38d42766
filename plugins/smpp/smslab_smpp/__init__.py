"""smslab-smpp: the gateway sends through any SMSC over SMPP 3.4 (see README.md)."""
