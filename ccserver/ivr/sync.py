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
    when a stored version no longer passes the model (after an upgrade), which is logged."""
    while True:
        try:
            await sync_once(library, store)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, FlowError) as err:
            log.warning("IVR flows: cannot read published versions (%s); keeping the current ones", err)
        await asyncio.sleep(interval)
