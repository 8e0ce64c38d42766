"""Test helpers for smslab plugin authors and users.

- :mod:`gateway.testing.conformance`: the platform conformance suite (subclass
  :class:`PlatformConformance`) and a fake gateway (:class:`Harness`) to drive a Platform on a
  virtual clock. See docs/plugins.md.
- :mod:`gateway.testing.pytest_plugin`: the ``smslab_gateway`` / ``smslab_carrier`` fixtures
  (entry point ``pytest11``). See docs/testing.md.

The conformance names are imported on first use: the pytest plugin loads this package in every
pytest run of every project that installed smslab, which should not pay for the suite.
"""

from __future__ import annotations

__all__ = ["START", "DeliveryFailed", "Harness", "PlatformConformance", "make_batch", "open_harness"]


def __getattr__(name: str):
    if name in __all__:
        from . import conformance

        return getattr(conformance, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
