"""Test helpers for smslab plugin authors.

- :mod:`gateway.testing.conformance`: the platform conformance suite (subclass
  :class:`PlatformConformance`) and a fake gateway (:class:`Harness`) to drive a Platform on a
  virtual clock. See docs/plugins.md.
"""

from .conformance import START, DeliveryFailed, Harness, PlatformConformance, make_batch, open_harness

__all__ = ["START", "DeliveryFailed", "Harness", "PlatformConformance", "make_batch", "open_harness"]
