"""What the simulated carrier decides for one message: a pure function of profile and key.

Determinism (SPEC §7) comes from deriving every random draw from a hash of
(seed, message key, part, purpose) instead of from a shared random stream: the decision for a
number does not depend on which batch it came in, in which order, or how many other numbers
were decided before it. The same profile and key always give the same decision.

Everything here is pure: ``decide`` knows nothing of time; ``plan`` places a decision on the
service clock (submission latency, outage windows) given the submission instant and the instant
the profile's outage windows count from; ``expected_result`` replays the planned receipts the way
the gateway folds them, so ground truth can say what the gateway must show.
"""

from __future__ import annotations

import functools
import hashlib
import math
from statistics import NormalDist

import msgspec

from gateway.domain import results as R
from gateway.domain.receipt_fold import TIMED_OUT, fold

from .profile import MAX_DELAY, FixedDelay, LognormalDelay, NumberRule, Profile, UniformDelay, outage_time

_STD_NORMAL = NormalDist()


def draw(seed: int, key: str, purpose: str) -> float:
    """A uniform number in [0, 1) that depends only on its arguments: BLAKE2b of
    ``seed \x1f key \x1f purpose``. The hash state after the seed's bytes is kept and copied (a
    third cheaper than hashing the whole text again: 0.47 against 0.67 µs a draw)."""
    h = _seeded(seed).copy()
    h.update(f"{key}\x1f{purpose}".encode())
    return (int.from_bytes(h.digest(), "big") >> 11) * (1.0 / (1 << 53))


@functools.lru_cache(maxsize=64)
def _seeded(seed: int):
    return hashlib.blake2b(f"{seed}\x1f".encode(), digest_size=8)


def _weighted(options: list[tuple[str, float]], u: float) -> str:
    total = sum(w for _, w in options)
    point = u * total
    acc = 0.0
    for name, weight in options:
        acc += weight
        if point < acc:
            return name
    return options[-1][0]


# Draws are made only where their value can change the decision. A draw costs a BLAKE2b digest
# (about a microsecond), five or more per message, and most profiles fix some of them: a fixed
# delay, a single possible outcome, no duplicates. Skipping those gives exactly the decision the
# draw would have given (each draw depends only on seed, key and purpose, never on other draws),
# so seeds stay reproducible across this optimisation.
def _sample_drawn(delay, seed: int, key: str, purpose: str) -> float:
    fixed = _fixed(delay)
    return fixed if fixed is not None else sample(delay, draw(seed, key, purpose))


def _fixed(delay) -> float | None:
    """The delay's value when it needs no draw (a fixed delay, an empty uniform range), else None."""
    if isinstance(delay, (int, float)) or isinstance(delay, FixedDelay):
        return sample(delay, 0.0)
    if isinstance(delay, UniformDelay) and delay.high == delay.low:
        return delay.low
    return None


def _pick(options: list[tuple[str, float]], seed: int, key: str, purpose: str) -> str:
    positive = [name for name, weight in options if weight > 0]
    if len(positive) == 1:
        return positive[0]  # what _weighted returns for any u in [0, 1)
    if not positive:
        return options[-1][0]
    return _weighted(options, draw(seed, key, purpose))


def _chance(rate: float, seed: int, key: str, purpose: str) -> bool:
    """``draw(...) < rate``, without the draw when the answer cannot depend on it."""
    if rate <= 0:
        return False
    if rate >= 1:
        return True
    return draw(seed, key, purpose) < rate


def sample(delay, u: float) -> float:
    """Seconds from a delay spec (fixed, uniform, lognormal, or a plain number of seconds)."""
    if isinstance(delay, (int, float)):
        return float(delay)
    if isinstance(delay, FixedDelay):
        return delay.seconds
    if isinstance(delay, UniformDelay):
        return delay.low + (delay.high - delay.low) * u
    assert isinstance(delay, LognormalDelay)
    u = min(max(u, 1e-12), 1 - 1e-12)
    # a long tail stops at a year: a wide sigma must not plan a receipt past any clock
    return min(delay.median * math.exp(delay.sigma * _STD_NORMAL.inv_cdf(u)), MAX_DELAY)


# msgspec structs rather than frozen dataclasses or named tuples: the carrier builds two of these
# per message on its hot path, and a struct is built in C (a frozen dataclass sets each field
# through object.__setattr__, a named tuple runs a Python __new__).
class PartReceipt(msgspec.Struct, frozen=True, gc=False):
    part: int | None  # None: a receipt for the whole message
    status: str  # delivered | failed
    code: str
    delay: float  # seconds after submission (submission latency included)
    duplicate: bool = False
    swallowed: bool = False  # due inside a receipts outage: never emitted


class Decision(msgspec.Struct, frozen=True, gc=False):
    outcome: str  # delivered | failed | missing | refused
    code: str | None
    receipts: tuple[PartReceipt, ...]
    latency: float = 0.0  # submission latency, seconds of service time
    rule: str | None = None  # the number rule that forced the outcome, e.g. "number:+15005550001"


class RuleBook:
    """Number rules, compiled: an exact ``number`` rule beats any prefix rule, a longer prefix
    beats a shorter one, and between equals the first in the list wins. Prefixes are grouped by
    length, so matching costs one lookup per distinct length, not one test per rule."""

    def __init__(self, rules: list[NumberRule]):
        self.exact: dict[str, NumberRule] = {}
        by_length: dict[int, dict[str, NumberRule]] = {}
        for rule in rules:
            if rule.number is not None:
                self.exact.setdefault(rule.number, rule)
            elif rule.prefix is not None:
                by_length.setdefault(len(rule.prefix), {}).setdefault(rule.prefix, rule)
        self.prefixes: list[tuple[int, dict[str, NumberRule]]] = sorted(by_length.items(), reverse=True)

    def match(self, number: str | None) -> NumberRule | None:
        if not number:
            return None
        hit = self.exact.get(number)
        if hit is not None:
            return hit
        for length, rules in self.prefixes:
            hit = rules.get(number[:length])
            if hit is not None:
                return hit
        return None


def rule_label(rule: NumberRule) -> str:
    return f"number:{rule.number}" if rule.number is not None else f"prefix:{rule.prefix}"


class _ProfileFacts:
    """What ``decide`` needs from a profile that is the same for every message, worked out once."""

    __slots__ = ("profile", "outcomes", "codes", "latency", "delay", "sole_outcome", "duplicates", "plain")

    def __init__(self, profile: Profile):
        self.profile = profile
        o = profile.outcomes
        self.outcomes = [("delivered", o.delivered), ("failed", o.failed), ("missing", o.missing)]
        self.codes = sorted(profile.failure_codes.items())
        self.latency = _fixed(profile.submit_latency)  # None: drawn per message
        self.delay = _fixed(profile.receipt_delay)
        positive = [name for name, weight in self.outcomes if weight > 0]
        self.sole_outcome = positive[0] if len(positive) == 1 else None  # what _pick returns for any draw
        self.duplicates = profile.duplicate_rate > 0
        # every message delivered after a fixed delay, no duplicates: a single-part message's
        # decision then depends only on its jitter draw (see decide_many)
        self.plain = (self.latency is not None and self.delay is not None and self.sole_outcome == "delivered"
                      and not self.duplicates)


_facts: _ProfileFacts | None = None


def _facts_of(profile: Profile) -> _ProfileFacts:
    global _facts
    facts = _facts
    if facts is None or facts.profile is not profile:
        facts = _facts = _ProfileFacts(profile)
    return facts


def decide(profile: Profile, key: str, parts: int, number: str | None = None, rules: RuleBook | None = None) -> Decision:
    """The carrier's decision for one message: ``key`` identifies it (the simulated carrier uses
    ``"{task_id}:{number}"``), ``number`` (E.164) selects a number rule, if any matches."""
    seed = profile.seed
    facts = _facts_of(profile)
    latency = facts.latency if facts.latency is not None else sample(profile.submit_latency, draw(seed, key, "latency"))
    rule = None
    if number is not None and profile.number_rules:
        rule = (rules or RuleBook(profile.number_rules)).match(number)
    if rule is not None:
        return _decide_by_rule(profile, key, parts, rule, latency)
    outcome = facts.sole_outcome or _pick(facts.outcomes, seed, key, "outcome")
    if outcome == "missing":
        return Decision("missing", None, (), latency)
    if outcome == "failed":
        code = _pick(facts.codes, seed, key, "code")
        failing_part = int(draw(seed, key, "failing-part") * parts) if parts > 1 else 0
    else:
        code = "DELIVERED"
        failing_part = -1
    if parts == 1:
        reported = (0,)
    elif profile.part_policy == "first":
        reported = (0,)
    elif profile.part_policy == "last":
        reported = (parts - 1,)
    else:
        reported = range(parts)
    base = facts.delay if facts.delay is not None else sample(profile.receipt_delay, draw(seed, key, "delay"))
    receipts: list[PartReceipt] = []
    for part in reported:
        # one message's parts arrive close together and in part order; with reorder they may
        # overtake each other (and other messages' receipts)
        jitter = _jitter(profile, seed, key, part, base)
        delay = base + jitter
        # the chosen part fails; other parts of a failed message may fail too, each with a code
        # of its own, which is how one number ends up with several failure reasons
        part_failed = outcome == "failed" and (
            part == failing_part or profile.part_policy != "all" or draw(seed, key, f"part-fails-{part}") < 0.5
        )
        status = "failed" if part_failed else "delivered"
        if not part_failed:
            part_code = "DELIVERED"
        elif part == failing_part or profile.part_policy != "all":
            part_code = code
        else:
            part_code = _pick(facts.codes, seed, key, f"code-{part}")
        part_ref = part if parts > 1 and profile.part_policy == "all" else None
        receipts.append(PartReceipt(part_ref, status, part_code, latency + delay))
        if facts.duplicates and _chance(profile.duplicate_rate, seed, key, f"dup-{part}"):
            extra = _sample_drawn(profile.receipt_delay, seed, key, f"dup-delay-{part}")
            receipts.append(PartReceipt(part_ref, status, part_code, latency + delay + extra, duplicate=True))
    return Decision(outcome, code, tuple(receipts), latency)


def decide_many(profile: Profile, messages: list[tuple[str, int, str | None]], rules: RuleBook | None = None) -> list[Decision]:
    """``decide`` for each ``(key, parts, number)``, the same decisions (``tests/test_simulator_
    reproducible.py`` holds them to the model's recorded hashes through this function). For a
    plain profile (``_ProfileFacts.plain``) a single-part message that no number rule names is
    decided inline: one jitter draw, no calls."""
    facts = _facts_of(profile)
    if not facts.plain:
        return [decide(profile, key, parts, number, rules) for key, parts, number in messages]
    rules = rules or RuleBook(profile.number_rules)
    exact, prefixed = rules.exact, bool(rules.prefixes)
    seed, latency, base, reorder = profile.seed, facts.latency, facts.delay, profile.reorder
    seeded = _seeded(seed)
    out = []
    for key, parts, number in messages:
        if parts != 1 or not number or number in exact or (prefixed and rules.match(number) is not None):
            out.append(decide(profile, key, parts, number, rules))
            continue
        if reorder and base == 0:
            jitter = 0.0
        else:
            h = seeded.copy()  # draw(seed, key, "jitter-0"), written out: this loop runs per message
            h.update(f"{key}\x1fjitter-0".encode())
            u = (int.from_bytes(h.digest(), "big") >> 11) * (1.0 / (1 << 53))
            jitter = u * base if reorder else 0.001 * (0 + 0.5 * u)
        out.append(Decision("delivered", "DELIVERED", (PartReceipt(None, "delivered", "DELIVERED", latency + (base + jitter)),),
                            latency))
    return out


def _jitter(profile: Profile, seed: int, key: str, part: int, base: float) -> float:
    if profile.reorder and base == 0:
        return 0.0
    u = draw(seed, key, f"jitter-{part}")
    if profile.reorder:
        return u * base
    return 0.001 * (part + 0.5 * u)


def _reported_parts(profile: Profile, parts: int) -> list[int]:
    if profile.part_policy == "first":
        return [0]
    if profile.part_policy == "last":
        return [parts - 1]
    return list(range(parts))


def _decide_by_rule(profile: Profile, key: str, parts: int, rule: NumberRule, latency: float) -> Decision:
    """A magic number: outcome, code and delay are the rule's; every reported part shares the
    outcome. The profile's duplicates still apply, and its reordering unless the rule fixes the delay."""
    seed = profile.seed
    label = rule_label(rule)
    if rule.outcome == "refused":
        return Decision("refused", rule.code or "REFUSED", (), 0.0, label)
    if rule.outcome == "missing":
        return Decision("missing", None, (), latency, label)
    if rule.outcome == "failed":
        code = rule.code or _pick(sorted(profile.failure_codes.items()), seed, key, "code")
        status = "failed"
    else:
        code = rule.code or "DELIVERED"
        status = "delivered"
    base = rule.delay if rule.delay is not None else _sample_drawn(profile.receipt_delay, seed, key, "delay")
    receipts: list[PartReceipt] = []
    for part in _reported_parts(profile, parts):
        # a rule's delay is kept (parts 1 ms apart, in order); without one the profile's reordering applies
        jitter = 0.001 * part if rule.delay is not None else _jitter(profile, seed, key, part, base)
        delay = latency + base + jitter
        part_ref = part if parts > 1 and profile.part_policy == "all" else None
        receipts.append(PartReceipt(part_ref, status, code, delay))
        if _chance(profile.duplicate_rate, seed, key, f"dup-{part}"):
            extra = _sample_drawn(profile.receipt_delay, seed, key, f"dup-delay-{part}")
            receipts.append(PartReceipt(part_ref, status, code, delay + extra, duplicate=True))
    return Decision(rule.outcome, code, tuple(receipts), latency, label)


# -- the decision on the service clock ------------------------------------------------------------
def outage_windows(profile: Profile, kind: str, anchor: float) -> list[tuple[float, float]]:
    """The profile's outage windows of one kind as [start, end) epoch seconds; relative bounds
    count from ``anchor`` (when the outages list became active)."""
    return [
        (outage_time(o.start, anchor), outage_time(o.end, anchor)) for o in profile.outages if o.kind == kind
    ]


def submit_outage_until(profile: Profile, now: float, anchor: float) -> float | None:
    """The end of the submission outage ``now`` falls in, or None when submissions are accepted."""
    ends = [end for start, end in outage_windows(profile, "submit", anchor) if start <= now < end]
    return max(ends) if ends else None


def plan(decision: Decision, profile: Profile, submitted_at: float, anchor: float) -> Decision:
    """Mark the receipts that fall due inside a receipts outage as swallowed."""
    windows = outage_windows(profile, "receipts", anchor)
    if not windows or not decision.receipts:
        return decision
    marked = []
    for r in decision.receipts:
        due = submitted_at + r.delay
        if any(start <= due < end for start, end in windows):
            r = msgspec.structs.replace(r, swallowed=True)
        marked.append(r)
    return msgspec.structs.replace(decision, receipts=tuple(marked))


def expected_result(parts: int, submitted_at: float, receipts: list[tuple[float, int | None, str, bool]], timeout: float) -> str:
    """What the gateway must show for a message once every planned receipt fell due, from the
    receipts as ``(due_at, part, status, swallowed)``: ``succeeded``, ``failed``, or
    ``receipt_timeout`` (no final receipt before the receipt timeout: the gateway shows
    ``pending`` until then and ``failed`` with RECEIPT_TIMEOUT after): the receipts folded by the
    gateway's own ``receipt_fold.fold`` (SPEC §4), so a change of the rule changes both."""
    result, delivered, failed = R.PENDING, 0, 0
    for due, part, status, _swallowed in sorted((r for r in receipts if not r[3]), key=lambda r: r[0]):
        folded = fold(submitted_at, parts, result, delivered, failed, 0, None, status, part, None, None, due, timeout)
        if folded.did == TIMED_OUT:
            break
        result, delivered, failed = folded.result, folded.delivered, folded.failed
        if result != R.PENDING:
            return R.RESULT_NAMES[result]
    return "receipt_timeout"
