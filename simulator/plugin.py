"""Registers the simulated carrier as the ``sim`` platform (entry point ``smslab: sim``)."""

from gateway.hookspecs import hookimpl

from .carrier import SimulatedCarrier


@hookimpl(trylast=True)
def smslab_register_platforms(config):
    return [SimulatedCarrier()]
