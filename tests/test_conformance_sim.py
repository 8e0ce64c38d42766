"""The built-in simulated carrier (platform ``sim``) passes the platform conformance suite,
with its default profile and with a profile that fails a share of messages and splits receipts
per part."""

from __future__ import annotations

import pytest

from gateway.testing.conformance import PlatformConformance
from simulator import profile as profiles
from simulator.carrier import SimulatedCarrier


class TestSimDefaultProfile(PlatformConformance):
    @pytest.fixture
    def platform_factory(self):
        return SimulatedCarrier


class TestSimFailingProfile(PlatformConformance):
    batch_size = 40
    min_receipt_share = 0.95

    @pytest.fixture
    def platform_factory(self):
        profile = profiles.from_builtins(
            {
                "seed": 7,
                "outcomes": {"delivered": 0.6, "failed": 0.4, "missing": 0},
                "failure_codes": {"UNDELIV": 1, "EXPIRED": 1},
                "receipt_delay": {"kind": "uniform", "low": 0.5, "high": 120},
                "part_policy": "all",
            }
        )
        return lambda: SimulatedCarrier(profile)
