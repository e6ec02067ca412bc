"""The ``ccserver`` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from ccserver.config import Config, ConfigError, load_config
from ccserver.db.pool import DatabaseUnavailable

log = logging.getLogger("ccserver")

DESCRIPTION = """\
ccserver: an open contact-center server for Asterisk (AMI + FastAGI) and FreeSWITCH (ESL).

With no configuration, `ccserver run` starts an embedded Postgres and the built-in Asterisk
simulator, so simulated calls flow through the IVR, the queue and the agents at once.
Configuration: a TOML file (--config, $CCSERVER_CONFIG or ./ccserver.toml) plus
CCSERVER_<SECTION>__<KEY> environment overrides; PBX nodes are listed in hardware/*.toml.
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ccserver", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", type=Path, help="TOML configuration file (default: $CCSERVER_CONFIG, ./ccserver.toml)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    run = sub.add_parser(
        "run",
        help="start the server: connect the PBX nodes (or the simulator), run IVR, ACD and CDR writing",
        description="Start ccserver. Checks the configuration against hardware/*.toml, waits for Postgres "
        "(retrying while it is unreachable) and applies pending migrations, then connects to every node: "
        "Asterisk over AMI (serving FastAGI for the IVR), FreeSWITCH over the ESL inbound socket (serving "
        "the ESL outbound socket). With no node listed (or simulator.enabled = 'on') it starts the built-in "
        "Asterisk simulator and generates demo traffic. Stop with Ctrl-C.",
    )
    run.add_argument("--duration", type=float, default=None, help="stop after this many seconds (demos, smoke tests)")

    mig = sub.add_parser(
        "migrate",
        help="apply pending database migrations (numbered SQL files in migrations/) and exit",
        description="Apply the numbered SQL files in migrations/ in order, each in a transaction, under an "
        "advisory lock. Refuses to run if an applied migration's file was edited (checksum mismatch).",
    )
    mig.add_argument("--status", action="store_true", help="only list applied and pending migrations")

    cdr = sub.add_parser("cdr", help="read call detail records", description="Read call detail records from Postgres.")
    cdr_sub = cdr.add_subparsers(dest="cdr_command", metavar="CDR_COMMAND")
    cdr_sub.required = True
    tail = cdr_sub.add_parser("tail", help="print the latest CDRs and follow new ones as they are written")
    tail.add_argument("-n", type=int, default=10, help="how many recent rows to print first (default 10)")
    tail.add_argument("--no-follow", action="store_true", help="print and exit instead of following")

    users = sub.add_parser("users", help="manage the people who log in to the API and pages")
    users_sub = users.add_subparsers(dest="users_command", metavar="USERS_COMMAND")
    users_sub.required = True
    admin = users_sub.add_parser(
        "create-admin", help="create an administrator (the first one, or another)",
        description="Create an admin user. The password is typed at a prompt (twice, not echoed) or, with "
        "--password-stdin, read as one line from standard input; there is never a default password.",
    )
    admin.add_argument("username")
    admin.add_argument("--password-stdin", action="store_true", help="read the password from standard input")

    from ccserver.ivr.cli import add_parser as add_flows_parser

    add_flows_parser(sub)

    from ccserver.recording.cli import add_parser as add_recordings_parser

    add_recordings_parser(sub)

    sub.add_parser(
        "check-config",
        help="validate the configuration and the hardware/ inventory, print the result and exit",
        description="Load the configuration file, environment overrides and hardware/*.toml and report "
        "every problem found (invalid keys, unset node secrets, agents on unknown nodes, queues no agent "
        "serves) without starting anything and never printing a secret; exits 2 when something is wrong.",
    )
    return p


def _configure_logging(config: Config | None) -> None:
    level = config.server.log_level if config else "INFO"
    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # pgserver narrates every initdb / pg_ctl step at INFO; its warnings still show.
    logging.getLogger("pgserver").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"ccserver: configuration error: {e}", file=sys.stderr)
        return 2
    _configure_logging(config)
    try:
        if args.command == "check-config":
            from ccserver.hardware import check_site, load_nodes

            nodes = load_nodes(config.hardware_dir)
            check_site(config, nodes)
            print(f"configuration OK: {len(config.queues)} queue(s), {len(config.agents)} agent(s), "
                  f"{len(nodes)} PBX node(s)")
            return 0
        if args.command == "run":
            from ccserver.app import StartError, run_server

            try:
                return asyncio.run(run_server(config, duration=args.duration))
            except StartError as e:
                print(f"ccserver: cannot start: {e}", file=sys.stderr)
                return 1
        if args.command == "migrate":
            from ccserver.app import run_migrate

            return asyncio.run(run_migrate(config, status_only=args.status))
        if args.command == "users":
            from ccserver.api.users_cli import create_admin, read_password

            try:
                password = read_password(args.password_stdin)
            except ValueError as e:
                print(f"ccserver: password: {e}", file=sys.stderr)
                return 2
            return asyncio.run(create_admin(config, args.username, password))
        if args.command == "cdr":
            from ccserver.cdr.tail import run_tail

            return asyncio.run(run_tail(config, n=args.n, follow=not args.no_follow))
        if args.command == "flows":
            from ccserver.ivr import cli as flows_cli

            if args.flows_command == "check":
                return flows_cli.run_check(args.paths, config if flows_cli.config_given(args.config) else None)
            if args.flows_command == "import":
                return asyncio.run(flows_cli.run_import(config, args.directory, args.user))
            return asyncio.run(flows_cli.run_export(config, args.directory))
        if args.command == "recordings":
            from ccserver.recording.cli import run_purge

            return asyncio.run(run_purge(config, args.dry_run, args.older_than_days))
    except ConfigError as e:
        print(f"ccserver: configuration error: {e}", file=sys.stderr)
        return 2
    except DatabaseUnavailable as e:  # one-shot commands do not wait for the database
        print(f"ccserver: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 1
