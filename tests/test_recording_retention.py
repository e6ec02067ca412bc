"""Retention deletes only recordings old enough (files and rows); dry run and CLI; path safety."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ccserver.db.migrate import migrate, migrations_dir
from ccserver.db.pool import open_pool
from ccserver.recording.files import UnsafePath, recording_path, relative_name
from ccserver.recording.retention import purge
from ccserver.recording.store import RecordingStore
from ccserver.sim.asterisk.media import write_wav

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


async def seeded(db_dsn: str, root: Path) -> RecordingStore:
    """Recordings aged 100, 40, 10 days (closed) and 100 days (still running)."""
    pool = await open_pool(db_dsn, 1, 2)
    await migrate(pool, migrations_dir())
    store = RecordingStore(pool)
    for name, age, closed in (("old", 100, True), ("middle", 40, True), ("new", 10, True),
                              ("running", 100, False)):
        started = NOW - timedelta(days=age)
        await store.started(f"pbx1:{name}", "pbx1", f"{name}.wav", "1001", "support", started)
        if closed:
            size = write_wav(str(root / f"{name}.wav"), 0.1)
            await store.closed("pbx1", f"{name}.wav", started + timedelta(seconds=30), size, "0" * 64)
    return store


async def test_purge_deletes_only_what_is_old_enough(db_dsn, tmp_path):
    store = await seeded(db_dsn, tmp_path)
    try:
        listed = await purge(store, {"pbx1": tmp_path}, timedelta(days=30), NOW, dry_run=True)
        assert sorted(p.recording.file for p in listed) == ["middle.wav", "old.wav"]
        assert not any(p.deleted for p in listed)
        assert sorted(f.name for f in tmp_path.iterdir()) == ["middle.wav", "new.wav", "old.wav"]
        done = await purge(store, {"pbx1": tmp_path}, timedelta(days=30), NOW, dry_run=False)
        assert sorted(p.recording.file for p in done) == ["middle.wav", "old.wav"]
        assert [f.name for f in tmp_path.iterdir()] == ["new.wav"]
        left = sorted(r["file"] for r in await store.pool.fetch("SELECT file FROM recordings"))
        assert left == ["new.wav", "running.wav"]  # a recording still being written is never purged
    finally:
        await store.pool.close()


async def test_cli_dry_run_lists_and_deletes_nothing(db_dsn, tmp_path):
    store = await seeded(db_dsn, tmp_path)
    await store.pool.execute("UPDATE recordings SET started_at = started_at + (now() - $1::timestamptz)", NOW)
    await store.pool.close()
    hw = tmp_path / "hardware"
    hw.mkdir()
    (hw / "pbx1.toml").write_text(f'name = "pbx1"\nkind = "asterisk"\nhost = "127.0.0.1"\nami_user = "x"\n'
                                  f'ami_secret_env = "X"\nrecording_root = "{tmp_path}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCSERVER_")}
    env |= {"CCSERVER_DATABASE__DSN": db_dsn, "CCSERVER_HARDWARE_DIR": str(hw),
            "CCSERVER_RECORDING__RETENTION_DAYS": "30"}

    async def run(*args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ccserver", "recordings", "purge", *args, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, env=env, cwd=tmp_path)
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode, out.decode()

    code, out = await run("--dry-run")
    assert code == 0, out
    assert "would delete recording" in out and "would delete 2 recording(s)" in out
    assert sorted(f.name for f in tmp_path.glob("*.wav")) == ["middle.wav", "new.wav", "old.wav"]
    code, out = await run()
    assert code == 0 and "deleted 2 recording(s)" in out, out
    assert [f.name for f in tmp_path.glob("*.wav")] == ["new.wav"]


@pytest.mark.parametrize("name", ["../x.wav", "/etc/passwd", "a/../../x", "", "x\0.wav"])
def test_recording_names_cannot_leave_the_root(tmp_path, name):
    with pytest.raises(UnsafePath):
        recording_path(tmp_path, name)


def test_symlink_out_of_the_root_is_refused(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "link.wav").symlink_to(tmp_path / "secret")
    with pytest.raises(UnsafePath):
        recording_path(tmp_path / "root", "link.wav")


def test_reported_paths_outside_the_root_are_not_ours(tmp_path):
    assert relative_name(tmp_path, f"{tmp_path}/a-1.wav") == "a-1.wav"
    assert relative_name(tmp_path, f"{tmp_path}/../a.wav") is None
    assert relative_name(tmp_path, "/var/spool/asterisk/monitor/x.wav") is None
