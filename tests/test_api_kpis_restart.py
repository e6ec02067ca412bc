"""The live KPIs survive a restart: a server stopped and started on the same database shows the
figures of the last window again (rebuilt from the call records in Postgres)."""

from __future__ import annotations

import aiohttp
import pytest
from rig import RigBase
from test_api_rig import NODE, SECRET_ENV, _build

from ccserver.app import Server
from ccserver.sim.asterisk import CallerScript


async def _start(db_dsn, tmp_path, port_factory) -> tuple[Server, object]:
    server, sim = await _build(db_dsn, tmp_path, port_factory())
    await server.start()
    await RigBase().until(lambda: server.adapters[NODE].connected, what="AMI login")
    return server, sim


def _support(server: Server, now: float):
    return server.kpis.kpis(server.center.queue_snapshot("support", now), server.config.queue("support"), now)


async def test_a_restart_keeps_the_window_figures(db_dsn, tmp_path, monkeypatch, unused_tcp_port_factory):
    monkeypatch.setenv(SECRET_ENV, "api-secret-value")
    rig = RigBase()
    server, sim = await _start(db_dsn, tmp_path, unused_tcp_port_factory)
    try:
        server._dispatch(server.center.pause("1001", "lunch", server.clock()))
        gave_up = sim.place_call(CallerScript(caller="+15550002222", digits=["1"], patience=0.5))
        assert await gave_up.wait(15) == "abandoned"
        await rig.until(lambda: server.stats.records == 1, what="the abandoned call's record")
        server._dispatch(server.center.ready("1001", server.clock()))
        talked = sim.place_call(CallerScript(caller="+15550001111", digits=["1"], talk_time=0.5))
        assert await talked.wait(15) == "answered"
        await rig.until(lambda: server.stats.records == 2, what="both call records")
    finally:
        await server.stop()
        await sim.stop()
    now = server.clock()
    before = _support(server, now)
    assert (before.answered, before.abandoned, before.service_level) == (1, 1, 0.5)
    assert before.asa_seconds > 0 and before.aht_seconds > 0.5

    server, sim = await _start(db_dsn, tmp_path, unused_tcp_port_factory)
    try:
        after = _support(server, now)
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{server.api.port}/metrics") as r:
            metrics = await r.text()
    finally:
        await server.stop()
        await sim.stop()
    assert (after.answered, after.abandoned, after.service_level) == (1, 1, 0.5)
    # through Postgres: times in microseconds, durations (talk, hold, wrap-up) in milliseconds
    assert after.asa_seconds == pytest.approx(before.asa_seconds, abs=1e-5)
    assert after.aht_seconds == pytest.approx(before.aht_seconds, abs=2e-3)
    assert 'ccserver_queue_service_level_ratio{queue="support"} 0.5' in metrics
