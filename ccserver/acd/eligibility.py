"""Who of a queue's configured agents could ever take a call, whatever they are doing now.

An agent can take a call of a queue when it is a member of the queue, its phone can be rung
from the call's node and it is at or above every (skill, minimum level) the call requires (the
kernel's rule, :mod:`ccserver.acd.kernel`, minus the "free now" part). All of that comes from the
configuration, which does not change while ccserver runs, so answers are kept (bounded).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ccserver.config import Config

#: distinct (queue, requirements, node) answers kept
CACHE_SIZE = 4096


class Eligibility:
    """Per queue: its members (configuration order) and which of them meet given requirements."""

    def __init__(self, config: Config, cache_size: int = CACHE_SIZE) -> None:
        self._skill = {name: i for i, name in enumerate(config.acd.skills)}
        self._members: dict[str, tuple[str, ...]] = {}
        #: queue -> proficiency [member, skill]
        self._levels: dict[str, np.ndarray] = {}
        #: queue -> the nodes each member can be rung from
        self._nodes: dict[str, tuple[frozenset[str], ...]] = {}
        for q in config.queues:
            members = [a for a in config.agents if q.name in a.queues]
            levels = np.zeros((len(members), len(self._skill)), np.uint8)
            for row, a in enumerate(members):
                for skill, level in a.skills.items():
                    levels[row, self._skill[skill]] = level
            self._members[q.name] = tuple(a.id for a in members)
            self._levels[q.name] = levels
            self._nodes[q.name] = tuple(frozenset({a.node, *a.devices}) for a in members)
        self._cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._cache_size = cache_size

    def members(self, queue: str) -> tuple[str, ...]:
        """The agent ids of ``queue`` in configuration order (the order of :meth:`able` masks).
        KeyError for an unknown queue."""
        return self._members[queue]

    def able(self, queue: str, requirements: tuple[tuple[str, int], ...],
             node: str | None) -> np.ndarray:
        """A read-only boolean mask over :meth:`members`: who meets every (skill, minimum level)
        and can be rung from ``node`` (None: from any node). An unknown skill with a minimum
        above 0 is met by nobody. KeyError for an unknown queue."""
        key = (queue, requirements, node)
        mask = self._cache.get(key)
        if mask is not None:
            self._cache.move_to_end(key)
            return mask
        levels = self._levels[queue]
        mask = np.ones(levels.shape[0], np.bool_)
        for name, minimum in requirements:
            if minimum <= 0:
                continue
            column = self._skill.get(name)
            if column is None:
                mask[:] = False
                break
            mask &= levels[:, column] >= minimum
        if node is not None:
            mask &= np.fromiter((node in nodes for nodes in self._nodes[queue]), np.bool_,
                                len(self._nodes[queue]))
        mask.flags.writeable = False
        self._cache[key] = mask
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return mask
