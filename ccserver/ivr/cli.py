"""``ccserver flows ...``: check flow files, import them into Postgres, export them back."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ccserver.config import ENV_PREFIX, Config
from ccserver.ivr.checks import SiteNames, check_bytes, check_goto_cycles
from ccserver.ivr.flow import Flow
from ccserver.ivr.source import MAX_BYTES


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``flows check|import|export`` on the main parser's subcommands."""
    flows = sub.add_parser("flows", help="check, import and export IVR flows",
                           description="IVR flows: static checks, import into / export from Postgres.")
    flows_sub = flows.add_subparsers(dest="flows_command", metavar="FLOWS_COMMAND")
    flows_sub.required = True
    check = flows_sub.add_parser(
        "check", help="check flow files and print every problem; exit 1 if any",
        description="Run the server's static checks on each file (or each *.yaml of a directory) and "
        "print every problem as 'file: field path: reason'. goto targets may be any flow given or "
        "beside the files. When a configuration is given (--config, $CCSERVER_CONFIG or "
        "./ccserver.toml), the queues, skills and languages the flows name must be ones it serves. "
        "Exit status 1 when a problem was found.",
    )
    check.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    imp = flows_sub.add_parser(
        "import", help="store each DIR/*.yaml as a new draft version in Postgres",
        description="Store each flow file of DIR as a new draft of the flow named by the file (unchanged "
        "files store nothing). Drafts with problems are stored with them; publish is separate.",
    )
    imp.add_argument("directory", type=Path, metavar="DIR")
    imp.add_argument("--user", required=True, help="who imports (recorded in the audit log)")
    exp = flows_sub.add_parser("export", help="write each flow's published (else newest) version to DIR/<flow>.yaml")
    exp.add_argument("directory", type=Path, metavar="DIR")


def _files(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        out.extend(sorted(path.glob("*.yaml")) if path.is_dir() else [path])
    return out


def config_given(path: Path | None) -> bool:
    """Whether a configuration file is in use (``--config``, ``$CCSERVER_CONFIG`` or
    ``./ccserver.toml``, where :func:`~ccserver.config.load_config` looks): only a site's own
    configuration, not the built-in defaults, says which queues and skills exist."""
    return path is not None or bool(os.environ.get(f"{ENV_PREFIX}CONFIG")) or Path("ccserver.toml").is_file()


def run_check(paths: list[Path], config: Config | None = None) -> int:
    """Print every problem of every file; 0 when all are clean, 1 otherwise. With ``config``,
    the queues, skills and languages the flows name must be ones it serves."""
    site = SiteNames.of(config) if config is not None else None
    files = _files(paths)
    known = {f.stem for f in files} | {p.stem for f in files for p in f.parent.glob("*.yaml")}
    bad = 0
    flows: dict[str, Flow] = {}
    for path in files:
        try:
            with path.open("rb") as f:
                data = f.read(MAX_BYTES + 1)
        except OSError as err:
            print(f"{path}: (file): cannot read: {err.strerror or err}")
            bad += 1
            continue
        result = check_bytes(data, str(path), known_flows=known, site=site)
        problems = list(result.problems)
        if result.flow is not None:
            if result.flow.name != path.stem:
                problems.append(f"name: {result.flow.name!r} differs from the file name {path.stem!r}")
            flows[result.flow.name] = result.flow
        for problem in problems:
            print(f"{path}: {problem}")
        bad += bool(problems)
    for problem in check_goto_cycles(flows):
        print(problem)
        bad += 1
    print(f"{len(files)} flow file(s) checked, {bad} with problems", file=sys.stderr)
    return 1 if bad or not files else 0


async def run_import(config: Config, directory: Path, user: str) -> int:
    """Import a directory into Postgres as drafts; 1 when a file could not be stored."""
    from ccserver.db.migrate import migrate, migrations_dir
    from ccserver.db.pool import open_pool, resolve_dsn
    from ccserver.ivr.store import Actor, FlowStore

    pool = await open_pool(await resolve_dsn(config), 1, 1)
    try:
        await migrate(pool, migrations_dir())
        results = await FlowStore(pool).import_dir(directory, Actor(user, "admin"))
    finally:
        await pool.close()
    failed = 0
    for path, version, problems in results:
        if version is None:
            failed += 1
            print(f"{path}: not imported")
        else:
            print(f"{path}: {version.flow}@{version.version} ({version.status}, {len(problems)} problem(s))")
        for problem in problems:
            print(f"  {problem}")
    return 1 if failed else 0


async def run_export(config: Config, directory: Path) -> int:
    """Export every flow from Postgres as YAML files."""
    from ccserver.db.pool import open_pool, resolve_dsn
    from ccserver.ivr.store import FlowStore

    pool = await open_pool(await resolve_dsn(config), 1, 1)
    try:
        written = await FlowStore(pool).export_dir(directory)
    finally:
        await pool.close()
    for path in written:
        print(path)
    return 0
