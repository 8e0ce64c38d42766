"""What the simulated carrier decides for one message: a pure function of profile and key.

Determinism (SPEC §7) comes from deriving every random draw from a hash of
(seed, message key, part, purpose) instead of from a shared random stream: the decision for a
number does not depend on which batch it came in, in which order, or how many other numbers
were decided before it. The same profile and key always give the same decision.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from statistics import NormalDist

from .profile import FixedDelay, LognormalDelay, Profile, UniformDelay

_STD_NORMAL = NormalDist()


def draw(seed: int, key: str, purpose: str) -> float:
    """A uniform number in [0, 1) that depends only on its arguments."""
    digest = hashlib.blake2b(f"{seed}\x1f{key}\x1f{purpose}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 11) * (1.0 / (1 << 53))


def _weighted(options: list[tuple[str, float]], u: float) -> str:
    total = sum(w for _, w in options)
    point = u * total
    acc = 0.0
    for name, weight in options:
        acc += weight
        if point < acc:
            return name
    return options[-1][0]


def sample_delay(profile: Profile, u: float) -> float:
    delay = profile.receipt_delay
    if isinstance(delay, FixedDelay):
        return delay.seconds
    if isinstance(delay, UniformDelay):
        return delay.low + (delay.high - delay.low) * u
    assert isinstance(delay, LognormalDelay)
    u = min(max(u, 1e-12), 1 - 1e-12)
    return delay.median * math.exp(delay.sigma * _STD_NORMAL.inv_cdf(u))


@dataclass(frozen=True, slots=True)
class PartReceipt:
    part: int | None  # None: a receipt for the whole message
    status: str  # delivered | failed
    code: str
    delay: float  # seconds after submission
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: str  # delivered | failed | missing
    code: str | None
    receipts: tuple[PartReceipt, ...]


def decide(profile: Profile, key: str, parts: int) -> Decision:
    seed = profile.seed
    o = profile.outcomes
    outcome = _weighted([("delivered", o.delivered), ("failed", o.failed), ("missing", o.missing)], draw(seed, key, "outcome"))
    if outcome == "missing":
        return Decision("missing", None, ())
    if outcome == "failed":
        code = _weighted(sorted(profile.failure_codes.items()), draw(seed, key, "code"))
        failing_part = int(draw(seed, key, "failing-part") * parts)
    else:
        code = "DELIVERED"
        failing_part = -1
    if profile.part_policy == "first":
        reported = [0]
    elif profile.part_policy == "last":
        reported = [parts - 1]
    else:
        reported = list(range(parts))
    base = sample_delay(profile, draw(seed, key, "delay"))
    receipts: list[PartReceipt] = []
    for part in reported:
        # one message's parts arrive close together; with reorder they may overtake each other
        jitter = draw(seed, key, f"jitter-{part}") * (base if profile.reorder else 0.001)
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
            part_code = _weighted(sorted(profile.failure_codes.items()), draw(seed, key, f"code-{part}"))
        part_ref = part if parts > 1 and profile.part_policy == "all" else None
        receipts.append(PartReceipt(part_ref, status, part_code, delay))
        if draw(seed, key, f"dup-{part}") < profile.duplicate_rate:
            extra = sample_delay(profile, draw(seed, key, f"dup-delay-{part}"))
            receipts.append(PartReceipt(part_ref, status, part_code, delay + extra, duplicate=True))
    return Decision(outcome, code, tuple(receipts))
