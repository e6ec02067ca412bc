"""A simulated Asterisk 22 (AMI + FastAGI) running ccserver's dialplan; see ``pbx.py``."""

from .agents import CallerScript, SimAgent, SimCall
from .pbx import SimulatedAsterisk
from .traffic import run_traffic

__all__ = ["CallerScript", "SimAgent", "SimCall", "SimulatedAsterisk", "run_traffic"]
