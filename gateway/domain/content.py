"""Message content: free text or a template with parameters (digital SMS)."""

from __future__ import annotations

import re
from string import Template

_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


class ContentError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def render(content: dict) -> str:
    """The body to send: the text, or the template body with ``${name}`` filled from params."""
    if "text" in content and content["text"] is not None:
        return content["text"]
    template = content["template"]
    params = template.get("params") or {}
    missing = [name for name in _PLACEHOLDER.findall(template["body"]) if name not in params]
    if missing:
        raise ContentError("content.template.params", f"missing values for {', '.join(sorted(set(missing)))}")
    return Template(template["body"]).safe_substitute({k: str(v) for k, v in params.items()})


def summary(content: dict, limit: int = 60) -> str:
    """What the task list shows: the template topic, or the start of the text."""
    if content.get("template"):
        return content["template"]["topic"]
    text = content.get("text") or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"
