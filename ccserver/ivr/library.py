"""The flows a server runs, loaded once at start, and which flow answers which DID."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from types import MappingProxyType

from ccserver.ivr.checks import SiteNames, check_bytes, check_goto_cycles, check_site
from ccserver.ivr.flow import Flow, FlowError, GotoNode
from ccserver.ivr.source import MAX_BYTES


class FlowLibrary:
    """All ``*.yaml`` flows of ``flows_dir`` plus the DID routes (``"*"`` = any other DID).

    Loading is eager and runs the full static checks, so a broken flow stops the server at
    start, not on the first call; the :class:`FlowError` lists every problem of every file,
    each starting with the file path. A flow's ``name`` must equal its file name, which keeps
    names unique and easy to find. With ``site``, the flows calls can run (those routed and
    those they ``goto``) must also name only queues, skills and languages the site serves; a
    file no route leads to runs no call (publishing it checks it again).

    The flow table is replaced, never changed in place (:meth:`publish`,
    :meth:`apply_published`), so a call that took :meth:`snapshot` at its start keeps running
    the versions it started with. Versions published in Postgres were checked against the
    configuration of their day; :attr:`site_problems` says what they name that this one no
    longer serves (they keep running: a flow is unpublished by an admin, not by a restart).
    """

    def __init__(self, flows_dir: Path, routes: dict[str, str], site: SiteNames | None = None) -> None:
        flows: dict[str, Flow] = {}
        problems: list[str] = []
        paths = sorted(flows_dir.glob("*.yaml"))
        names = {p.stem for p in paths}
        for path in paths:
            try:
                data = path.read_bytes()[: MAX_BYTES + 1]
            except OSError as err:
                problems.append(f"{path}: (file): cannot read: {err.strerror or err}")
                continue
            result = check_bytes(data, str(path), known_flows=names)
            problems.extend(f"{path}: {p}" for p in result.problems)
            if result.flow is not None and result.flow.name != path.stem:
                problems.append(f"{path}: name: {result.flow.name!r} differs from the file name {path.stem!r}")
            if result.ok:
                flows[result.flow.name] = result.flow
        if site is not None:
            for name in sorted(_routed(flows, routes.values())):
                problems.extend(f"{flows_dir / f'{name}.yaml'}: {p}" for p in check_site(flows[name], site))
        problems.extend(f"{flows_dir}: {p}" for p in check_goto_cycles(flows))
        problems.extend(
            f"ivr.routes.{did}: unknown flow {name!r}" for did, name in routes.items() if name not in names
        )
        if problems:
            raise FlowError(problems)
        self._files: Mapping[str, Flow] = MappingProxyType(flows)
        self._routes: Mapping[str, str] = MappingProxyType(dict(routes))
        #: (flows by name, flows published per DID), replaced as one value so a lookup never
        #: mixes two states
        self._state: tuple[Mapping[str, Flow], Mapping[str, Flow]] = (self._files, MappingProxyType({}))
        self._site = site
        #: ``"IVR flow '<name>' version <n>: <field path>: <reason>"`` for each queue, skill or language
        #: that a flow calls can run now names and the site does not serve (empty without ``site``)
        self.site_problems: tuple[str, ...] = ()
        self.overrides: frozenset[str] = frozenset()

    def for_did(self, did: str) -> Flow:
        """The flow for ``did``: the most specific route wins (the DID itself, then ``"*"``), a
        version published for it before a configured route; ``KeyError`` if none."""
        by_name, published = self._state
        for key in (did, "*"):
            if key in published:
                return published[key]
            if key in self._routes:
                return by_name[self._routes[key]]
        raise KeyError(f"no IVR route for DID {did!r} and no '*' route")

    def snapshot(self) -> Mapping[str, Flow]:
        """The flows by name as they are now (read-only; later publishes do not change it)."""
        return self._state[0]

    def publish(self, flow: Flow) -> None:
        """Make ``flow`` (already checked) the one that new calls get under its name."""
        by_name, published = self._state
        self._set_state(MappingProxyType({**by_name, flow.name: flow}), published)

    def apply_published(self, by_did: Mapping[str, Flow], by_name: Mapping[str, Flow]) -> None:
        """Put the versions published in Postgres over the files: ``by_did`` answers those
        DIDs, ``by_name`` replaces the files' flows of the same name (for ``goto`` and the
        configured routes)."""
        self._set_state(MappingProxyType({**self._files, **by_name}), MappingProxyType(dict(by_did)))

    def _set_state(self, by_name: Mapping[str, Flow], published: Mapping[str, Flow]) -> None:
        self._state = (by_name, published)
        if self._site is None:
            return
        # what calls can run: the versions published per DID (a goto names a published flow,
        # which is one of them), and the flows the configured routes reach
        reached = _routed(by_name, self._routes.values())
        runnable = sorted({id(f): f for f in [*published.values(), *(by_name[n] for n in reached)]}.values(),
                          key=lambda f: (f.name, f.version))
        self.site_problems = tuple(dict.fromkeys(
            f"IVR flow {flow.name!r} version {flow.version}: {problem}"
            for flow in runnable for problem in check_site(flow, self._site)
        ))

    def set_overrides(self, names: Collection[str]) -> None:
        """The schedule overrides switched on now (e.g. ``{"emergency"}``), for new calls."""
        self.overrides = frozenset(names)


def _routed(flows: Mapping[str, Flow], routed: Collection[str]) -> set[str]:
    """The flows of ``flows`` a call can run: those ``routed`` and those they ``goto``."""
    seen: set[str] = set()
    todo = [name for name in routed if name in flows]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(n.flow for n in flows[name].nodes.values() if isinstance(n, GotoNode) and n.flow in flows)
    return seen
