"""The task lifecycle, counting, details and retention through the real service (virtual clock)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone


NUMBERS = ["+8613800138000", "13800138001", "", "abc", "+8613800138000", "+14155552671", "  ", "+8613800138002"]
ALL_DELIVERED = {"outcomes": {"delivered": 1, "failed": 0, "missing": 0}, "receipt_delay": {"kind": "fixed", "seconds": 2}}


def rfc(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


async def now_of(api) -> datetime:
    clock = await api.get("/api/v1/clock")
    return datetime.fromisoformat(clock["now"].replace("Z", "+00:00"))


def assert_counts_add_up(task):
    assert task["sent"] == task["succeeded"] + task["failed"] + task["pending"]
    if task["status"] in ("completed",):
        assert task["audience_size"] == task["sent"] + sum(task["skipped"].values())


async def test_audience_classification(api):
    aud = await api.audience(NUMBERS)
    assert aud["size"] == len(NUMBERS) and aud["source"] == "upload" and aud["name"] == "aud"
    assert (await api.get(f"/api/v1/audiences/{aud['id']}"))["size"] == len(NUMBERS)
    listing = await api.get("/api/v1/audiences")
    assert [a["id"] for a in listing["items"]] == [aud["id"]] and listing["next_cursor"] is None


async def test_immediate_task_moderation_sending_completion(api):
    await api.profile(**ALL_DELIVERED)
    aud = await api.audience(NUMBERS)
    task = await api.task(aud["id"])
    assert task["status"] == "moderating"
    assert task["can_edit"] is False and task["lock_reason"]
    await api.advance(29)
    assert (await api.get(f"/api/v1/tasks/{task['id']}"))["status"] == "moderating"
    await api.advance(1)  # review_seconds = 30 by default
    detail = await api.get(f"/api/v1/tasks/{task['id']}")
    assert detail["status"] == "sending"
    assert detail["audience_size"] == 8
    assert detail["sent"] == 4 and detail["pending"] == 4
    assert detail["skipped"] == {"empty": 2, "invalid": 1, "duplicate": 1, "over_limit": 0}
    assert_counts_add_up(detail)
    await api.advance(5)
    detail = await api.get(f"/api/v1/tasks/{task['id']}")
    assert detail["status"] == "completed"
    assert (detail["succeeded"], detail["failed"], detail["pending"]) == (4, 0, 0)
    assert_counts_add_up(detail)
    assert "2 empty" in detail["explanation"] and "1 invalid" in detail["explanation"]
    rows = await api.get(f"/api/v1/tasks/{task['id']}/messages")
    assert len(rows["items"]) == 4
    for row in rows["items"]:
        assert row["number_masked"][-4:].isdigit() and row["number_masked"].startswith("*")
        assert "138001" not in row["number_masked"]
        assert row["result"] == "succeeded" and row["receipt_at"] and row["failure_reasons"] == []


async def test_listing_filters_and_paging(api):
    aud = await api.audience(["+8613800138000"])
    for i in range(5):
        await api.task(aud["id"], name=f"t{i}", text="lottery now" if i == 0 else "hi")
    page = await api.get("/api/v1/tasks?limit=2")
    assert len(page["items"]) == 2 and page["next_cursor"]
    seen = [t["name"] for t in page["items"]]
    while page["next_cursor"]:
        page = await api.get(f"/api/v1/tasks?limit=2&cursor={page['next_cursor']}")
        seen += [t["name"] for t in page["items"]]
    assert seen == ["t4", "t3", "t2", "t1", "t0"]
    row = (await api.get("/api/v1/tasks?q=t3"))["items"]
    assert [t["name"] for t in row] == ["t3"]
    expected_keys = {"id", "name", "sub_activities", "content_summary", "audience_name", "audience_size", "sent", "succeeded",
                     "failed", "pending", "platform", "sms_type", "send_type", "send_at", "status", "status_reason"}
    assert expected_keys <= set(row[0])
    await api.advance(30)
    rejected = (await api.get("/api/v1/tasks?status=rejected"))["items"]
    assert [t["name"] for t in rejected] == ["t0"]
    assert "lottery" in rejected[0]["status_reason"]
    assert (await api.get("/api/v1/tasks?platform=nope"))["items"] == []
    status, body = await api.call("GET", "/api/v1/tasks?status=bogus")
    assert status == 400 and body["error"]["field"] == "status"


async def test_rejected_task_can_be_edited_and_passes(api):
    aud = await api.audience(["+8613800138000"])
    task = await api.task(aud["id"], text="Win the lottery")
    await api.advance(30)
    detail = await api.get(f"/api/v1/tasks/{task['id']}")
    assert detail["status"] == "rejected" and "lottery" in detail["status_reason"]
    assert detail["can_edit"] and detail["can_delete"]
    status, edited = await api.call("PATCH", f"/api/v1/tasks/{task['id']}", json={"content": {"text": "Spring sale"}})
    assert status == 200 and edited["status"] == "moderating" and edited["status_reason"] is None
    await api.advance(30)
    assert (await api.get(f"/api/v1/tasks/{task['id']}"))["status"] in ("sending", "completed")


async def test_scheduled_task_edit_window_and_send_at(api):
    await api.profile(**ALL_DELIVERED)
    aud = await api.audience(["+8613800138000", "+8613800138001"])
    start = await now_of(api)
    task = await api.task(aud["id"], send_type="scheduled", send_at=rfc(start + timedelta(minutes=20)))
    await api.advance(60)  # moderation passes
    detail = await api.get(f"/api/v1/tasks/{task['id']}")
    assert detail["status"] == "scheduled" and detail["can_edit"]
    status, _ = await api.call("PATCH", f"/api/v1/tasks/{task['id']}", json={"name": "renamed"})
    assert status == 200
    await api.advance(60)  # moderation of the edit
    await api.advance(13 * 60)  # 5 minutes before send_at: locked
    status, body = await api.call("PATCH", f"/api/v1/tasks/{task['id']}", json={"name": "again"})
    assert status == 409 and body["error"]["code"] == "task_locked" and "5 minutes" in body["error"]["message"]
    status, body = await api.call("DELETE", f"/api/v1/tasks/{task['id']}")
    assert status == 409 and body["error"]["code"] == "task_locked"
    detail = await api.get(f"/api/v1/tasks/{task['id']}")
    assert detail["name"] == "renamed" and detail["status"] == "scheduled" and not detail["can_edit"]
    await api.advance(5 * 60 + 10)
    detail = await api.get(f"/api/v1/tasks/{task['id']}")
    assert detail["status"] == "completed" and detail["succeeded"] == 2


async def test_delete_allowed_far_ahead(api):
    aud = await api.audience(["+8613800138000"])
    start = await now_of(api)
    task = await api.task(aud["id"], send_type="scheduled", send_at=rfc(start + timedelta(hours=2)))
    status, _ = await api.call("DELETE", f"/api/v1/tasks/{task['id']}")
    assert status == 204
    status, _ = await api.call("GET", f"/api/v1/tasks/{task['id']}")
    assert status == 404


async def test_failure_reasons_timeout_and_retention(api):
    await api.profile(
        outcomes={"delivered": 1, "failed": 1, "missing": 1}, failure_codes={"UNDELIV": 1},
        receipt_delay={"kind": "fixed", "seconds": 1},
    )
    numbers = [f"+86138001{i:05d}" for i in range(60)]
    aud = await api.audience(numbers)
    task = await api.task(aud["id"])
    await api.advance(40)
    detail = await api.get(f"/api/v1/tasks/{task['id']}")
    assert detail["status"] == "sending"
    assert detail["sent"] == 60 and detail["pending"] > 0 and detail["failed"] > 0 and detail["succeeded"] > 0
    assert_counts_add_up(detail)
    failed = await api.get(f"/api/v1/tasks/{task['id']}/messages?result=failed&limit=1000")
    assert len(failed["items"]) == detail["failed"]
    assert all(r["failure_reasons"][0]["code"] == "UNDELIV" and r["failure_reasons"][0]["message"] for r in failed["items"])
    pending_before = detail["pending"]

    await api.advance(72 * 3600)
    detail = await api.get(f"/api/v1/tasks/{task['id']}")
    assert detail["status"] == "completed" and detail["pending"] == 0
    assert_counts_add_up(detail)
    timed_out = [r for r in (await api.get(f"/api/v1/tasks/{task['id']}/messages?result=failed&limit=1000"))["items"]
                 if r["failure_reasons"][0]["code"] == "RECEIPT_TIMEOUT"]
    assert len(timed_out) == pending_before

    generated = await api.post(f"/api/v1/tasks/{task['id']}/audiences", {"name": "retry", "results": ["failed"]})
    assert generated["source"] == "task" and generated["size"] == detail["failed"]

    await api.advance(96 * 3600 + 60)  # 168 hours after submission
    status, body = await api.call("GET", f"/api/v1/tasks/{task['id']}/messages")
    assert status == 410 and body["error"]["code"] == "details_expired" and "168" in body["error"]["message"]
    status, body = await api.call("POST", f"/api/v1/tasks/{task['id']}/audiences", json={"name": "x", "results": ["failed"]})
    assert status == 410 and body["error"]["code"] == "details_expired"
    kept = await api.get(f"/api/v1/tasks/{task['id']}")
    assert (kept["sent"], kept["succeeded"], kept["failed"]) == (60, detail["succeeded"], detail["failed"])
    assert kept["details_expired"] is True


async def test_multipart_segments_and_over_limit(api):
    await api.profile(max_recipients=3, **ALL_DELIVERED)
    aud = await api.audience([f"+86138001{i:05d}" for i in range(5)])
    task = await api.task(aud["id"], text="x" * 200)
    assert task["status"] == "moderating"
    await api.advance(40)
    detail = await api.get(f"/api/v1/tasks/{task['id']}")
    assert detail["status"] == "completed"
    assert detail["sent"] == 3 and detail["skipped"]["over_limit"] == 2
    assert detail["preview"]["parts"] == 4 and detail["segments"] == 12  # 【Shop】 makes it UCS-2
    assert "over the platform's recipient limit" in detail["explanation"]


async def test_deleted_and_empty_audience_fail_the_task(api):
    aud = await api.audience(["+8613800138000"])
    task = await api.task(aud["id"])
    status, _ = await api.call("DELETE", f"/api/v1/audiences/{aud['id']}")
    assert status == 204
    empty = await api.audience([], name="empty")
    task2 = await api.task(empty["id"], name="t2")
    await api.advance(30)
    detail = await api.get(f"/api/v1/tasks/{task['id']}")
    assert detail["status"] == "failed" and "deleted" in detail["status_reason"]
    detail2 = await api.get(f"/api/v1/tasks/{task2['id']}")
    assert detail2["status"] == "failed" and "empty" in detail2["status_reason"]
    invalid = await api.audience(["", "abc"], name="bad")
    task3 = await api.task(invalid["id"], name="t3")
    await api.advance(30)
    detail3 = await api.get(f"/api/v1/tasks/{task3['id']}")
    assert detail3["status"] == "failed" and "1 empty" in detail3["status_reason"] and "1 invalid" in detail3["status_reason"]


async def test_template_content(api):
    aud = await api.audience(["+8613800138000"])
    task = await api.post("/api/v1/tasks", {
        "name": "otp", "platform": "sim", "sms_type": "digital", "signature": "Bank", "audience_id": aud["id"],
        "content": {"template": {"topic": "Login code", "body": "Your code is ${code}", "params": {"code": "4321"}}},
        "send_type": "immediate", "sub_activities": [],
    })
    assert task["content_summary"] == "Login code"
    detail = await api.get(f"/api/v1/tasks/{task['id']}")
    assert detail["preview"]["text"] == "【Bank】Your code is 4321"


async def test_late_receipt_after_timeout_is_counted_not_applied(api):
    await api.profile(outcomes={"delivered": 0, "failed": 0, "missing": 1}, moderation={"review_seconds": 0})
    aud = await api.audience(["+8613800138000", "+8613800138001"])
    task = await api.task(aud["id"])
    await api.advance(1)
    ids = [m["platform_id"] for m in (await api.get(f"/api/v1/simulator/ground-truth?task_id={task['id']}"))["items"]]
    await api.advance(72 * 3600)
    detail = await api.get(f"/api/v1/tasks/{task['id']}")
    assert (detail["failed"], detail["pending"], detail["status"]) == (2, 0, "completed")
    await api.post("/api/v1/platforms/sim/receipts", {"receipts": [{"platform_id": ids[0], "status": "delivered"}]}, expect=200)
    after = await api.get(f"/api/v1/tasks/{task['id']}")
    assert (after["succeeded"], after["failed"], after["late_receipts"]) == (0, 2, 1)
    rows = (await api.get(f"/api/v1/tasks/{task['id']}/messages"))["items"]
    assert all(r["failure_reasons"] == [{"code": "RECEIPT_TIMEOUT", "message": "no delivery receipt within the receipt timeout"}] for r in rows)


async def test_receipt_with_a_time_past_the_deadline_is_late(api):
    """A receipt stamped after the 72-hour deadline fails the number with RECEIPT_TIMEOUT even if the
    sweeper has not run yet: the outcome does not depend on when the sweeper happened to look."""
    await api.profile(outcomes={"delivered": 0, "failed": 0, "missing": 1}, moderation={"review_seconds": 0})
    aud = await api.audience(["+8613800138000"])
    task = await api.task(aud["id"])
    await api.advance(1)
    truth = (await api.get(f"/api/v1/simulator/ground-truth?task_id={task['id']}"))["items"][0]
    from gateway.clock import parse_rfc3339
    late_at = parse_rfc3339(truth["submitted_at"]) + 72 * 3600 + 5
    await api.post("/api/v1/platforms/sim/receipts", {"receipts": [{"platform_id": truth["platform_id"], "status": "delivered", "at": late_at}]}, expect=200)
    detail = await api.get(f"/api/v1/tasks/{task['id']}")
    assert (detail["succeeded"], detail["failed"], detail["late_receipts"]) == (0, 1, 1)


async def test_multipart_failures_keep_every_reason(api):
    await api.profile(outcomes={"delivered": 0, "failed": 1, "missing": 0}, failure_codes={"UNDELIV": 1, "EXPIRED": 1},
                      receipt_delay={"kind": "fixed", "seconds": 1})
    aud = await api.audience([f"+86138001{i:05d}" for i in range(30)])
    task = await api.task(aud["id"], text="y" * 150)  # 【Shop】 + 150 → UCS-2, 3 parts
    await api.advance(40)
    detail = await api.get(f"/api/v1/tasks/{task['id']}")
    assert detail["status"] == "completed" and detail["failed"] == 30 and detail["segments"] == 90
    rows = (await api.get(f"/api/v1/tasks/{task['id']}/messages?limit=100"))["items"]
    assert all(r["segments"] == 3 and r["failure_reasons"] for r in rows)
    assert any(len(r["failure_reasons"]) > 1 for r in rows)
    truth = (await api.get(f"/api/v1/simulator/ground-truth?task_id={task['id']}&limit=100"))["items"]
    failed_parts = sum(1 for m in truth for r in m["receipts"] if r["status"] == "failed" and not r["duplicate"])
    assert failed_parts == sum(len(r["failure_reasons"]) for r in rows)


async def test_unmatched_receipts_are_kept_and_listed(api):
    await api.post("/api/v1/platforms/sim/receipts", {"receipts": [{"platform_id": "sim-nobody", "status": "failed", "code": "UNDELIV"}]}, expect=200)
    listing = await api.get("/api/v1/receipts/unmatched")
    assert listing["total"] == 1 and listing["items"][0]["platform_id"] == "sim-nobody"


async def test_completed_at_is_when_the_last_result_came_not_when_the_jump_ended(api):
    await api.profile(outcomes={"delivered": 1, "failed": 0, "missing": 0}, receipt_delay={"kind": "fixed", "seconds": 1},
                      moderation={"review_seconds": 30})
    aud = await api.audience(["+8613800138000"])
    task = await api.task(aud["id"])
    await api.advance(300)
    detail = await api.get(f"/api/v1/tasks/{task['id']}")
    rows = (await api.get(f"/api/v1/tasks/{task['id']}/messages"))["items"]
    assert detail["status"] == "completed"
    assert detail["completed_at"] == rows[0]["receipt_at"]


async def test_numbers_page_and_generated_audience_choose_by_any_set_of_results(api):
    """Each choice of results, alone or together, gives exactly those numbers in send order (a
    choice without succeeded goes through the partial index of unsettled numbers)."""
    await api.profile(moderation={"review_seconds": 0})
    want = {"+15005550000": "succeeded", "+15005550006": "succeeded", "+15005550010": "failed",
            "+15005550011": "failed", "+15005550020": "pending", "+15005550030": "pending"}
    aud = await api.audience(list(want))
    task = await api.task(aud["id"])
    await api.advance(60)
    everything = (await api.get(f"/api/v1/tasks/{task['id']}/messages?limit=100"))["items"]
    assert [r["result"] for r in everything] == list(want.values())
    for choice in ("succeeded", "failed", "pending", "failed,pending", "succeeded,pending", "succeeded,failed",
                   "pending,failed,succeeded"):
        page = await api.get(f"/api/v1/tasks/{task['id']}/messages?limit=100&result={choice}")
        chosen = set(choice.split(","))
        assert [r["result"] for r in page["items"]] == [r for r in want.values() if r in chosen], choice
        # paged one at a time, the same numbers come in the same order
        seen, cursor = [], None
        while True:
            page = await api.get(f"/api/v1/tasks/{task['id']}/messages?limit=1&result={choice}" + (f"&cursor={cursor}" if cursor else ""))
            seen += [r["number_masked"] for r in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert seen == [r["number_masked"] for r in everything if r["result"] in chosen], choice
    generated = await api.post(f"/api/v1/tasks/{task['id']}/audiences", {"name": "unsettled", "results": ["failed", "pending"]})
    assert generated["size"] == 4
