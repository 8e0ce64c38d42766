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


# The SMPP receipt a code becomes: the message_state name (SMPP 3.4 5.2.28) its ``stat`` word
# stands for, and the ``err`` number. Codes not listed fail as UNDELIVERABLE with err 99; an
# ``err`` the table does not know reads back as ``SMPP:<stat>:<err>``.
SMPP_RECEIPT_CODES: dict[str, tuple[str, int]] = {
    "DELIVERED": ("DELIVERED", 0),
    "UNDELIV": ("UNDELIVERABLE", 1),
    "EXPIRED": ("EXPIRED", 2),
    "REJECTD": ("REJECTED", 3),
    "MK:0001": ("UNDELIVERABLE", 4),
    "MK:0005": ("UNDELIVERABLE", 5),
    "IB:0008": ("UNDELIVERABLE", 8),
    "DELETED": ("DELETED", 9),
}
SMPP_ERR_CODES = {err: code for code, (_, err) in SMPP_RECEIPT_CODES.items()}


def smpp_state(status: str | None, code: str | None) -> tuple[str, int]:
    """(message_state name, err) of a receipt with this status and code."""
    if status == "delivered":
        return "DELIVERED", 0
    return SMPP_RECEIPT_CODES.get(code or "", ("UNDELIVERABLE", 99))


def code_of_smpp(state: str, err: int | None) -> str:
    """The code a gateway shows for an SMPP receipt (the inverse of ``smpp_state``)."""
    if state == "DELIVERED":
        return "DELIVERED"
    code = SMPP_ERR_CODES.get(err) if err is not None else None
    if code is not None and SMPP_RECEIPT_CODES[code][0] == state:
        return code
    return f"SMPP:{state}:{err if err is not None else '-'}"
