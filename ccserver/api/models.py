"""Request and response bodies of the REST API (pydantic; unknown fields refused).

The OpenAPI document is generated from these same models (see :mod:`ccserver.api.openapi`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

NAME = r"^[A-Za-z0-9_.@-]{1,64}$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginRequest(_Body):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class PauseRequest(_Body):
    reason: str = Field(min_length=1, max_length=64, pattern=r"^[\w .-]+$")


class AgentLoginRequest(_Body):
    #: log in paused with this reason instead of ready
    paused_reason: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[\w .-]+$")


class TokenRequest(_Body):
    label: str = Field("", max_length=100)
    days: int = Field(30, ge=1, le=365)


class UserCreate(_Body):
    username: str = Field(pattern=NAME)
    password: str = Field(min_length=12, max_length=1024)
    role: Literal["admin", "supervisor", "agent"]
    display_name: str = Field("", max_length=100)
    agent_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")


class UserUpdate(_Body):
    """The fields to change (at least one); ``agent_id: null`` unlinks the agent."""

    disabled: bool | None = None
    display_name: str | None = Field(None, max_length=100)
    role: Literal["admin", "supervisor", "agent"] | None = None
    agent_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")


class PasswordReset(_Body):
    password: str = Field(min_length=12, max_length=1024)


class TeamCreate(_Body):
    name: str = Field(pattern=r"^[A-Za-z0-9_ .-]{1,64}$")


class TeamMembers(_Body):
    agents: list[str] = Field(default_factory=list, max_length=1000)
    queues: list[str] = Field(default_factory=list, max_length=1000)
    supervisors: list[int] = Field(default_factory=list, max_length=1000)


# ---- responses --------------------------------------------------------------------------------


class ErrorField(BaseModel):
    field: str
    reason: str


class Error(BaseModel):
    error: str
    fields: list[ErrorField] = []


class UserOut(BaseModel):
    id: int
    username: str
    display_name: str
    role: Literal["admin", "supervisor", "agent"]
    agent_id: str | None
    disabled: bool


class Me(BaseModel):
    user: UserOut
    #: send back as the X-CSRF-Token header on state-changing requests made with the cookie
    csrf_token: str | None


class TokenOut(BaseModel):
    id: int
    token: str
    expires_at: datetime


class TokenInfoOut(BaseModel):
    """A live bearer token, without its secret (only its hash is stored)."""

    id: int
    label: str
    created_at: datetime
    expires_at: datetime


class PauseReasonsOut(BaseModel):
    #: what an agent may pause with (``acd.pause_reasons``)
    reasons: list[str]


class DeviceOut(BaseModel):
    node: str
    #: the dial string that rings the agent's phone from that node
    device: str


class AgentOut(BaseModel):
    id: str
    name: str
    #: the agent's home node and its dial string there (``agents[].node`` / ``device``)
    node: str
    device: str
    #: every node the agent can be rung from and the dial string there, home node first
    devices: list[DeviceOut]
    #: the phone being rung or talking for the agent's live call (null when none)
    device_in_use: DeviceOut | None
    queues: list[str]
    #: proficiency per skill (0-100), from the configuration
    skills: dict[str, int]
    state: str
    reason: str | None
    call_id: str | None
    #: epoch seconds of the last state change
    since: float | None
    calls_handled: int


class WaitingOut(BaseModel):
    call_id: str
    caller: str
    priority: int
    wait_seconds: float
    ringing_agent: str | None
    #: place in the queue, 1 = next (service order: priority, then time waited)
    position: int
    #: seconds until an agent who can take this caller is expected (0: being rung or an agent
    #: is free); null when no such agent serves the queue now, so no honest figure exists
    expected_wait_seconds: float | None
    #: escalation steps of the queue applied so far (0: the initial requirements)
    step: int
    #: skills the caller needs right now (skill -> minimum level), after any escalation
    requirements: dict[str, int]
    #: why the caller is not routed as the IVR asked (unknown skill, ...); shown as an alert
    routing_note: str | None = None


class KpisOut(BaseModel):
    service_level_seconds: int
    service_level: float | None
    asa_seconds: float | None
    abandon_rate: float | None
    #: average talk + hold + wrap-up of the calls whose wrap-up ended in the window
    aht_seconds: float | None
    answered: int
    abandoned: int
    #: abandons within the queue's abandon_grace_seconds (not in service level or abandon rate)
    short_abandoned: int
    waiting: int
    longest_wait_seconds: float
    agents_ready: int
    agents_on_call: int
    agents_paused: int
    agents_wrap_up: int
    agents_offered: int
    breached: bool


class QueueOut(BaseModel):
    name: str
    wrapup_seconds: float
    record: bool
    service_level_seconds: int
    waiting: list[WaitingOut]
    kpis: KpisOut


class CallOut(BaseModel):
    call_id: str
    node: str
    caller: str
    did: str
    state: str
    queue: str | None
    agent_id: str | None
    arrived_at: float
    enqueued_at: float | None
    #: when the agent answered (null until then)
    answered_at: float | None = None
    ivr_path: list[str]
    variables: dict[str, str]


class TeamOut(BaseModel):
    id: int
    name: str
    agents: list[str]
    queues: list[str]
    supervisors: list[int]


class SkillOut(BaseModel):
    """A skill of ``acd.skills``, the configuration routing reads."""

    name: str
    #: queues whose requirements (their own or an escalation step's) name it
    queues: list[str]
    #: agent id -> proficiency (0-100), for the agents the configuration gives it
    agents: dict[str, int]


class AuditOut(BaseModel):
    id: int
    at: datetime
    username: str
    action: str
    target: str
    detail: dict
    remote: str
    outcome: str


class Ok(BaseModel):
    ok: bool = True
