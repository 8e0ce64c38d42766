"""Delivery error codes and the text a receipt carries for each.

The codes are what carriers put in receipts (SMPP's ``stat``/``err``, vendors' error codes);
every front end of the simulated carrier (in-process, HTTP, SMPP) and the platform plugins
that read them share this one table, so a code reads the same wherever it shows up.
"""

from __future__ import annotations

ERROR_TEXT = {
    "DELIVERED": "delivered",
    "UNDELIV": "the message could not be delivered",
    "EXPIRED": "the message expired before it could be delivered",
    "REJECTD": "the message was rejected by the operator",
    "MK:0005": "the number is out of service or blacklisted by the operator",
    "MK:0001": "the handset is switched off",
    "IB:0008": "the number is in the operator's blacklist",
    "REFUSED": "the carrier refused the number",
    "21211": "invalid 'To' phone number",
    "21612": "the carrier cannot route to this number",
    "21408": "permission to send to this region is not enabled",
    "21610": "the recipient has unsubscribed (STOP)",
    "21614": "the number is not a mobile number and cannot receive SMS",
}


def error_text(code: str | None) -> str | None:
    if code is None:
        return None
    return ERROR_TEXT.get(code, f"carrier error {code}")
