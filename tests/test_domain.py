"""The domain rules, tested without a server."""

from __future__ import annotations

import pytest

from gateway.clock import VirtualClock, parse_rfc3339, to_rfc3339
from gateway.domain import numbers as N
from gateway.domain import results as R
from gateway.domain.content import ContentError, render, summary
from gateway.domain.lifecycle import Status, TransitionError, check_transition, modification_lock
from gateway.domain.segments import GSM7, UCS2, segment, signed_text


# -- numbers -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw, region, kind, e164",
    [
        ("+8613800138000", "CN", N.OK, "+8613800138000"),
        ("138 0013 8000", "CN", N.OK, "+8613800138000"),
        ("0086-138-0013-8000", "CN", N.OK, "+8613800138000"),
        ("(415) 555-2671", "US", N.OK, "+14155552671"),
        ("", "CN", N.EMPTY, None),
        ("   ", "CN", N.EMPTY, None),
        (None, "CN", N.EMPTY, None),
        ("12345", "CN", N.INVALID, None),
        ("not a number", "CN", N.INVALID, None),
        ("+999 123", "CN", N.INVALID, None),
    ],
)
def test_classify(raw, region, kind, e164):
    assert N.classify(raw, region) == (kind, e164)


def test_mask_keeps_last_four_digits():
    assert N.mask("+8613800138000") == "**********8000"
    assert N.mask("+8613800138000").endswith("8000")
    assert "1380013" not in N.mask("+8613800138000")


# -- segmentation ----------------------------------------------------------------------------------
def test_gsm7_single_and_multi_part_limits():
    assert segment("a" * 160) == segment("a" * 160)
    assert segment("a" * 160).parts == 1
    assert segment("a" * 161).parts == 2
    assert segment("a" * 306).parts == 2
    assert segment("a" * 307).parts == 3
    assert segment("a" * 160).encoding == GSM7


def test_extension_characters_count_two_and_are_not_split():
    assert segment("€" * 80).units == 160
    assert segment("€" * 80).parts == 1
    assert segment("€" * 81).parts == 2
    # 152 plain septets then an escape pair: the pair does not fit in 153 and moves to part 2
    assert segment("a" * 152 + "€" + "a" * 10).parts == 2
    assert segment("a" * 152 + "€" * 77).parts == 3


def test_ucs2_limits_and_surrogates():
    assert segment("你" * 70) .parts == 1
    assert segment("你" * 70).encoding == UCS2
    assert segment("你" * 71).parts == 2
    assert segment("你" * 134).parts == 2
    assert segment("你" * 135).parts == 3
    assert segment("😀" * 35).units == 70 and segment("😀" * 35).parts == 1
    assert segment("😀" * 34 + "a" * 3).parts == 2


def test_signature_counts_toward_length():
    body = "a" * 155
    assert segment(body).parts == 1
    text = signed_text("Shop", body)
    assert text == "【Shop】" + body
    assert segment(text).encoding == UCS2  # 【】 are not in the GSM alphabet
    assert segment(text).parts == 3


# -- lifecycle -------------------------------------------------------------------------------------
def test_transitions():
    check_transition("moderating", "scheduled")
    check_transition("moderating", "rejected")
    check_transition("scheduled", "sending")
    check_transition("sending", "completed")
    check_transition("sending", "failed")
    with pytest.raises(TransitionError):
        check_transition("completed", "sending")
    with pytest.raises(TransitionError):
        check_transition("rejected", "sending")


def test_edit_window():
    now = 1_000_000.0
    assert modification_lock(Status.REJECTED, "immediate", None, now) is None
    assert modification_lock(Status.SCHEDULED, "scheduled", now + 301, now) is None
    assert modification_lock(Status.MODERATING, "scheduled", now + 3600, now) is None
    assert "5 minutes" in modification_lock(Status.SCHEDULED, "scheduled", now + 300, now)
    assert "5 minutes" in modification_lock(Status.SCHEDULED, "scheduled", now + 60, now)
    assert modification_lock(Status.SCHEDULED, "immediate", None, now) is not None
    assert modification_lock(Status.SENDING, "scheduled", now + 3600, now) is not None
    assert modification_lock(Status.COMPLETED, "scheduled", now - 10, now) is not None


# -- results ---------------------------------------------------------------------------------------
def test_multipart_success_needs_every_part():
    d, f = 0, 0
    d, f, what = R.apply_part(3, d, f, 0, True)
    assert what == R.APPLIED and R.result_of(3, d, f) == R.PENDING
    d, f, _ = R.apply_part(3, d, f, 2, True)
    assert R.result_of(3, d, f) == R.PENDING
    d, f, _ = R.apply_part(3, d, f, 1, True)
    assert R.result_of(3, d, f) == R.SUCCEEDED


def test_any_failed_part_fails_the_message_and_duplicates_change_nothing():
    d, f, _ = R.apply_part(2, 0, 0, 1, False)
    assert R.result_of(2, d, f) == R.FAILED
    d2, f2, what = R.apply_part(2, d, f, 1, False)
    assert what == R.DUPLICATE and (d2, f2) == (d, f)
    d3, f3, what = R.apply_part(2, d, f, 1, True)  # a contradicting duplicate is still a duplicate
    assert what == R.DUPLICATE and (d3, f3) == (d, f)


def test_whole_message_receipt_and_bad_part_index():
    d, f, what = R.apply_part(3, 0, 0, None, True)
    assert what == R.APPLIED and R.result_of(3, d, f) == R.SUCCEEDED
    assert R.apply_part(2, 0, 0, 5, True)[2] == R.DUPLICATE


# -- content, clock --------------------------------------------------------------------------------
def test_template_rendering():
    content = {"template": {"topic": "Code", "body": "Your code is ${code}", "params": {"code": 1234}}}
    assert render(content) == "Your code is 1234"
    assert summary(content) == "Code"
    with pytest.raises(ContentError) as err:
        render({"template": {"topic": "Code", "body": "Your code is ${code}", "params": {}}})
    assert err.value.field == "content.template.params"


def test_virtual_clock_moves_only_forward():
    clock = VirtualClock(start=1000.0)
    assert clock.now() == 1000.0
    clock.advance(72 * 3600)
    assert clock.now() == 1000.0 + 72 * 3600
    clock.set(5.0)
    assert clock.now() == 1000.0 + 72 * 3600


def test_rfc3339_round_trip():
    ts = 1_790_000_000.25
    assert parse_rfc3339(to_rfc3339(ts)) == ts
    assert parse_rfc3339("2026-11-28T10:00:00") == parse_rfc3339("2026-11-28T10:00:00Z")
