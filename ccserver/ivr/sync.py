"""Keeps a running server's :class:`FlowLibrary` in step with what admins publish in Postgres."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from ccserver.ivr.flow import FlowError
from ccserver.ivr.library import FlowLibrary
from ccserver.ivr.store import FlowStore

log = logging.getLogger(__name__)


async def sync_once(library: FlowLibrary, store: FlowStore) -> None:
    """Load the published versions and the active overrides into ``library`` (new calls only)."""
    by_did, by_name = await store.published_flows()
    overrides = await store.active_overrides()
    library.apply_published(by_did, by_name)
    library.set_overrides(overrides)


async def follow_store(library: FlowLibrary, store: FlowStore, interval: float = 2.0) -> None:
    """:func:`sync_once` every ``interval`` seconds until cancelled; while Postgres is away the
    library keeps what it had (calls go on with the last published versions), and so it does
    when a stored version no longer passes the model (after an upgrade), which is logged.

    After each sync, a published version that names a queue, skill or language the
    configuration no longer serves (:attr:`FlowLibrary.site_problems`) is logged as an error
    once, when first seen (the first sync runs at start), and its fix when it goes away."""
    reported: tuple[str, ...] = ()
    while True:
        try:
            await sync_once(library, store)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, FlowError) as err:
            log.warning("IVR flows: cannot read published versions (%s); keeping the current ones", err)
        reported = _report_site_problems(library.site_problems, reported)
        await asyncio.sleep(interval)


def _report_site_problems(problems: tuple[str, ...], reported: tuple[str, ...]) -> tuple[str, ...]:
    """Log the ``problems`` not in ``reported`` as errors and those gone as fixed; returns ``problems``."""
    for problem in problems:
        if problem not in reported:
            log.error("published %s; calls reaching it are not routed as the flow says until a "
                      "fixed version is published", problem)
    for problem in reported:
        if problem not in problems:
            log.info("fixed: %s", problem)
    return problems
