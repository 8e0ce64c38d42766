"""Inputs that once answered 500 (found by schemathesis and by hand) answer a 4xx JSON error
naming the field, and store nothing: ids and cursors out of range, times past year 9000, deep
JSON, odd CSV, non-ASCII signatures, control characters in names, a bad receipt in a group
commit, requests aiohttp refuses itself, bodies that are too big or never finish."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from gateway.web.keys import sink_key, storage_key
from tests.pg_support import Evidence

BIG = str(2**63)


async def _nothing_stored(api):
    assert (await api.get("/api/v1/tasks"))["items"] == []


@pytest.mark.parametrize("raw", [BIG, "99999999999999999999", "１", "1_0", "%201", "+1", "-1", "0x1", "1e3"])
async def test_odd_ids_in_paths_are_404(api, raw):
    for path in (f"/api/v1/tasks/{raw}", f"/api/v1/audiences/{raw}", f"/api/v1/tasks/{raw}/messages"):
        status, body = await api.call("GET", path)
        assert status == 404 and body["error"]["code"] == "not_found", (path, status, body)


@pytest.mark.parametrize("value", [BIG, "１", "1_0", " 1", "abc"])
async def test_odd_cursors_and_task_ids_in_queries_are_400(api, value):
    cursor = base64.urlsafe_b64encode(f"id:{value}".encode()).decode().rstrip("=")
    status, body = await api.call("GET", f"/api/v1/tasks?cursor={cursor}")
    assert status == 400 and body["error"]["field"] == "cursor"
    status, body = await api.call("GET", "/api/v1/simulator/ground-truth", params={"task_id": value})
    assert status == 400 and body["error"]["field"] == "task_id"
    status, body = await api.call("GET", "/api/v1/tasks", params={"limit": value})
    assert status == 400 and body["error"]["field"] == "limit"


async def test_big_ids_in_bodies_are_400_and_store_nothing(api):
    aud = await api.audience(["+8613800138000"])
    status, body = await api.call("POST", "/api/v1/tasks", json={"name": "n", "audience_id": 2**63, "content": {"text": "x"}})
    assert status == 400 and body["error"]["field"] == "audience_id"
    status, body = await api.call("POST", "/api/v1/tasks", json={"name": "n", "audience_id": 2**70, "content": {"text": "x"}})
    assert status == 400 and body["error"]["field"] == "audience_id"
    await _nothing_stored(api)
    status, body = await api.call("POST", f"/api/v1/tasks/{BIG}/audiences", json={"name": "x", "results": ["failed"]})
    assert status == 404
    assert aud["id"] >= 1


@pytest.mark.parametrize("send_at", ["9999-12-31T23:59:59-14:00", "10000-01-01T00:00:00Z", "9500-01-01T00:00:00Z",
                                     "1969-01-01T00:00:00Z", "2024-13-01T00:00:00Z"])
async def test_send_times_out_of_range_are_400_and_store_nothing(api, send_at):
    aud = await api.audience(["+8613800138000"])
    status, body = await api.call("POST", "/api/v1/tasks", json={
        "name": "far", "audience_id": aud["id"], "content": {"text": "x"}, "send_type": "scheduled", "send_at": send_at})
    assert status == 400 and body["error"]["field"] == "send_at", body
    await _nothing_stored(api)


@pytest.mark.parametrize("at", [1e300, -1, 1e20, "9999-12-31T23:59:59-14:00"])
async def test_receipt_times_out_of_range_are_400_and_store_nothing(api, at):
    status, body = await api.call("POST", "/api/v1/platforms/sim/receipts",
                                  json={"receipts": [{"platform_id": "sim-1-0000000000", "status": "delivered", "at": at}]})
    assert status == 400 and body["error"]["field"] == "receipts.0.at", body
    page = await api.get("/api/v1/receipts/unmatched")
    assert page["items"] == [] and page["total"] == 0


@pytest.mark.parametrize("receipt, field", [
    ({"platform_id": "x", "status": "delivered", "part": 2**64}, "receipts.0.part"),
    ({"platform_id": "x", "status": "delivered", "part": 63}, "receipts.0.part"),
    ({"platform_id": "x", "status": "delivered", "part": -1}, "receipts.0.part"),
    ({"platform_id": "", "status": "delivered"}, "receipts.0.platform_id"),
    ({"platform_id": "x" * 300, "status": "delivered"}, "receipts.0.platform_id"),
    ({"platform_id": "x", "status": "lost"}, "receipts.0.status"),
])
async def test_bad_receipts_are_400_naming_the_field(api, receipt, field):
    status, body = await api.call("POST", "/api/v1/platforms/sim/receipts", json={"receipts": [receipt]})
    assert status == 400 and body["error"]["field"] == field, body


async def test_one_bad_receipt_does_not_fail_the_others_in_its_group(api):
    """A hundred webhooks at once share group commits; one malformed one is refused alone."""
    async def post(i):
        receipt = {"platform_id": f"sim-9-{i:010d}", "status": "delivered"}
        if i == 50:
            receipt["part"] = 2**64
        return (await api.call("POST", "/api/v1/platforms/sim/receipts", json={"receipts": [receipt]}))[0]

    statuses = await asyncio.gather(*(post(i) for i in range(100)))
    assert statuses.count(200) == 99 and statuses[50] == 400
    assert (await api.get("/api/v1/receipts/unmatched"))["total"] == 99


async def test_a_group_commit_that_fails_is_retried_member_by_member(api, service):
    """A receipt a plugin hands over that the database cannot hold (a part beyond SQLite's
    integers) fails its own delivery only; the others in the same transaction commit."""
    from gateway.platform import Receipt

    sink = service.server.app[sink_key]
    good = [sink.deliver("sim", [Receipt(f"sim-8-{i:010d}", "delivered", 1.0)]) for i in range(20)]
    bad = sink.deliver("sim", [Receipt("sim-8-bad", "delivered", 1.0, part=2**64)])
    results = await asyncio.gather(*good, bad, return_exceptions=True)
    assert results[:20] == [None] * 20 and isinstance(results[20], Exception)
    assert (await api.get("/api/v1/receipts/unmatched"))["total"] == 20


async def test_deeply_nested_json_is_400(api):
    deep = b'{"moderation":' + b"[" * 5000 + b"]" * 5000 + b"}"
    for method, path in (("PATCH", "/api/v1/simulator/profile"), ("PUT", "/api/v1/simulator/profile"),
                         ("POST", "/api/v1/tasks"), ("POST", "/api/v1/audiences")):
        status, body = await api.call(method, path, data=deep, headers={"Content-Type": "application/json"})
        assert status == 400 and body["error"]["field"] in ("body", "moderation"), (path, body)


@pytest.mark.parametrize("name", ["a\x00b", "bidi\u202eevil", "tab\there", "line\nbreak", "\u2066iso\u2069"])
async def test_control_characters_in_names_are_refused(api, name):
    status, body = await api.call("POST", "/api/v1/audiences", json={"name": name, "numbers": ["+8613800138000"]})
    assert status == 400 and body["error"]["field"] == "name"
    aud = await api.audience(["+8613800138000"], name="fine")
    status, body = await api.call("POST", "/api/v1/tasks", json={"name": name, "audience_id": aud["id"], "content": {"text": "x"}})
    assert status == 400 and body["error"]["field"] == "name"
    status, body = await api.call("POST", "/api/v1/tasks", json={
        "name": "ok", "audience_id": aud["id"], "content": {"text": "x"}, "sub_activities": [{"id": "a", "name": name}]})
    assert status == 400 and body["error"]["field"] == "sub_activities.0.name"
    await _nothing_stored(api)


async def test_a_nul_search_matches_nothing_it_should_not(api):
    aud = await api.audience(["+8613800138000"])
    await api.task(aud["id"], name="spring")
    status, body = await api.call("GET", "/api/v1/tasks", params={"q": "\x00"})
    assert status == 400 and body["error"]["field"] == "q"
    assert [t["name"] for t in (await api.get("/api/v1/tasks", params={"q": "spr"}))["items"]] == ["spring"]


async def test_csv_quoted_newlines_long_fields_and_blank_lines(api):
    body = ('name,phone\r\n"two\nlines",+8613800138000\r\n\r\nlong,"' + "9" * 200_000 + '"\r\n"q ""x""",13800138001\r\n\r\n')
    await api.profile(moderation={"review_seconds": 0})
    status, aud = await api.call("POST", "/api/v1/audiences?name=odd", data=body.encode(), headers={"Content-Type": "text/csv"})
    assert status == 201, aud
    # four records after the header: a valid number, a blank line (empty), a 200,000-digit
    # field (invalid), a valid number, and the blank line at the end (empty)
    assert aud["size"] == 5
    task = await api.task(aud["id"], name="odd")
    await api.advance(1)
    detail = await api.get(f"/api/v1/tasks/{task['id']}")
    assert detail["sent"] == 2 and detail["skipped"]["empty"] == 2 and detail["skipped"]["invalid"] == 1


@pytest.mark.parametrize("body, message", [
    (b"phone\n" + b"1" * 600_000 + b"\n", "longer than"),
    (b'phone\n"never closed\n1\n2\n', "never closed"),
    (b"phone\n\xff\xfe\n", "not UTF-8"),
], ids=["long-line", "unclosed-quote", "not-utf8"])
async def test_bad_csv_is_400_and_leaves_no_audience(api, service, body, message):
    status, resp = await api.call("POST", "/api/v1/audiences?name=bad", data=body, headers={"Content-Type": "text/csv"})
    assert status == 400 and message in resp["error"]["message"] and resp["error"]["field"] == "body", resp
    assert (await api.get("/api/v1/audiences"))["items"] == []
    db = Evidence(service.server.app[storage_key])
    assert await db.fetchone("SELECT COUNT(*) FROM audiences") == (0,)
    assert await db.fetchone("SELECT COUNT(*) FROM audience_members") == (0,)


async def test_ids_are_never_reused_and_audience_names_are_unique(api):
    aud = await api.audience(["+8613800138000"], name="crowd")
    status, body = await api.call("POST", "/api/v1/audiences", json={"name": "crowd", "numbers": []})
    assert status == 409 and body["error"]["code"] == "name_taken" and body["error"]["field"] == "name"
    status, body = await api.call("POST", "/api/v1/audiences?name=crowd", data=b"phone\n1\n", headers={"Content-Type": "text/csv"})
    assert status == 409
    seen = set()
    for i in range(3):
        task = await api.task(aud["id"], name="again", send_type="scheduled", send_at="2100-01-01T00:00:00Z")
        assert task["id"] not in seen
        seen.add(task["id"])
        assert (await api.call("DELETE", f"/api/v1/tasks/{task['id']}"))[0] == 204


async def test_audience_size_shows_before_the_send(api):
    aud = await api.audience(["+8613800138000", "+8613800138001", ""])
    task = await api.task(aud["id"], send_type="scheduled", send_at="2100-01-01T00:00:00Z")
    assert task["audience_size"] == 3
    assert (await api.get("/api/v1/tasks"))["items"][0]["audience_size"] == 3


async def test_number_search_and_totals_on_the_numbers_page(api):
    numbers = [f"+86138001{i:05d}" for i in range(30)]
    task = await _send(api, numbers)
    page = await api.get(f"/api/v1/tasks/{task['id']}/messages", params={"limit": "10"})
    assert page["total"] == 30 and len(page["items"]) == 10
    found = await api.get(f"/api/v1/tasks/{task['id']}/messages", params={"q": "+86 138 001 0001"})
    assert found["total"] == 10 and all(m["number_masked"].endswith(("0010", "0011", "0012", "0013", "0014", "0015", "0016",
                                                                      "0017", "0018", "0019")) for m in found["items"])
    status, body = await api.call("GET", f"/api/v1/tasks/{task['id']}/messages", params={"q": "abc"})
    assert status == 400 and body["error"]["field"] == "q"


async def _send(api, numbers):
    await api.profile(outcomes={"delivered": 1, "failed": 0, "missing": 0}, moderation={"review_seconds": 0},
                      receipt_delay={"kind": "fixed", "seconds": 1})
    aud = await api.audience(numbers, name="send")
    task = await api.task(aud["id"], name="send")
    await api.advance(5)
    return task


async def test_the_profile_refuses_values_no_clock_can_reach(api):
    for patch, field in ((({"receipt_delay": {"kind": "fixed", "seconds": 1e300}}), "receipt_delay.seconds"),
                         ({"outcomes": {"delivered": 1e308}}, "outcomes.delivered"),
                         ({"receipt_delay": {"kind": "lognormal", "median": 5, "sigma": 1e6}}, "receipt_delay.sigma")):
        status, body = await api.call("PATCH", "/api/v1/simulator/profile", json=patch)
        assert status == 400 and body["error"]["field"] == field, body


async def test_the_clock_stops_before_year_9000(api):
    status, body = await api.call("POST", "/api/v1/clock/advance", json={"seconds": 10 * 365 * 86400 + 1})
    assert status == 400 and body["error"]["field"] == "seconds"
    for _ in range(3):
        status, body = await api.call("POST", "/api/v1/clock/advance", json={"seconds": 10 * 365 * 86400})
        assert status == 200
    assert (await api.get("/api/v1/tasks"))["items"] == []


def test_webhook_signatures_with_any_bytes_are_refused_not_crashed():
    from gateway.platform import WebhookRejected
    from gateway.wire import webhooks

    for header in ("sha256=\u00e9\u00e9", "sha256=\udcff", "\u202e", "sha256=" + "a" * 64 + ",\u00ff"):
        with pytest.raises(WebhookRejected) as caught:
            webhooks.verify("secret", {webhooks.TIMESTAMP_HEADER: "1700000000", webhooks.SIGNATURE_HEADER: header}, b"{}",
                            now=1700000000)
        assert caught.value.status == 401
    with pytest.raises(WebhookRejected):
        webhooks.verify("secret", {webhooks.TIMESTAMP_HEADER: "１７", webhooks.SIGNATURE_HEADER: "x"}, b"{}")


async def test_errors_aiohttp_answers_itself_are_json(service):
    host, port = service.server.host, service.server.port
    requests = [
        b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ]
    for raw in requests:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(raw)
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        head, _, payload = response.partition(b"\r\n\r\n")
        assert head.startswith((b"HTTP/1.1 4", b"HTTP/1.0 4")), head
        assert b"application/json" in head.lower(), head
        assert "error" in json.loads(payload)


async def _response(reader) -> bytes:
    """One HTTP response: its head and a body of its Content-Length (the server may go on
    reading the rest of a refused upload for a while before it closes)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    return head + await reader.readexactly(length)


async def test_a_huge_declared_body_is_refused_before_it_is_sent(service, api):
    host, port = service.server.host, service.server.port
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"POST /api/v1/audiences?name=huge HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
                 + f"Authorization: Bearer {api.token}\r\nContent-Length: 2000000000\r\n\r\nphone\n".encode())
    await writer.drain()
    response = await asyncio.wait_for(_response(reader), 5)  # answered without the 2 GB
    writer.close()
    assert response.startswith(b"HTTP/1.1 413") and b"body_too_large" in response, response
    assert (await api.get("/api/v1/audiences"))["items"] == []


async def test_a_stalled_upload_times_out_and_leaves_no_audience(service, api, monkeypatch):
    from gateway.web import bodies

    monkeypatch.setattr(bodies, "IDLE_SECONDS", 0.5)
    host, port = service.server.host, service.server.port
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"POST /api/v1/audiences?name=stalled HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
                 + f"Authorization: Bearer {api.token}\r\nContent-Length: 100000\r\n\r\nphone\n1380013800\n".encode())
    await writer.drain()
    response = await asyncio.wait_for(_response(reader), 5)
    writer.close()
    assert response.startswith(b"HTTP/1.1 408") and b"request_timeout" in response, response
    db = Evidence(service.server.app[storage_key])
    assert await db.fetchone("SELECT COUNT(*) FROM audiences") == (0,)
    assert await db.fetchone("SELECT COUNT(*) FROM audience_members") == (0,)


async def test_a_nul_character_is_refused_naming_the_field_and_nothing_is_stored(api):
    """No text a person, a handset or a platform sends holds U+0000, and PostgreSQL cannot store
    one: every way in answers 400 naming the field, on either backend."""
    cases = [
        ("POST", "/api/v1/audiences", {"name": "a", "numbers": ["+8613800\u0000138000"]}, "numbers.0"),
        ("POST", "/api/v1/audiences", {"name": "a\u0000b", "numbers": []}, "name"),
        ("POST", "/api/v1/simulator/mo", {"from": "+8613800138000", "text": "ST\u0000OP"}, "text"),
        ("POST", "/api/v1/platforms/sim/receipts", {"receipts": [{"platform_id": "x\u0000", "status": "delivered"}]},
         "receipts.0.platform_id"),
        ("POST", "/api/v1/platforms/sim/receipts",
         {"receipts": [{"platform_id": "x", "status": "failed", "code": "E", "message": "m\u0000"}]}, "receipts.0.message"),
    ]
    for method, path, body, field in cases:
        status, resp = await api.call(method, path, json=body)
        assert status == 400 and resp["error"]["field"] == field, (path, resp)
        assert "U+0000" in resp["error"]["message"]
    status, resp = await api.call("POST", "/api/v1/audiences?name=c", data=b"phone\n+8613800\x00138000\n",
                                  headers={"Content-Type": "text/csv"})
    assert status == 400 and resp["error"]["field"] == "body" and "U+0000" in resp["error"]["message"], resp
    status, resp = await api.call("GET", "/api/v1/receipts/unmatched?platform=a%00b")
    assert status == 400 and resp["error"]["field"] == "platform", resp
    # a literal backslash-u text is no NUL
    status, _ = await api.call("POST", "/api/v1/audiences", json={"name": "back\\u0000slash", "numbers": []})
    assert status == 201
    assert [a["name"] for a in (await api.get("/api/v1/audiences"))["items"]] == ["back\\u0000slash"]
    assert (await api.get("/api/v1/inbound"))["total"] == 0
    assert (await api.get("/api/v1/receipts/unmatched"))["total"] == 0
