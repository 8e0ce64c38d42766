"""The web console in a real browser (Playwright driving Debian's chromium).

A module-scoped fixture starts the real service as a subprocess (`python -m gateway.cli serve
--clock virtual` on a free port with a fresh database, after `token create`), then the tests drive
the console like a QA engineer would: create an audience and tasks, jump the virtual clock with
the console's buttons, watch a task complete, hover statuses for their reasons, open the details,
generate an audience, see Edit locked inside the 5-minute window, jump past retention and see the
expired state. Screenshots at 1280 px and 390 px wide go to tests/artifacts/.

Set SMSLAB_CONSOLE_URL and SMSLAB_CONSOLE_TOKEN to run against a service that is already running
(the URL without the fragment, e.g. http://127.0.0.1:8080/).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("SMSLAB_CHROMIUM", "/usr/bin/chromium")
if not Path(CHROMIUM).exists():
    pytest.skip(f"browser tests need chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="browser tests need the playwright python package (pip install playwright)"
)
expect = sync_api.expect

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 20_000

# A profile that makes about half of the messages fail, with quick receipts and 30 s moderation.
PROFILE = {
    "seed": 7,
    "outcomes": {"delivered": 0.5, "failed": 0.5, "missing": 0},
    "failure_codes": {"UNDELIV": 3, "EXPIRED": 1},
    "receipt_delay": {"kind": "fixed", "seconds": 1},
    "moderation": {"banned_words": ["lottery"], "review_seconds": 30},
}
VALID_NUMBERS = [f"+861380013{i:04d}" for i in range(1, 21)]
AUDIENCE_LINES = VALID_NUMBERS + ["12ab-not-a-number", VALID_NUMBERS[0]]


# ---------------------------------------------------------------------------- the service


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Service:
    def __init__(self, base: str, token: str):
        self.base = base.rstrip("/")
        self.token = token

    def api(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.base}/api/v1{path}",
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as res:
                raw = res.read()
                return res.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw.decode(errors="replace")


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    if os.environ.get("SMSLAB_CONSOLE_URL"):
        yield Service(os.environ["SMSLAB_CONSOLE_URL"], os.environ["SMSLAB_CONSOLE_TOKEN"])
        return
    db = tmp_path_factory.mktemp("console") / "smslab.db"
    created = _cli("token", "create", "--workspace", "console-test", "--db", str(db))
    assert created.returncode == 0, f"token create failed:\n{created.stdout}\n{created.stderr}"
    token = created.stdout.strip().splitlines()[-1].strip()
    port = _free_port()
    log_path = ARTIFACTS / "console-service.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--db", str(db), "--clock", "virtual"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                log.flush()
                pytest.fail(f"smslab serve exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as res:
                    if res.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"smslab serve did not answer /healthz within 30 s:\n{log_path.read_text()}")
            time.sleep(0.2)
        yield Service(base, token)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _new_page(browser, width: int, height: int = 900):
    context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors  # type: ignore[attr-defined]
    # The console must load nothing from the network beyond the service itself.
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(("http://127.0.0.1", "data:")) else None)
    page.outside = outside  # type: ignore[attr-defined]
    return page


def _sign_in(page, service: Service, path: str = "") -> None:
    page.goto(f"{service.base}/{path}#token={service.token}")
    expect(page.get_by_test_id("nav")).to_be_visible()


def _shot(page, name: str, full_page: bool = True) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


def _row(page, name: str):
    return page.get_by_test_id("task-row").filter(
        has=page.get_by_test_id("task-name").get_by_text(name, exact=True)
    )


def _goto_list(page) -> None:
    page.get_by_test_id("nav-tasks").click()
    expect(page.get_by_test_id("task-filters")).to_be_visible()


def _wait_row_status(page, name: str, status: str, timeout_s: float = 20) -> None:
    """Refresh the list until the task shows `status` (receipts may still be flowing)."""
    deadline = time.monotonic() + timeout_s
    while True:
        status_el = _row(page, name).get_by_test_id("task-status")
        if status_el.count() and status_el.first.get_attribute("data-status") == status:
            return
        if time.monotonic() > deadline:
            got = status_el.first.get_attribute("data-status") if status_el.count() else "no row"
            raise AssertionError(f"task {name!r} is {got!r}, expected {status!r}")
        page.get_by_test_id("tasks-refresh").click()
        page.wait_for_timeout(300)


def _advance(page, seconds: int, prefix: str = "clock") -> None:
    before = page.get_by_test_id(f"{prefix}-now").inner_text()
    page.get_by_test_id(f"{prefix}-advance-{seconds}").click()
    expect(page.get_by_test_id(f"{prefix}-now")).not_to_have_text(before, timeout=WAIT_MS)


def _create_task(page, name: str, text: str, audience: str, *, schedule_in_min: int | None = None,
                 subs: str = "") -> None:
    page.get_by_test_id("nav-new-task").click()
    form = page.get_by_test_id("task-form")
    expect(form).to_be_visible()
    page.get_by_test_id("task-form-name").fill(name)
    page.get_by_test_id("task-form-platform").select_option("sim")
    page.get_by_test_id("task-form-sms-type").select_option("marketing")
    page.get_by_test_id("task-form-signature").fill("smslab")
    page.get_by_test_id("task-form-text").fill(text)
    option = page.get_by_test_id("task-form-audience").locator("option").filter(
        has_text=re.compile(rf"^{re.escape(audience)} \(")
    )
    page.get_by_test_id("task-form-audience").select_option(option.first.get_attribute("value"))
    if subs:
        page.get_by_test_id("task-form-sub-activities").fill(subs)
    if schedule_in_min is not None:
        page.get_by_test_id("task-form-send-scheduled").check()
        page.get_by_test_id(f"task-form-send-in-{schedule_in_min}").click()
        expect(page.get_by_test_id("task-form-send-at")).not_to_have_value("")
    page.get_by_test_id("task-form-submit").click()
    expect(page.get_by_test_id("detail-name")).to_contain_text(name, timeout=WAIT_MS)


# ---------------------------------------------------------------------------- tests


def test_token_prompt_without_fragment(service, browser):
    page = _new_page(browser, 1280)
    page.goto(f"{service.base}/")
    expect(page.get_by_test_id("signin-form")).to_be_visible()
    page.get_by_test_id("token-input").fill("not-a-real-token")
    page.get_by_test_id("signin-submit").click()
    expect(page.get_by_test_id("signin-error")).to_be_visible()
    page.get_by_test_id("token-input").fill(service.token)
    page.get_by_test_id("signin-submit").click()
    expect(page.get_by_test_id("nav")).to_be_visible()
    expect(page.get_by_test_id("task-filters")).to_be_visible()
    assert page.errors == [] and page.outside == []
    page.context.close()


def test_token_from_fragment_is_kept_and_hidden(service, browser):
    page = _new_page(browser, 1280)
    _sign_in(page, service)
    assert "token" not in page.url
    assert page.evaluate("sessionStorage.getItem('smslab.token')") == service.token
    page.reload()
    expect(page.get_by_test_id("task-filters")).to_be_visible()
    assert page.errors == []
    page.context.close()


def test_full_journey(service, browser):
    status, profile = service.api("PUT", "/simulator/profile", PROFILE)
    assert status == 200, profile

    page = _new_page(browser, 1280)
    _sign_in(page, service)
    expect(page.get_by_test_id("clock-mode")).to_have_text(re.compile("virtual"))

    # -- an audience from pasted numbers, with an invalid one and a duplicate
    page.get_by_test_id("nav-audiences").click()
    page.get_by_test_id("audience-name").fill("Journey crowd")
    page.get_by_test_id("audience-numbers").fill("\n".join(AUDIENCE_LINES))
    page.get_by_test_id("audience-submit").click()
    expect(page.get_by_test_id("audience-created")).to_contain_text("Journey crowd")
    expect(page.get_by_test_id("audience-row").filter(has_text="Journey crowd")).to_be_visible()

    # -- tasks: one that sends now, one the moderation rejects, one scheduled 3 minutes ahead
    _create_task(page, "Spring promo", "Spring sale: 20% off everything this week!", "Journey crowd",
                 subs="A1:Spring launch\nA2:Reminder wave\nA3:Last call")
    expect(page.get_by_test_id("task-status")).to_have_attribute("data-status", "moderating")
    _create_task(page, "Lucky draw", "You won the lottery, reply YES", "Journey crowd")

    _goto_list(page)
    _shot(page, "01-list-moderating-1280")
    _advance(page, 300)  # +5 min: moderation (30 s) passes, receipts (1 s) arrive
    _wait_row_status(page, "Spring promo", "completed")
    _wait_row_status(page, "Lucky draw", "rejected")

    # the scheduled task is created now (after the jump) so its send time stays ahead of the clock
    _create_task(page, "Evening reminder", "See you tonight", "Journey crowd", schedule_in_min=3)
    _goto_list(page)

    promo = _row(page, "Spring promo")
    sent = int(promo.get_by_test_id("task-sent").inner_text().replace(",", ""))
    succeeded = int(promo.get_by_test_id("task-succeeded").inner_text().replace(",", ""))
    failed = int(promo.get_by_test_id("task-failed").inner_text().replace(",", ""))
    assert promo.get_by_test_id("task-audience-size").inner_text() == str(len(AUDIENCE_LINES))
    assert sent == len(VALID_NUMBERS), "one invalid and one duplicate number must be skipped"
    assert succeeded + failed == sent and failed > 0 and succeeded > 0
    expect(promo.get_by_test_id("task-status")).to_have_text("Completed")
    expect(promo.get_by_test_id("task-audience")).to_have_text("Journey crowd")
    expect(promo.get_by_test_id("task-platform")).to_have_text("sim")

    # several sub-activities: a count, and hovering shows every name
    subs = promo.get_by_test_id("sub-activities")
    expect(subs).to_have_text(re.compile(r"^3 sub-activities"))
    assert subs.get_attribute("title") == "Spring launch, Reminder wave, Last call"
    subs.hover()
    expect(subs.get_by_test_id("tooltip")).to_be_visible()
    expect(subs.get_by_test_id("tooltip")).to_have_text("Spring launch, Reminder wave, Last call")

    # hovering Rejected shows the reason
    rejected = _row(page, "Lucky draw").get_by_test_id("task-status")
    expect(rejected).to_have_text("Rejected", use_inner_text=True)
    rejected.hover()
    tip = rejected.get_by_test_id("tooltip")
    expect(tip).to_be_visible()
    reason = tip.inner_text()
    assert reason and rejected.get_attribute("title") == reason
    _shot(page, "02-list-rejected-reason-1280", full_page=False)

    # a rejected task can be edited and deleted; a completed one cannot
    expect(_row(page, "Lucky draw").get_by_test_id("action-edit")).to_be_enabled()
    expect(promo.get_by_test_id("action-edit")).to_be_disabled()
    expect(promo.get_by_test_id("action-delete")).to_be_disabled()

    # -- Edit locked inside the 5-minute window, with the reason on hover
    evening = _row(page, "Evening reminder")
    expect(evening.get_by_test_id("task-send-type")).to_contain_text("Scheduled")
    expect(evening.get_by_test_id("action-edit")).to_be_disabled()
    locked = evening.get_by_test_id("action-edit-locked")
    locked.hover()
    lock_tip = locked.get_by_test_id("tooltip")
    expect(lock_tip).to_be_visible()
    assert lock_tip.inner_text().strip()
    assert locked.get_attribute("title") == lock_tip.inner_text()
    _shot(page, "03-list-edit-locked-1280", full_page=False)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280, "the task list must fit 1280 px"

    # -- filters and search
    page.get_by_test_id("filter-status").select_option("rejected")
    expect(page.get_by_test_id("task-row")).to_have_count(1)
    expect(_row(page, "Lucky draw")).to_be_visible()
    page.get_by_test_id("filter-status").select_option("")
    page.get_by_test_id("filter-q").fill("Spring")
    page.get_by_test_id("filter-search").click()
    expect(page.get_by_test_id("task-row")).to_have_count(1)
    page.get_by_test_id("filter-q").fill("")
    page.get_by_test_id("filter-search").click()
    expect(page.get_by_test_id("task-row")).to_have_count(3)

    # -- edit the rejected task (PATCH): it goes back to moderation with the new text
    _row(page, "Lucky draw").get_by_test_id("action-edit").click()
    expect(page.get_by_test_id("task-form-name")).to_have_value("Lucky draw")
    expect(page.get_by_test_id("task-form-text")).to_have_value("You won the lottery, reply YES")
    page.get_by_test_id("task-form-text").fill("You won a prize, reply YES")
    page.get_by_test_id("task-form-submit").click()
    expect(page.get_by_test_id("detail-text")).to_have_text("You won a prize, reply YES", timeout=WAIT_MS)
    expect(page.get_by_test_id("task-status")).to_have_attribute("data-status", "moderating")
    _goto_list(page)
    promo = _row(page, "Spring promo")

    # -- details of the completed task
    promo.get_by_test_id("action-view").click()
    expect(page.get_by_test_id("detail-name")).to_contain_text("Spring promo")
    expect(page.get_by_test_id("detail-text")).to_have_text("Spring sale: 20% off everything this week!")
    expect(page.get_by_test_id("count-sent")).to_contain_text(str(sent))
    expect(page.get_by_test_id("count-failed")).to_contain_text(str(failed))
    expect(page.get_by_test_id("count-pending")).to_contain_text("0")
    expect(page.get_by_test_id("progress-bar")).to_have_attribute("aria-valuenow", "100")
    skipped = page.get_by_test_id("detail-skipped")
    expect(skipped.locator("li[data-reason=invalid] .num")).to_have_text("1")
    expect(skipped.locator("li[data-reason=duplicate] .num")).to_have_text("1")
    page.get_by_test_id("preview-toggle").click()
    expect(page.get_by_test_id("preview-text")).to_contain_text("smslab")
    expect(page.get_by_test_id("preview-text")).to_contain_text("Spring sale")
    expect(page.get_by_test_id("preview-encoding")).to_have_text(re.compile("GSM-7|UCS-2"))
    expect(page.get_by_test_id("preview-parts")).to_have_text(re.compile(r"^\d+$"))

    page.get_by_test_id("messages-result").select_option("failed")
    rows = page.get_by_test_id("message-row")
    expect(rows.first).to_be_visible()
    expect(rows).to_have_count(min(failed, 20))
    for r in rows.all():
        assert r.get_attribute("data-result") == "failed"
    first_reason = rows.first.get_by_test_id("failure-reason").first.inner_text()
    assert re.match(r"^\S+: .+", first_reason), first_reason
    assert re.fullmatch(r"\D*\d{4}", rows.first.get_by_test_id("message-number").inner_text())
    _shot(page, "04-details-failed-1280")

    # -- generate an audience from the failed numbers
    page.get_by_test_id("generate-name").fill("Retry the failed")
    expect(page.get_by_test_id("generate-result-failed")).to_be_checked()
    page.get_by_test_id("generate-submit").click()
    expect(page.get_by_test_id("generate-result")).to_contain_text(f"created with {failed} number")

    # -- the testbed panel: profile, presets, clock
    page.get_by_test_id("nav-testbed").click()
    expect(page.get_by_test_id("profile-json")).to_have_value(re.compile(r'"outcomes"'))
    assert json.loads(page.get_by_test_id("profile-json").input_value())["receipt_delay"]["seconds"] == 1
    expect(page.get_by_test_id("preset").first).to_be_visible()
    _shot(page, "05-testbed-1280")

    # -- past retention: the details expire
    _advance(page, 7 * 24 * 3600, prefix="testbed-clock")
    page.goto(f"{service.base}/#/tasks")
    _row(page, "Spring promo").get_by_test_id("action-view").click()
    expired = page.get_by_test_id("details-expired")
    expect(expired).to_be_visible(timeout=WAIT_MS)
    expect(expired).to_contain_text("Details expired")
    assert page.get_by_test_id("details-expired-message").inner_text().strip()
    expect(page.get_by_test_id("generate-expired")).to_be_visible()
    expect(page.get_by_test_id("count-sent")).to_contain_text(str(sent))  # the counts remain
    _shot(page, "06-details-expired-1280")

    assert page.errors == [], page.errors
    assert page.outside == [], page.outside
    page.context.close()


def test_narrow_screen(service, browser):
    """At 390 px the list becomes cards and nothing overflows horizontally."""
    status, body = service.api("GET", "/tasks?limit=1")
    if status == 200 and not body["items"]:  # run on its own: make something to show
        status, aud = service.api("POST", "/audiences", {"name": "Narrow crowd", "numbers": VALID_NUMBERS[:3]})
        assert status == 201, aud
        status, task = service.api("POST", "/tasks", {
            "name": "Narrow task", "platform": "sim", "sms_type": "marketing", "signature": "smslab",
            "content": {"text": "Hello"}, "audience_id": aud["id"], "send_type": "immediate",
            "sub_activities": [{"id": "A1", "name": "One"}, {"id": "A2", "name": "Two"}],
        })
        assert status == 201, task
    page = _new_page(browser, 390, 844)
    _sign_in(page, service)
    expect(page.get_by_test_id("task-row").first).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    head = page.locator("#task-table thead")
    expect(head).to_be_hidden()
    _shot(page, "07-list-390")
    page.get_by_test_id("task-row").first.get_by_test_id("action-view").click()
    expect(page.get_by_test_id("detail-name")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    _shot(page, "08-details-390")
    _shot(page, "08b-details-390-top", full_page=False)
    page.get_by_test_id("nav-new-task").click()
    expect(page.get_by_test_id("task-form")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    _shot(page, "09-new-task-390")
    page.get_by_test_id("nav-testbed").click()
    expect(page.get_by_test_id("profile-json")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    _shot(page, "10-testbed-390")
    assert page.errors == [], page.errors
    page.context.close()


def test_csv_template_live_progress_and_delete(service, browser):
    """CSV upload, a template task, the details page refreshing itself while sending, delete."""
    status, body = service.api("PUT", "/simulator/profile", {
        "seed": 3,
        "outcomes": {"delivered": 1, "failed": 0, "missing": 0},
        "receipt_delay": {"kind": "fixed", "seconds": 600},
        "moderation": {"banned_words": [], "review_seconds": 30},
    })
    assert status == 200, body

    page = _new_page(browser, 1280)
    _sign_in(page, service)
    page.get_by_test_id("nav-audiences").click()
    page.get_by_test_id("audience-name").fill("CSV crowd")
    page.get_by_test_id("audience-source-csv").check()
    csv = "phone,first_name\n" + "\n".join(f"+86139000000{i:02d},n{i}" for i in range(1, 6)) + "\n"
    page.get_by_test_id("audience-file").set_input_files(
        files=[{"name": "crowd.csv", "mimeType": "text/csv", "buffer": csv.encode()}]
    )
    page.get_by_test_id("audience-submit").click()
    expect(page.get_by_test_id("audience-created")).to_contain_text("created with 5 number")

    # a digital SMS from a template with parameters
    page.get_by_test_id("nav-new-task").click()
    page.get_by_test_id("task-form-name").fill("Login code")
    page.get_by_test_id("task-form-sms-type").select_option("digital")
    page.get_by_test_id("task-form-signature").fill("smslab")
    page.get_by_test_id("task-form-mode-template").check()
    page.get_by_test_id("task-form-topic").fill("Verification code")
    page.get_by_test_id("task-form-template-body").fill("Your code is ${code}")
    page.get_by_test_id("task-form-template-params").fill('{"code": "4711"}')
    option = page.get_by_test_id("task-form-audience").locator("option").filter(has_text=re.compile(r"^CSV crowd \("))
    audience_id = option.first.get_attribute("value")
    page.get_by_test_id("task-form-audience").select_option(audience_id)
    page.get_by_test_id("task-form-sub-activities").fill("S1:Sign-in")
    page.get_by_test_id("task-form-submit").click()
    expect(page.get_by_test_id("detail-topic")).to_have_text("Verification code", timeout=WAIT_MS)
    page.get_by_test_id("preview-toggle").click()
    expect(page.get_by_test_id("preview-text")).to_contain_text("Your code is 4711")

    # moderation passes; receipts take 10 minutes: the page refreshes itself every 2 s while sending
    status, body = service.api("POST", "/clock/advance", {"seconds": 60})
    assert status == 200, body
    expect(page.get_by_test_id("task-status")).to_have_attribute("data-status", "sending", timeout=WAIT_MS)
    expect(page.get_by_test_id("auto-refresh")).to_be_visible()
    expect(page.get_by_test_id("count-pending")).to_contain_text("5")
    expect(page.get_by_test_id("progress-bar")).to_have_attribute("aria-valuenow", "0")
    expect(page.get_by_test_id("preview-panel")).to_be_visible()  # stays open across auto-refreshes
    _shot(page, "11-details-sending-1280")
    status, body = service.api("POST", "/clock/advance", {"seconds": 700})
    assert status == 200, body
    expect(page.get_by_test_id("task-status")).to_have_attribute("data-status", "completed", timeout=WAIT_MS)
    expect(page.get_by_test_id("progress-bar")).to_have_attribute("aria-valuenow", "100")
    expect(page.get_by_test_id("count-succeeded")).to_contain_text("5")

    # a task scheduled an hour ahead can be edited and deleted
    page.get_by_test_id("nav-new-task").click()
    page.get_by_test_id("task-form-name").fill("Far ahead")
    page.get_by_test_id("task-form-text").fill("Later")
    page.get_by_test_id("task-form-audience").select_option(audience_id)
    page.get_by_test_id("task-form-send-scheduled").check()
    page.get_by_test_id("task-form-send-in-60").click()
    page.get_by_test_id("task-form-submit").click()
    expect(page.get_by_test_id("detail-send-time")).to_contain_text("scheduled", timeout=WAIT_MS)
    _goto_list(page)
    far = _row(page, "Far ahead")
    expect(far.get_by_test_id("action-edit")).to_be_enabled()
    expect(far.get_by_test_id("action-delete")).to_be_enabled()
    page.once("dialog", lambda d: d.accept())
    far.get_by_test_id("action-delete").click()
    expect(_row(page, "Far ahead")).to_have_count(0, timeout=WAIT_MS)

    # paging: 20 rows a page, Next and Prev
    for i in range(20):
        status, body = service.api("POST", "/tasks", {
            "name": f"Bulk {i:02d}", "platform": "sim", "sms_type": "notification", "signature": "",
            "content": {"text": f"bulk {i}"}, "audience_id": int(audience_id), "send_type": "immediate",
            "sub_activities": [],
        })
        assert status == 201, body
    page.get_by_test_id("tasks-refresh").click()
    expect(page.get_by_test_id("task-row")).to_have_count(20)
    first_page = page.get_by_test_id("task-name").all_inner_texts()
    page.get_by_test_id("tasks-next").click()
    expect(page.get_by_test_id("tasks-page")).to_have_text("Page 2")
    second_page = page.get_by_test_id("task-name").all_inner_texts()
    assert second_page and not set(first_page) & set(second_page)
    assert len(first_page) + len(second_page) == 24
    page.get_by_test_id("tasks-prev").click()
    expect(page.get_by_test_id("tasks-page")).to_have_text("Page 1")
    expect(page.get_by_test_id("task-row")).to_have_count(20)
    assert page.errors == [], page.errors
    page.context.close()
