"""The flows a server runs, loaded once at start, and which flow answers which DID."""

from __future__ import annotations

from pathlib import Path

from ccserver.ivr.flow import Flow, FlowError, load_flow


class FlowLibrary:
    """All ``*.yaml`` flows of ``flows_dir`` plus the DID routes (``"*"`` = any other DID).

    Loading is eager so a broken flow stops the server at start, not on the first call; the
    :class:`FlowError` names the file and the field. A flow's ``name`` must equal its file name,
    which keeps names unique and easy to find.
    """

    def __init__(self, flows_dir: Path, routes: dict[str, str]) -> None:
        self._flows: dict[str, Flow] = {}
        for path in sorted(flows_dir.glob("*.yaml")):
            flow = load_flow(path)
            if flow.name != path.stem:
                raise FlowError(
                    [f"name: {flow.name!r} differs from the file name {path.stem!r}"], str(path)
                )
            self._flows[flow.name] = flow
        unknown = [
            f"ivr.routes.{did}: unknown flow {name!r}"
            for did, name in routes.items()
            if name not in self._flows
        ]
        if unknown:
            raise FlowError(unknown, str(flows_dir))
        self._routes = dict(routes)

    def for_did(self, did: str) -> Flow:
        """The flow routed for ``did`` (exact match, else ``"*"``); ``KeyError`` if neither."""
        name = self._routes.get(did) or self._routes.get("*")
        if name is None:
            raise KeyError(f"no IVR route for DID {did!r} and no '*' route")
        return self._flows[name]
