"""``ccserver flows import`` / ``export`` against a real Postgres, and ``check`` against a site's
configuration, as an admin would run them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _cli(dsn: str, *args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CCSERVER_DATABASE__DSN": dsn}
    env.pop("CCSERVER_CONFIG", None)
    given = ["--config", str(config)] if config is not None else []
    return subprocess.run([sys.executable, "-m", "ccserver", *given, "flows", *args], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=120, check=False)


async def test_import_then_export_round_trips_the_flows(db_dsn: str, tmp_path: Path) -> None:
    run = _cli(db_dsn, "import", str(ROOT / "ivr_flows"), "--user", "alice")
    assert run.returncode == 0, run.stderr
    assert f"{ROOT / 'ivr_flows' / 'main.yaml'}: main@1 (draft, 0 problem(s))" in run.stdout.splitlines()
    run = _cli(db_dsn, "export", str(tmp_path))
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hours.yaml", "main.yaml"]
    assert yaml.safe_load((tmp_path / "main.yaml").read_text()) == yaml.safe_load(
        (ROOT / "ivr_flows" / "main.yaml").read_text()
    )


async def test_import_refuses_unreadable_files_and_exits_non_zero(db_dsn: str, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_bytes(b"\xff\xfe not utf-8")
    run = _cli(db_dsn, "import", str(tmp_path), "--user", "alice")
    assert run.returncode == 1
    assert run.stdout.splitlines() == [f"{tmp_path / 'bad.yaml'}: not imported", "  (file): not UTF-8 (byte 0: b'\\xff')"]


def test_check_holds_the_flows_to_the_given_configuration(tmp_path: Path) -> None:
    flow = tmp_path / "sales.yaml"
    flow.write_text("name: sales\nstart: lang\nlanguages: [en, fr]\nnodes:\n"
                    "  lang: {type: set, language: fr, skills: {billing: 20}, next: q}\n"
                    "  q: {type: queue, queue: salse}\n")
    site = tmp_path / "site.toml"
    site.write_text('[acd]\nskills = ["fr", "billing"]\n[[queues]]\nname = "sales"\n'
                    '[[agents]]\nid = "1001"\nname = "A"\nnode = "pbx1"\ndevice = "PJSIP/1001"\n'
                    'queues = ["sales"]\nskills = { fr = 80 }\n')
    run = _cli("postgresql://unused/db", "check", str(flow), config=site)
    assert run.returncode == 1
    assert run.stdout.splitlines() == [f"{flow}: nodes.q.queue: queue 'salse' is not configured"]
    # without a configuration there is no site to hold the flow to: the built-in defaults are not one
    run = _cli("postgresql://unused/db", "check", str(flow))
    assert (run.returncode, run.stdout) == (0, ""), run.stderr
