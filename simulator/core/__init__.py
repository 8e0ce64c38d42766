"""The simulated carrier's core, shared by every front end: tenants and admission
(``tenants``), decisions, planned receipts and ground truth (``carrier``), their persistence
(``books``) and the outbox of what a front end hands out one acknowledgement at a time
(``outbox``). See ``carrier.py``."""

from .carrier import CarrierCore
from .tenants import CarrierTenant, RateWindow, Refusal, outages_moved

__all__ = ["CarrierCore", "CarrierTenant", "RateWindow", "Refusal", "outages_moved"]
