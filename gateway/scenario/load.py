"""Read a scenario file: TOML → :class:`~gateway.scenario.model.Scenario`, with every error as
``FILE:LINE: step N: field 'x': message``.

``tomllib`` gives a line only for syntax errors, so for the others the line is found in the raw
text: the N-th ``[[step]]`` header, then the key named by the error's path within that step."""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from .model import ACTIONS, COUNT_NAMES, Scenario
from .timespec import TimeSpecError, parse_at, parse_duration

_STEP_HEADER = re.compile(r"^\s*\[\[\s*step\s*\]\]")
_TABLE_HEADER = re.compile(r"^\s*\[")
_MSGSPEC_AT = re.compile(r" - at `(key` in `)?\$(.*?)`$")


class ScenarioError(Exception):
    """Problems with a scenario file: ``errors`` is a list of ``FILE:LINE: message`` lines."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("\n".join(errors))


@dataclass
class Loaded:
    path: str
    scenario: Scenario
    lines: list[int]  # the line of each step's [[step]] header
    start: float | None = None
    notes: list[str] = field(default_factory=list)


class _Locator:
    def __init__(self, text: str):
        self.lines = text.splitlines()
        self.steps = [i + 1 for i, line in enumerate(self.lines) if _STEP_HEADER.match(line)]
        first_table = next((i + 1 for i, line in enumerate(self.lines) if _TABLE_HEADER.match(line)), len(self.lines) + 1)
        self.top = (1, first_table)

    def step_range(self, index: int) -> tuple[int, int]:
        if index >= len(self.steps):
            return self.top
        end = self.steps[index + 1] if index + 1 < len(self.steps) else len(self.lines) + 1
        return self.steps[index], end

    def line(self, path: list[str | int]) -> int:
        """The line that best matches ``path`` (["step", 2, "expect", "counts", "sent"])."""
        if len(path) >= 2 and path[0] == "step" and isinstance(path[1], int):
            (start, end), keys = self.step_range(path[1]), [k for k in path[2:] if isinstance(k, str)]
        else:
            (start, end), keys = self.top, [k for k in path if isinstance(k, str)]
        found = start if start <= len(self.lines) else max(len(self.lines), 1)
        pos = start
        for key in keys:
            pattern = re.compile(
                r"(?:^\s*\[+[^\]]*\b" + re.escape(key) + r"\s*\]+)"
                r"|(?:(?:^|[\s{,.])\"?" + re.escape(key) + r"\"?\s*[=.])"
            )
            for number in range(pos, min(end, len(self.lines) + 1)):
                if pattern.search(self.lines[number - 1]):
                    found = pos = number
                    break
            else:
                break
        return found


def _normalise(value: Any, where: str = "") -> Any:
    """TOML's native times become the strings the model takes (``at = 10:00:00`` works unquoted)."""
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.time):
        return value.strftime("%H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _path(text: str) -> list[str | int]:
    out: list[str | int] = []
    for name, index in re.findall(r"\.([A-Za-z_][\w-]*)|\[(\d+)\]", text):
        out.append(name if name else int(index))
    return out


def _describe(path: list[str | int]) -> str:
    """``step 3: field 'expect.counts'`` for ["step", 2, "expect", "counts"]."""
    if len(path) >= 2 and path[0] == "step" and isinstance(path[1], int):
        rest = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path[2:]).replace(".[", "[")
        return f"step {path[1] + 1}: field '{rest}'" if rest else f"step {path[1] + 1}"
    rest = ".".join(str(p) for p in path)
    return f"field '{rest}'" if rest else "file"


def loads(text: str, path: str = "<scenario>") -> Loaded:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        line = match.group(1) if match else "1"
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc)) if match else str(exc)
        raise ScenarioError([f"{path}:{line}: invalid TOML: {message}"]) from None
    where = _Locator(text)
    raw = _normalise(raw)
    try:
        scenario = msgspec.convert(raw, Scenario)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = _MSGSPEC_AT.search(message)
        located = _path(match.group(2)) if match else []
        message = message[: match.start()] if match else message
        if match and match.group(1) and located[-1:] == ["counts"]:
            bad = re.search(r"'(.*)'", message)
            message = (f"unknown count {bad.group(1) if bad else ''!r}; counts are {', '.join(COUNT_NAMES)}"
                       " (skipped numbers go in skipped = {reason = N})")
            if bad:
                located = [*located, bad.group(1)]
        unknown = re.match(r"Object contains unknown field `(.+)`", message)
        if unknown:
            name = unknown.group(1)
            if len(located) == 2 and located[0] == "step":
                message = f"unknown step field '{name}' (a step has at/after/note and one of: {', '.join(ACTIONS)})"
            elif not located:
                message = f"unknown top-level field '{name}' (name, description, start, [[step]])"
            located = [*located, name]
        raise ScenarioError([f"{path}:{where.line(located)}: {_describe(located)}: {message}"]) from None
    errors: list[str] = []
    start = _check(scenario, where, path, errors)
    if errors:
        raise ScenarioError(errors)
    lines = [where.step_range(i)[0] for i in range(len(scenario.steps))]
    return Loaded(path=path, scenario=scenario, lines=lines, start=start)


def load(path: str | Path) -> Loaded:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError([f"{path}: cannot read: {exc}"]) from None
    return loads(text, str(path))


def _check(scenario: Scenario, where: _Locator, path: str, errors: list[str]) -> float | None:
    """What the types cannot say: one action per step, times and durations, names defined before
    use, and a timeline that never goes backwards (where it can be known without a service)."""

    def error(p: list[str | int], message: str) -> None:
        errors.append(f"{path}:{where.line(p)}: {_describe(p)}: {message}")

    start = None
    if scenario.start is not None:
        try:
            kind, value = parse_at(scenario.start)
            if kind != "abs":
                raise TimeSpecError(f"an RFC 3339 time such as \"2024-05-01T08:00:00Z\", got {scenario.start!r}")
            start = value
        except TimeSpecError as exc:
            error(["start"], str(exc))
    if not scenario.steps:
        error([], "no steps: add at least one [[step]] table")
    audiences: set[str] = set()
    tasks: set[str] = set()
    # the timeline in seconds after the scenario day's midnight, while it can be known statically
    day = None if start is None else start - start % 86400
    now = None if start is None else start - day
    for i, step in enumerate(scenario.steps):
        s: list[str | int] = ["step", i]
        actions = [name for name in ACTIONS if getattr(step, name) is not None]
        if not actions:
            error(s, f"no action: a step has exactly one of {', '.join(ACTIONS)}")
        elif len(actions) > 1:
            error([*s, actions[1]], f"one action per step, got {' and '.join(actions)}: split them into two [[step]] tables")
        if step.at is not None and step.after is not None:
            error([*s, "after"], "give at or after, not both")
        if step.at is not None:
            try:
                kind, value = parse_at(step.at)
                target = value if kind == "tod" else (value - day if day is not None else None)
                if kind == "tod" and now is None:
                    now = value  # the first time of day pins the timeline (the runner checks the rest)
                if target is not None and now is not None and target < now:
                    error([*s, "at"], f"{step.at} is before the time the previous steps reach"
                                      f" ({_clock_text(now)}): the clock only moves forward")
                elif target is not None:
                    now = target
            except TimeSpecError as exc:
                error([*s, "at"], str(exc))
        if step.after is not None:
            try:
                seconds = parse_duration(step.after)
                now = None if now is None else now + seconds
            except TimeSpecError as exc:
                error([*s, "after"], str(exc))
        if step.advance is not None:
            try:
                seconds = parse_duration(step.advance)
                now = None if now is None else now + seconds
            except TimeSpecError as exc:
                error([*s, "advance"], str(exc))
        if step.outage is not None:
            o = step.outage
            for key in ("start", "end"):
                if getattr(o, key) is not None:
                    try:
                        parse_at(getattr(o, key))
                    except TimeSpecError as exc:
                        error([*s, "outage", key], str(exc))
            if o.end is not None and o.duration is not None:
                error([*s, "outage", "duration"], "give end or duration, not both")
            if o.duration is not None:
                try:
                    if parse_duration(o.duration) <= 0:
                        error([*s, "outage", "duration"], "must be more than 0")
                except TimeSpecError as exc:
                    error([*s, "outage", "duration"], str(exc))
        if step.audience is not None:
            a = step.audience
            if a.name in audiences:
                error([*s, "audience", "name"], f"audience {a.name!r} is already defined by an earlier step")
            audiences.add(a.name)
            if not isinstance(a.numbers, list):
                g = a.numbers
                prefix_digits = len(g.prefix) - 1
                digits = g.digits if g.digits is not None else max(13 - prefix_digits, len(str(g.first + g.count - 1)))
                if len(str(g.first + g.count - 1)) > digits:
                    error([*s, "audience", "numbers"], f"{g.count} numbers from {g.first} need more than {digits} digits")
                elif prefix_digits + digits > 15:
                    error([*s, "audience", "numbers"], f"prefix {g.prefix} plus {digits} digits is longer than E.164's 15 digits")
            elif not a.numbers and not a.extra:
                error([*s, "audience", "numbers"], "an audience needs at least one number")
        if step.task is not None:
            t = step.task
            if t.audience not in audiences:
                error([*s, "task", "audience"], f"no audience {t.audience!r} is defined by an earlier step")
            if t.name in tasks:
                error([*s, "task", "name"], f"task {t.name!r} is already defined by an earlier step")
            tasks.add(t.name)
            if t.send_type == "scheduled" and t.send_at is None:
                error([*s, "task", "send_at"], "a scheduled task needs send_at")
            if t.send_at is not None:
                try:
                    parse_at(t.send_at)
                except TimeSpecError as exc:
                    error([*s, "task", "send_at"], str(exc))
        for key, name in (("expect", step.expect.task if step.expect else None), ("expect_ground_truth", step.expect_ground_truth)):
            if name is not None and name not in tasks:
                error([*s, key] + (["task"] if key == "expect" else []), f"no task {name!r} is defined by an earlier step")
        if step.preset is not None and step.preset not in _presets():
            error([*s, "preset"], f"no preset {step.preset!r}; the presets are {', '.join(_presets())}")
    return start


def _presets() -> list[str]:
    from simulator.profile import preset_names

    return list(preset_names())


def _clock_text(seconds: float) -> str:
    days, rest = divmod(int(seconds), 86400)
    text = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"day {days + 1} {text}" if days else text
