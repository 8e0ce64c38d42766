"""A seed means the same decisions in every version of smslab.

``tests/data/decisions.json`` holds, per profile, a hash of the decisions ``decide`` made for
400 messages (single and multi-part, magic numbers included) when the file was written, by the
model as it was before its draws were made lazy. A change to the model that changes any
decision for an existing seed fails here: such a change needs a new model version, not a quiet
change of what a recorded seed replays."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from simulator import profile as P
from simulator.model import RuleBook, decide, decide_many

GOLDEN = Path(__file__).parent / "data" / "decisions.json"

PROFILES = {
    "default": {},
    "perfect": {"outcomes": {"delivered": 1, "failed": 0, "missing": 0}, "receipt_delay": {"kind": "fixed", "seconds": 0},
                "submit_latency": 0.0},
    "plain-reordered": {"reorder": True, "receipt_delay": {"kind": "fixed", "seconds": 2}, "submit_latency": 0.5,
                        "outcomes": {"delivered": 1, "failed": 0, "missing": 0}},
    "realistic-ish": {"seed": 3, "duplicate_rate": 0.3, "reorder": True,
                      "submit_latency": {"kind": "lognormal", "median": 1, "sigma": 0.5},
                      "outcomes": {"delivered": 0.6, "failed": 0.3, "missing": 0.1}},
    "all-fail-duplicated": {"seed": 9, "duplicate_rate": 1.0, "outcomes": {"delivered": 0, "failed": 1, "missing": 0},
                            "failure_codes": {"UNDELIV": 2, "EXPIRED": 1}},
    "first-part": {"part_policy": "first", "receipt_delay": {"kind": "uniform", "low": 1, "high": 9},
                   "outcomes": {"delivered": 0.5, "failed": 0.5, "missing": 0}},
    "prefix-rules": {"number_rules": [{"prefix": "+1", "outcome": "failed"},
                                      {"number": "+15005550001", "outcome": "delivered", "delay": 3}],
                     "duplicate_rate": 0.2},
}


def canonical(decision) -> str:
    return json.dumps([decision.outcome, decision.code, repr(decision.latency), decision.rule,
                       [[r.part, r.status, r.code, repr(r.delay), bool(r.duplicate), bool(r.swallowed)]
                        for r in decision.receipts]])


def _messages() -> list[tuple[str, int, str]]:
    out = []
    for i in range(400):
        number = ["+15005550001", f"+1415555{i:04d}", f"+86138{i:08d}"][i % 3]
        out.append((f"{i}:{number}", (1, 2, 3, 1)[i % 4], number))
    return out


def digest(decisions) -> str:
    h = hashlib.sha256()
    for decision in decisions:
        h.update(canonical(decision).encode())
    return h.hexdigest()


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_a_seed_replays_the_same_decisions(name):
    profile = P.merge(P.Profile(), PROFILES[name])
    rules = RuleBook(profile.number_rules)
    golden = json.loads(GOLDEN.read_text())[name]
    assert digest(decide(profile, key, parts, number, rules) for key, parts, number in _messages()) == golden
    assert digest(decide_many(profile, _messages(), rules)) == golden  # the batch path, fast or not
