"""Scenarios: TOML files of timed steps played on the virtual clock (``smslab scenario run|check``).

See docs/scenarios/README.md for the file format."""

from .load import Loaded, ScenarioError, load, loads
from .runner import check_files, play, run_file

__all__ = ["Loaded", "ScenarioError", "check_files", "load", "loads", "play", "run_file"]
