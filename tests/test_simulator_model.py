"""The simulated carrier's profile and decision model, as pure functions (no service)."""

from __future__ import annotations

import random
import statistics
from pathlib import Path

import pytest

from simulator import profile as P
from simulator.core import RateWindow
from simulator.model import (RuleBook, decide, draw, expected_result, outage_windows, plan, sample, submit_outage_until)

SPEC_DEFAULTS = {
    "seed": 42,
    "outcomes": {"delivered": 0.90, "failed": 0.07, "missing": 0.03},
    "failure_codes": {"UNDELIV": 3, "EXPIRED": 1, "MK:0005": 1},
    "receipt_delay": {"kind": "lognormal", "median": 5.0, "sigma": 1.0},
    "max_recipients": 1000000,
    "moderation": {"banned_words": ["lottery"], "review_seconds": 30},
    "duplicate_rate": 0.0,
    "reorder": False,
    "part_policy": "all",
    "throughput_limit": None,
}


def prof(**fields) -> P.Profile:
    return P.merge(P.Profile(), fields)


def keys(n: int, task: int = 1) -> list[tuple[str, str]]:
    return [(f"{task}:+86138{i:08d}", f"+86138{i:08d}") for i in range(n)]


# -- the profile -------------------------------------------------------------------------------
def test_default_profile_keeps_the_spec_defaults():
    data = P.to_builtins(P.Profile())
    for name, value in SPEC_DEFAULTS.items():
        assert data[name] == value, name
    assert data["submit_latency"] == 0.0 and data["outages"] == []
    assert {r["number"] for r in data["number_rules"]} >= {"+15005550001", "+15005550006", "+15005550020"}
    # a replacement that leaves a field out gets its default
    assert P.from_json(b'{"seed": 7}').number_rules == P.Profile().number_rules


@pytest.mark.parametrize("name", ["perfect", "realistic", "flaky", "outage", "black-hole"])
def test_presets_load_and_describe_themselves(name):
    assert name in P.preset_names()
    profile = P.load_preset(name)
    assert P.preset_description(name)
    assert P.from_builtins(P.to_builtins(profile)) == profile  # round-trips through JSON


def test_preset_contents():
    assert P.load_preset("black-hole").outcomes.missing == 1.0
    assert P.load_preset("perfect").outcomes.delivered == 1.0
    assert any(o.kind == "receipts" for o in P.load_preset("outage").outages)
    assert P.load_preset("flaky").throughput_limit and P.load_preset("flaky").duplicate_rate > 0
    assert not isinstance(P.load_preset("realistic").submit_latency, float)


@pytest.mark.parametrize(
    "patch, field",
    [
        ({"submit_latency": -1}, "submit_latency"),
        ({"submit_latency": {"kind": "uniform", "low": 3, "high": 1}}, "submit_latency.high"),
        ({"throughput_limit": 0}, "throughput_limit"),
        ({"outages": [{"start": 10, "end": 5}]}, "outages[0].end"),
        ({"outages": [{"start": "yesterday", "end": 5}]}, "outages[0].start"),
        ({"outages": [{"start": 0, "end": 5, "kind": "both"}]}, "outages[0].kind"),
        ({"number_rules": [{"outcome": "failed"}]}, "number_rules[0]"),
        ({"number_rules": [{"outcome": "failed", "number": "+1", "prefix": "+1"}]}, "number_rules[0]"),
        ({"number_rules": [{"outcome": "failed", "prefix": "0086"}]}, "number_rules[0].prefix"),
        ({"number_rules": [{"outcome": "lost", "number": "+15005550006"}]}, "number_rules[0].outcome"),
    ],
)
def test_bad_profiles_name_the_field(patch, field):
    with pytest.raises(P.ProfileError) as exc:
        prof(**patch)
    assert field in str(exc.value)


def test_merge_of_delays_and_lists():
    p = prof(submit_latency={"kind": "uniform", "low": 1, "high": 2})
    assert prof(submit_latency=0.5).submit_latency == 0.5
    assert P.merge(p, {"submit_latency": {"high": 4}}).submit_latency == P.UniformDelay(1, 4)
    assert P.merge(p, {"submit_latency": {"kind": "fixed", "seconds": 3}}).submit_latency == P.FixedDelay(3)
    assert P.merge(p, {"number_rules": []}).number_rules == []


def test_toml_datetimes_become_rfc3339(tmp_path: Path):
    f = tmp_path / "p.toml"
    f.write_text('seed = 3\n[[outages]]\nstart = 2024-05-01T10:00:00Z\nend = 2024-05-01T11:00:00Z\nkind = "receipts"\n')
    profile = P.load_file(f)
    assert profile.outages[0].start == "2024-05-01T10:00:00Z"
    assert outage_windows(profile, "receipts", 0.0) == [(1714557600.0, 1714561200.0)]


# -- decisions ---------------------------------------------------------------------------------
def test_draw_is_a_pure_function_in_range():
    values = [draw(1, f"k{i}", "outcome") for i in range(2000)]
    assert values == [draw(1, f"k{i}", "outcome") for i in range(2000)]
    assert all(0 <= v < 1 for v in values)
    assert 0.45 < statistics.mean(values) < 0.55
    assert draw(1, "k", "outcome") != draw(2, "k", "outcome")


def test_decisions_do_not_depend_on_order_or_grouping():
    profile = prof(seed=9, duplicate_rate=0.3, reorder=True, outcomes={"delivered": 0.5, "failed": 0.3, "missing": 0.2})
    items = keys(500)
    alone = {k: decide(profile, k, 3, n) for k, n in items}
    shuffled = items[:]
    random.Random(5).shuffle(shuffled)
    rules = RuleBook(profile.number_rules)
    for start in range(0, len(shuffled), 37):  # "batches" of another size, another order
        for k, n in shuffled[start : start + 37]:
            assert decide(profile, k, 3, n, rules) == alone[k]
    # another seed gives other decisions
    other = prof(seed=10, duplicate_rate=0.3, reorder=True, outcomes={"delivered": 0.5, "failed": 0.3, "missing": 0.2})
    assert sum(decide(other, k, 3, n) != alone[k] for k, n in items) > 400


def test_outcome_and_code_shares_follow_the_weights():
    profile = prof(outcomes={"delivered": 0.6, "failed": 0.3, "missing": 0.1}, failure_codes={"A": 3, "B": 1})
    decisions = [decide(profile, k, 1, n) for k, n in keys(20000)]
    share = {o: sum(d.outcome == o for d in decisions) / len(decisions) for o in ("delivered", "failed", "missing")}
    assert abs(share["delivered"] - 0.6) < 0.02 and abs(share["failed"] - 0.3) < 0.02 and abs(share["missing"] - 0.1) < 0.01
    codes = [d.code for d in decisions if d.outcome == "failed"]
    assert abs(codes.count("A") / len(codes) - 0.75) < 0.03
    assert all(not d.receipts for d in decisions if d.outcome == "missing")


def test_delay_distributions():
    us = [draw(0, str(i), "d") for i in range(5000)]
    assert {sample(P.FixedDelay(4.0), u) for u in us} == {4.0}
    assert sample(2.5, 0.3) == 2.5
    uniform = [sample(P.UniformDelay(2, 6), u) for u in us]
    assert min(uniform) >= 2 and max(uniform) <= 6 and abs(statistics.mean(uniform) - 4) < 0.1
    logn = [sample(P.LognormalDelay(10, 1.0), u) for u in us]
    assert abs(statistics.median(logn) - 10) < 0.8 and max(logn) > 50 and min(logn) > 0


@pytest.mark.parametrize("policy, expected_parts", [("all", [0, 1, 2]), ("first", [None]), ("last", [None])])
def test_part_policy(policy, expected_parts):
    profile = prof(outcomes={"delivered": 1, "failed": 0, "missing": 0}, part_policy=policy)
    for k, n in keys(50):
        d = decide(profile, k, 3, n)
        assert [r.part for r in d.receipts] == expected_parts
        assert all(r.status == "delivered" and r.code == "DELIVERED" for r in d.receipts)
    single = decide(profile, "1:+8613800000000", 1, "+8613800000000")
    assert [r.part for r in single.receipts] == [None]


def test_failed_multipart_messages_fail_at_least_one_part_and_may_fail_several():
    profile = prof(outcomes={"delivered": 0, "failed": 1, "missing": 0})
    several = 0
    for k, n in keys(300):
        d = decide(profile, k, 4, n)
        failed = [r for r in d.receipts if r.status == "failed"]
        assert failed and d.code in {r.code for r in failed}
        several += len(failed) > 1
    assert several > 50


def test_duplicates_and_reorder():
    base = prof(outcomes={"delivered": 1, "failed": 0, "missing": 0})
    plain = {k: decide(base, k, 3, n) for k, n in keys(300)}
    for d in plain.values():
        delays = [r.delay for r in d.receipts]
        assert delays == sorted(delays) and max(delays) - min(delays) <= 0.003  # parts together, in order
        assert not any(r.duplicate for r in d.receipts)
    dup = prof(outcomes={"delivered": 1, "failed": 0, "missing": 0}, duplicate_rate=1.0)
    for k, n in keys(100):
        d = decide(dup, k, 3, n)
        originals = [r for r in d.receipts if not r.duplicate]
        copies = [r for r in d.receipts if r.duplicate]
        assert len(originals) == len(copies) == 3
        for o, c in zip(originals, copies):
            assert (o.part, o.status, o.code) == (c.part, c.status, c.code) and c.delay >= o.delay
    reordered = prof(outcomes={"delivered": 1, "failed": 0, "missing": 0}, reorder=True)
    overtaken = 0
    for k, n in keys(300):
        delays = [r.delay for r in decide(reordered, k, 3, n).receipts]
        overtaken += delays != sorted(delays)
    assert overtaken > 100
    # reordering and duplicates never change what was decided
    for k, n in keys(300):
        assert decide(reordered, k, 3, n).outcome == plain[k].outcome


def test_submit_latency_shifts_every_receipt_and_nothing_else():
    base = prof(duplicate_rate=0.2)
    slow = prof(duplicate_rate=0.2, submit_latency={"kind": "uniform", "low": 1, "high": 3})
    for k, n in keys(200):
        a, b = decide(base, k, 2, n), decide(slow, k, 2, n)
        assert a.latency == 0 and 1 <= b.latency <= 3
        assert (a.outcome, a.code) == (b.outcome, b.code)
        assert [r.delay + b.latency for r in a.receipts] == pytest.approx([r.delay for r in b.receipts])


# -- number rules ------------------------------------------------------------------------------
def test_magic_numbers_of_the_default_profile():
    profile = P.Profile()
    refused = decide(profile, "1:+15005550001", 1, "+15005550001")
    assert (refused.outcome, refused.code, refused.receipts, refused.rule) == ("refused", "21211", (), "number:+15005550001")
    failed = decide(profile, "1:+15005550010", 2, "+15005550010")
    assert failed.outcome == "failed" and {(r.status, r.code) for r in failed.receipts} == {("failed", "UNDELIV")}
    assert decide(profile, "1:+15005550020", 1, "+15005550020").outcome == "missing"
    late = decide(profile, "1:+15005550031", 1, "+15005550031")
    assert late.outcome == "delivered" and late.receipts[0].delay == pytest.approx(73 * 3600, abs=0.01)
    ok = decide(profile, "1:+15005550000", 1, "+15005550000")
    assert ok.receipts[0].delay < 0.01 and ok.receipts[0].status == "delivered"
    # without the number the rules are not consulted (the model's original signature)
    assert decide(profile, "1:+15005550001", 1).outcome != "refused"


def test_rule_precedence_exact_then_longest_prefix_then_list_order():
    profile = prof(number_rules=[
        {"prefix": "+86", "outcome": "failed", "code": "P2"},
        {"prefix": "+86138", "outcome": "missing"},
        {"prefix": "+86138", "outcome": "delivered"},
        {"number": "+8613800000007", "outcome": "refused", "code": "X"},
    ])
    assert decide(profile, "k", 1, "+8613800000007").outcome == "refused"
    assert decide(profile, "k", 1, "+8613800000008").outcome == "missing"
    d = decide(profile, "k", 1, "+8615000000000")
    assert d.outcome == "failed" and d.code == "P2" and d.rule == "prefix:+86"
    assert decide(profile, "k", 1, "+14155552671").rule is None
    fixed = prof(number_rules=[{"prefix": "+1", "outcome": "delivered", "delay": 42}], duplicate_rate=1.0)
    d = decide(fixed, "k", 1, "+14155552671")
    assert [round(r.delay) for r in d.receipts][0] == 42 and d.receipts[1].duplicate


# -- time: outages and the expected result --------------------------------------------------------
def test_outage_windows_relative_and_absolute():
    profile = prof(outages=[
        {"start": 10, "end": 20, "kind": "submit"},
        {"start": "1970-01-01T00:01:40Z", "end": "1970-01-01T00:02:00Z", "kind": "submit"},
        {"start": 0, "end": 50, "kind": "receipts"},
    ])
    anchor = 1000.0
    assert outage_windows(profile, "submit", anchor) == [(1010.0, 1020.0), (100.0, 120.0)]
    assert submit_outage_until(profile, 1009.9, anchor) is None
    assert submit_outage_until(profile, 1010.0, anchor) == 1020.0
    assert submit_outage_until(profile, 1020.0, anchor) is None
    assert submit_outage_until(profile, 110.0, anchor) == 120.0
    fixed = prof(outages=[{"start": 0, "end": 50, "kind": "receipts"}], receipt_delay={"kind": "fixed", "seconds": 30},
                 outcomes={"delivered": 1, "failed": 0, "missing": 0})
    early = plan(decide(fixed, "k", 2, "+8613800000001"), fixed, submitted_at=anchor, anchor=anchor)
    late = plan(decide(fixed, "k", 2, "+8613800000001"), fixed, submitted_at=anchor + 30, anchor=anchor)
    assert all(r.swallowed for r in early.receipts) and not any(r.swallowed for r in late.receipts)


def test_expected_result_mirrors_the_gateway():
    T = 100.0
    assert expected_result(1, 0, [(5, None, "delivered", False)], T) == "succeeded"
    assert expected_result(1, 0, [(5, None, "delivered", True)], T) == "receipt_timeout"
    assert expected_result(1, 0, [], T) == "receipt_timeout"
    assert expected_result(1, 0, [(101, None, "delivered", False)], T) == "receipt_timeout"
    assert expected_result(2, 0, [(5, 0, "delivered", False), (6, 1, "delivered", False)], T) == "succeeded"
    assert expected_result(2, 0, [(5, 0, "delivered", False), (6, 1, "delivered", True)], T) == "receipt_timeout"
    assert expected_result(2, 0, [(6, 1, "failed", False), (5, 0, "delivered", False)], T) == "failed"
    # a duplicate of a delivered part does not complete another part
    assert expected_result(2, 0, [(5, 0, "delivered", False), (6, 0, "delivered", False)], T) == "receipt_timeout"
    # first/last part policy: one whole-message receipt decides
    assert expected_result(3, 0, [(5, None, "failed", False)], T) == "failed"


# -- the throughput window (real time) ----------------------------------------------------------
def test_rate_window_admits_refuses_and_always_progresses():
    t = [0.0]
    w = RateWindow(lambda: t[0])
    assert w.take(150, 200) is None
    wait = w.take(100, 200)
    assert wait == pytest.approx(1.0)  # refused whole, until the first batch leaves the window
    t[0] = 0.5
    assert w.take(50, 200) is None  # a batch that fits is admitted
    assert w.take(1, 200) == pytest.approx(0.5)
    t[0] = 1.0
    assert w.in_window() == 50 and w.take(100, 200) is None
    # a batch bigger than the limit: admitted only into an empty window, then holds it n/limit s
    t[0] = 2.5
    assert w.take(500, 200) is None
    assert w.take(1, 200) == pytest.approx(2.5)
    t[0] = 4.99
    assert w.take(1, 200) is not None
    t[0] = 5.0
    assert w.take(1, 200) is None


def test_rate_window_average_rate_stays_at_the_limit():
    t = [0.0]
    w = RateWindow(lambda: t[0])
    sent = 0
    while t[0] < 10.0:
        for size in (70, 300):  # two senders with different batch sizes
            wait = w.take(size, 100)
            if wait is None:
                sent += size
            else:
                t[0] += min(wait, 0.05)
    assert sent <= 100 * 10 + 300
    assert sent >= 100 * 10 * 0.7
