"""Registers the simulated carrier as the ``sim`` platform (entry point ``smslab: sim``)."""

from gateway.hookspecs import hookimpl

from .carrier import SimulatedCarrier


@hookimpl(trylast=True)
def smslab_register_platforms(config):
    carrier = SimulatedCarrier()
    carrier.startup_profile = _startup_profile(config.profile)
    return [carrier]


def _startup_profile(name: str | None):
    """``smslab serve --profile``: a TOML/JSON file or a preset's name, checked now so that a
    wrong one stops the service before it listens, with the reason."""
    if not name:
        return None
    from pathlib import Path

    from gateway.platform import PlatformConfigError

    from . import profile as profiles

    try:
        if Path(name).is_file():
            return profiles.load_file(name)
        if name in profiles.preset_names():
            return profiles.load_preset(name)
    except profiles.ProfileError as exc:
        raise PlatformConfigError(f"--profile {name!r}: {exc}") from None
    raise PlatformConfigError(f"--profile {name!r} is neither a file nor a preset ({', '.join(profiles.preset_names())})")


@hookimpl
def smslab_register_commands(subparsers):
    """``smslab carrier``: the simulated carrier as a service of its own (HTTP, SMPP, providers)."""
    from .server import add_carrier_command

    add_carrier_command(subparsers)


@hookimpl
def smslab_register_routes():
    """The testbed routes (/api/v1/simulator/...): profile, presets, reset, ground truth, replies."""
    from .routes import routes

    return routes
