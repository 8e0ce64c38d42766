"""Registers the simulated carrier as the ``sim`` platform (entry point ``smslab: sim``)."""

from gateway.hookspecs import hookimpl

from .carrier import SimulatedCarrier


@hookimpl(trylast=True)
def smslab_register_platforms(config):
    return [SimulatedCarrier()]


@hookimpl
def smslab_register_commands(subparsers):
    """``smslab carrier``: the simulated carrier as a service of its own (HTTP, SMPP, providers)."""
    from .server import add_carrier_command

    add_carrier_command(subparsers)
