"""Prompts the PBX could not open: each logged once per flow node, and shown as console alerts.

FreeSWITCH plays a prompt it cannot find as nothing at all (``playback`` ends at once with
``Application-Response: FILE NOT FOUND``; ``play_and_get_digits`` returns at once as if the
caller had not pressed anything), so a menu runs through its "timeouts" in a second and the
caller hears silence. Asterisk answers a ``STREAM FILE`` it cannot open with the result of a
hang-up. Sessions that can tell list such prompts; the engine reports them here.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

#: distinct (PBX node, flow node, prompt) kept; a tree that lost every file must not grow memory
MAX_KEPT = 200


class MissingPrompts:
    """The missing prompts seen so far, across calls (one per process, shared by every IVR)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str, str], str] = {}

    def report(self, pbx_node: str, flow_node: str, prompt: str, call_id: str) -> None:
        """``prompt``, played at ``flow_node`` on ``pbx_node`` during ``call_id``, was not found."""
        key = (pbx_node, flow_node, prompt)
        if key in self._seen or len(self._seen) >= MAX_KEPT:
            return
        self._seen[key] = (f"IVR prompt {prompt!r} (flow node {flow_node}) not found on node "
                           f"{pbx_node}: callers hear nothing there")
        log.error("IVR %s: prompt %r of flow node %s not found on node %s (logged once per prompt "
                  "and node); check the node's sound_dir and the sounds/<language>/ tree",
                  call_id, prompt, flow_node, pbx_node)

    def alerts(self) -> tuple[str, ...]:
        """One line per missing prompt, for the console."""
        return tuple(self._seen.values())
