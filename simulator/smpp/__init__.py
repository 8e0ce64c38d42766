"""The simulated carrier's SMPP 3.4 front end: the SMSC (``smsc.py``), one session per bind
(``session.py``) and TLS (``tls.py``). The wire format itself is ``gateway.wire.smpp``, shared
with the gateway's ESME."""
