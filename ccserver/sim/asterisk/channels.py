"""Channel and bridge models of the simulated Asterisk, and their AMI snapshot headers.

Header names and order follow ``ast_manager_build_channel_state_string_prefix`` and
``ast_manager_build_bridge_state_string`` exactly as they appear in the captures.
"""

from __future__ import annotations

import itertools
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

Pairs = list[tuple[str, str]]

STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}
DOWN, RING, RINGING, UP = 0, 4, 5, 6
CAUSE_TXT = {0: "Unknown", 16: "Normal Clearing", 17: "User busy", 19: "No user responding",
             21: "Call Rejected"}


class IdAllocator:
    """Uniqueids (``epoch.seq``) and the shared hex channel-name suffix, like one Asterisk process."""

    def __init__(self) -> None:
        self._uid = itertools.count()
        self._suffix = itertools.count()

    def uniqueid(self) -> str:
        return f"{int(time.time())}.{next(self._uid)}"

    def suffix(self) -> str:
        return f"{next(self._suffix):08x}"


#: the trunk endpoint: callers arrive on it and transfers leave through it
CARRIER = "PJSIP/carrier"

@dataclass(eq=False)
class Channel:
    """One simulated channel. ``owner`` is the call run that gets signals for it."""

    name: str
    uniqueid: str
    linkedid: str
    caller_num: str
    caller_name: str
    context: str
    exten: str
    priority: int = 1
    state: int = DOWN
    connected_num: str = "<unknown>"
    connected_name: str = "<unknown>"
    language: str = "en"
    accountcode: str = ""
    application: str = ""
    app_data: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    bridge: Bridge | None = None
    created: float = field(default_factory=time.monotonic)
    started_wall: float = field(default_factory=time.time)
    answered_wall: float | None = None
    hungup: bool = False
    #: the phone holds the call (its last re-INVITE said ``a=sendonly``)
    holding: bool = False
    #: running MixMonitors (``SimRecording``), the most recent last
    mixmonitors: list[Any] = field(default_factory=list)
    owner: Any = None

    def snapshot(self, prefix: str = "") -> Pairs:
        """The channel-state headers (``Dest`` prefix for the callee side of Dial events)."""
        return [
            (f"{prefix}Channel", self.name),
            (f"{prefix}ChannelState", str(self.state)),
            (f"{prefix}ChannelStateDesc", STATE_DESC[self.state]),
            (f"{prefix}CallerIDNum", self.caller_num),
            (f"{prefix}CallerIDName", self.caller_name),
            (f"{prefix}ConnectedLineNum", self.connected_num),
            (f"{prefix}ConnectedLineName", self.connected_name),
            (f"{prefix}Language", self.language),
            (f"{prefix}AccountCode", self.accountcode),
            (f"{prefix}Context", self.context),
            (f"{prefix}Exten", self.exten),
            (f"{prefix}Priority", str(self.priority)),
            (f"{prefix}Uniqueid", self.uniqueid),
            (f"{prefix}Linkedid", self.linkedid),
        ]

    def duration(self) -> str:
        s = int(time.monotonic() - self.created)
        return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"

    @property
    def device(self) -> str:
        """``PJSIP/1001-0000000a`` -> ``PJSIP/1001``."""
        return self.name.rsplit("-", 1)[0]


@dataclass(eq=False)
class Bridge:
    """A basic two-party bridge."""

    uniqueid: str = field(default_factory=lambda: str(uuid.uuid4()))
    channels: list[Channel] = field(default_factory=list)

    def snapshot(self) -> Pairs:
        return [
            ("BridgeUniqueid", self.uniqueid),
            ("BridgeType", "basic"),
            ("BridgeTechnology", "simple_bridge"),
            ("BridgeCreator", "<unknown>"),
            ("BridgeName", "<unknown>"),
            ("BridgeNumChannels", str(len(self.channels))),
            ("BridgeVideoSourceMode", "none"),
        ]
