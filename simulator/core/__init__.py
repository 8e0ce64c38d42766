"""The simulated carrier's core, shared by every front end: tenants and admission
(``tenants``), decisions, planned receipts and ground truth (``carrier``), their persistence
(``books``: one interface, kept in SQLite by ``books_sqlite`` or in the gateway's PostgreSQL
database by ``books_postgres``) and the outbox of what a front end hands out one acknowledgement
at a time (``outbox``). See ``carrier.py``."""

from .carrier import CarrierCore
from .tenants import CarrierTenant, RateWindow, Refusal, outages_moved

__all__ = ["CarrierCore", "CarrierTenant", "RateWindow", "Refusal", "outages_moved"]
