"""Every hook smslab offers its plugins. See docs/plugins.md for each one with an example.

Hook names start with ``smslab_``. A hook implementation may return an awaitable; the gateway
awaits it (see ``gateway.plugins.call_async``).
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("smslab")
hookimpl = pluggy.HookimplMarker("smslab")


@hookspec
def smslab_register_platforms(config):
    """Called once at start. Return a list of Platform objects (see gateway.platform.Platform)
    that this plugin provides; each must have a unique ``name``."""


@hookspec
def smslab_moderate_content(text, task):
    """Called when a task's moderation falls due (after the platform's review delay).

    ``text`` is the full text as it would be sent (signature included), ``task`` a dict of the
    task's fields. Return a list of rejection reasons (strings), or None/[] to pass. Any
    rejection from any plugin or from the platform rejects the task; all reasons are kept."""


@hookspec
def smslab_filter_numbers(task, numbers):
    """Called by the dispatcher once per batch with the E.164 numbers about to be submitted.

    Return a dict ``{number: reason}`` for numbers that must not be sent; they are counted under
    ``skipped[reason]`` and the count still adds up: audience_size = sent + sum(skipped)."""


@hookspec
def smslab_receipts_committed(platform, receipts):
    """Called after a batch of receipts from ``platform`` was committed, with the list of
    gateway.platform.Receipt objects. For observing (logs, metrics, exports); the return value
    is ignored."""


@hookspec
def smslab_task_status_changed(task_id, old, new, reason):
    """Called after a task moved from status ``old`` to ``new`` (reason may be None)."""


@hookspec
def smslab_register_routes():
    """Called once when the web app is built. Return a list of aiohttp RouteDef objects
    (``web.get(path, handler)``, ...) to add to the service."""


@hookspec
def smslab_inbound_message(platform, message, workspace_id, opted_out):
    """Called once for each mobile-originated message (a reply from a handset) after it was
    stored, together with the opt-out it caused.

    ``platform`` is the name of the platform that received it, ``message`` the
    gateway.platform.InboundMessage as stored (``sender`` in E.164 when it is a phone number),
    ``workspace_id`` the workspace it belongs to (None when the platform could not tell: it is
    then kept without one and opts nobody out), ``opted_out`` whether its text was an opt-out
    keyword that put the sender on the workspace's opt-out list. For observing (auto-replies,
    CRM updates, logs); the return value is ignored and an exception is logged, never undoing
    the delivery."""


@hookspec
def smslab_register_commands(subparsers):
    """Called once when the ``smslab`` command line is built, with the ``argparse`` sub-parsers
    object. Add commands with ``subparsers.add_parser(name, help=...)`` and
    ``set_defaults(func=run)``, where ``run(args)`` returns the exit status. The return value
    is ignored."""
