"""Which AMI actions a manager user may send: the write classes Asterisk 22 registers per action.

Data read from the Asterisk 22.10.1 source (every ``ast_manager_register_xml`` /
``ast_manager_register_xml_core`` / ``ast_manager_register2`` call under ``main/``, ``apps/``,
``res/``, ``channels/``, ``funcs/``, ``pbx/``; the file of each group is named above it). An
action with no class is open to every logged-in user.

Asterisk's rule (``process_message`` in ``main/manager.c``): the action runs when the user's
``write`` classes share at least one class with the action's, or when the action has none;
otherwise the reply is ``Response: Error`` / ``Message: Permission denied``. ``ListCommands``
(``action_listcommands``, same file) lists exactly the actions the user may send.
"""

from __future__ import annotations

from collections.abc import Iterable

#: the class names of ``perms[]`` in main/manager.c, in its order (also the order of ``Priv:``)
CLASS_ORDER: tuple[str, ...] = (
    "system", "call", "log", "verbose", "command", "agent", "user", "config", "dtmf", "reporting",
    "cdr", "dialplan", "originate", "agi", "cc", "aoc", "test", "security", "message",
)

#: action name -> the write classes any one of which allows it (empty: every user)
ACTION_CLASSES: dict[str, tuple[str, ...]] = {
    # main/manager.c
    "AOCMessage": ("aoc",),
    "AbsoluteTimeout": ("system", "call"),
    "Atxfer": ("call",),
    "BlindTransfer": ("call",),
    "CancelAtxfer": ("call",),
    "Challenge": (),
    "Command": ("command",),
    "CoreSettings": ("system", "reporting"),
    "CoreShowChannelMap": ("system", "reporting"),
    "CoreShowChannels": ("system", "reporting"),
    "CoreStatus": ("system", "reporting"),
    "CreateConfig": ("config",),
    "Events": (),
    "ExtensionState": ("call", "reporting"),
    "Filter": ("system",),
    "GetConfig": ("system", "config"),
    "GetConfigJSON": ("system", "config"),
    "Getvar": ("call", "reporting"),
    "Hangup": ("system", "call"),
    "ListCategories": ("config",),
    "ListCommands": (),
    "LoggerRotate": ("system", "reporting"),
    "Login": (),
    "Logoff": (),
    "MailboxCount": ("call", "reporting"),
    "MailboxStatus": ("call", "reporting"),
    "ModuleCheck": ("system",),
    "ModuleLoad": ("system",),
    "Originate": ("originate",),
    "Ping": (),
    "PresenceState": ("call", "reporting"),
    "Redirect": ("call",),
    "Reload": ("system", "config"),
    "SendText": ("call",),
    "Setvar": ("call",),
    "Status": ("system", "call", "reporting"),
    "UpdateConfig": ("config",),
    "UserEvent": ("user",),
    "WaitEvent": (),
    # apps/app_agent_pool.c
    "AgentLogoff": ("agent",),
    "Agents": ("agent",),
    # apps/app_confbridge.c
    "ConfbridgeKick": ("call",),
    "ConfbridgeList": ("reporting",),
    "ConfbridgeListRooms": ("reporting",),
    "ConfbridgeLock": ("call",),
    "ConfbridgeMute": ("call",),
    "ConfbridgeSetSingleVideoSrc": ("call",),
    "ConfbridgeStartRecord": ("system",),
    "ConfbridgeStopRecord": ("system",),
    "ConfbridgeUnlock": ("call",),
    "ConfbridgeUnmute": ("call",),
    # apps/app_controlplayback.c
    "ControlPlayback": ("call",),
    # apps/app_meetme.c
    "MeetmeList": ("reporting",),
    "MeetmeListRooms": ("reporting",),
    "MeetmeMute": ("call",),
    "MeetmeUnmute": ("call",),
    # apps/app_mf.c
    "PlayMF": ("call",),
    # apps/app_mixmonitor.c
    "MixMonitor": ("system",),
    "MixMonitorMute": ("system", "call"),
    "StopMixMonitor": ("system", "call"),
    # apps/app_queue.c
    "QueueAdd": ("agent",),
    "QueueChangePriorityCaller": (),
    "QueueLog": ("agent",),
    "QueueMemberRingInUse": ("agent",),
    "QueuePause": ("agent",),
    "QueuePenalty": ("agent",),
    "QueueReload": (),
    "QueueRemove": ("agent",),
    "QueueReset": (),
    "QueueRule": (),
    "QueueStatus": (),
    "QueueSummary": (),
    "QueueWithdrawCaller": (),
    # apps/app_senddtmf.c
    "PlayDTMF": ("call",),
    "SendFlash": ("call",),
    # apps/app_voicemail.c
    "VoicemailBoxSummary": ("call", "reporting"),
    "VoicemailForward": ("user",),
    "VoicemailMove": ("user",),
    "VoicemailRefresh": ("user",),
    "VoicemailRemove": ("user",),
    "VoicemailUserStatus": ("call", "reporting"),
    "VoicemailUsersList": ("call", "reporting"),
    # channels/chan_dahdi.c
    "DAHDIDNDoff": (),
    "DAHDIDNDon": (),
    "DAHDIDialOffhook": (),
    "DAHDIHangup": (),
    "DAHDIRestart": (),
    "DAHDIShowChannels": (),
    "DAHDIShowStatus": (),
    "DAHDITransfer": (),
    "PRIDebugFileSet": ("system",),
    "PRIDebugFileUnset": (),
    "PRIDebugSet": (),
    "PRIShowSpans": (),
    # channels/chan_iax2.c
    "IAXnetstats": ("system", "reporting"),
    "IAXpeerlist": ("system", "reporting"),
    "IAXpeers": ("system", "reporting"),
    "IAXregistry": ("system", "reporting"),
    # channels/chan_pjsip.c
    "PJSIPHangup": ("system", "call"),
    # main/bridge.c
    "BridgeTechnologyList": (),
    "BridgeTechnologySuspend": (),
    "BridgeTechnologyUnsuspend": (),
    # main/core_local.c
    "LocalOptimizeAway": ("system", "call"),
    # main/db.c
    "DBDel": ("system",),
    "DBDelTree": ("system",),
    "DBGet": ("system", "reporting"),
    "DBGetTree": ("system", "reporting"),
    "DBPut": ("system",),
    # main/features.c
    "Bridge": ("call",),
    # main/manager_bridges.c
    "BridgeDestroy": (),
    "BridgeInfo": (),
    "BridgeKick": (),
    "BridgeList": (),
    # main/message.c
    "MessageSend": ("message",),
    # main/pbx.c
    "ExtensionStateList": ("call", "reporting"),
    "ShowDialPlan": ("config", "reporting"),
    # pbx/pbx_config.c
    "DialplanExtensionAdd": ("system",),
    "DialplanExtensionRemove": ("system",),
    # res/parking/parking_manager.c
    "Park": ("call",),
    "ParkedCalls": ("call",),
    "Parkinglots": ("call",),
    # res/res_agi.c
    "AGI": ("agi",),
    # res/res_fax.c
    "FAXSession": ("call",),
    "FAXSessions": ("call",),
    "FAXStats": ("reporting",),
    # res/res_manager_devicestate.c
    "DeviceStateList": ("call", "reporting"),
    # res/res_manager_presencestate.c
    "PresenceStateList": ("call", "reporting"),
    # res/res_mutestream.c
    "MuteAudio": ("system",),
    # res/res_mwi_external_ami.c
    "MWIDelete": ("call",),
    "MWIGet": ("call", "reporting"),
    "MWIUpdate": ("call",),
    # res/res_pjsip/config_auth.c
    "PJSIPShowAuths": ("system",),
    # res/res_pjsip/location.c
    "PJSIPShowAors": ("system",),
    # res/res_pjsip/pjsip_configuration.c
    "PJSIPShowEndpoint": ("system",),
    "PJSIPShowEndpoints": ("system",),
    # res/res_pjsip/pjsip_options.c
    "PJSIPQualify": ("system", "reporting"),
    "PJSIPShowContacts": ("system",),
    # res/res_pjsip_maintenance.c
    "PJSIPSetMaintenance": ("system",),
    "PJSIPShowMaintenance": ("system", "reporting"),
    # res/res_pjsip_notify.c
    "PJSIPNotify": ("system",),
    # res/res_pjsip_outbound_registration.c
    "PJSIPRegister": ("system", "reporting"),
    "PJSIPShowRegistrationsOutbound": ("system", "reporting"),
    "PJSIPUnregister": ("system", "reporting"),
    # res/res_pjsip_pubsub.c
    "PJSIPShowResourceLists": ("system",),
    "PJSIPShowSubscriptionsInbound": ("system",),
    "PJSIPShowSubscriptionsOutbound": ("system",),
    # res/res_pjsip_registrar.c
    "PJSIPShowRegistrationInboundContactStatuses": ("system",),
    "PJSIPShowRegistrationsInbound": ("system",),
    # res/res_sorcery_memory_cache.c
    "SorceryMemoryCacheExpire": ("system",),
    "SorceryMemoryCacheExpireObject": ("system",),
    "SorceryMemoryCachePopulate": ("system",),
    "SorceryMemoryCacheStale": ("system",),
    "SorceryMemoryCacheStaleObject": ("system",),
    # res/res_xmpp.c
    "JabberSend": ("system",),
}


def write_classes(value: str) -> frozenset[str]:
    """The classes of a ``write =`` (or ``read =``) value, as ``get_perm`` in main/manager.c
    reads it: each comma-separated word is compared with ``ast_instring``, which takes a word
    before the last comma as a *prefix* of a class name (``sys,call`` grants system; an empty
    word grants everything) and the last word as the whole name; ``all`` is every class."""
    words = value.split(",")

    def has(label: str) -> bool:
        return any(label.startswith(w) for w in words[:-1]) or words[-1] == label

    if has("all"):
        return frozenset(CLASS_ORDER)
    return frozenset(c for c in CLASS_ORDER if has(c))


def may_send(write: Iterable[str], action: str) -> bool:
    """Whether a user with ``write`` classes may send ``action`` (matched case-insensitively, as
    Asterisk finds actions). KeyError for an action Asterisk 22 does not register."""
    classes = _BY_LOWER[action.lower()]
    return not classes or not set(classes).isdisjoint(write)


def allowed_actions(write: Iterable[str]) -> list[str]:
    """Every action a user with ``write`` classes may send (what ``ListCommands`` lists)."""
    granted = set(write)
    return [a for a, classes in ACTION_CLASSES.items() if not classes or granted & set(classes)]


def priv_text(action: str) -> str:
    """The ``(Priv: ...)`` text ListCommands shows: ``system,call,all`` or ``<none>``."""
    classes = ACTION_CLASSES[action]
    return ",".join([*classes, "all"]) if classes else "<none>"


_BY_LOWER = {name.lower(): classes for name, classes in ACTION_CLASSES.items()}
