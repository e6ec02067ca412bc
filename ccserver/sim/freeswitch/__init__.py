"""A simulated FreeSWITCH (ESL inbound server + outbound-socket client) running ccserver's dialplan."""

from ccserver.sim.asterisk.agents import CallerScript, SimAgent, SimCall

from .pbx import SimulatedFreeSwitch

__all__ = ["CallerScript", "SimAgent", "SimCall", "SimulatedFreeSwitch"]
