"""The ``escalations`` command. Every user error becomes one clear line on stderr and a
non-zero exit code (78 for configuration); only unexpected faults show a traceback, logged at
CRITICAL (``<2>`` on every line under the journal), exit 1."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, cast

from connector.errors import AuthError, HelpdeskError, Misconfigured
from escalations.app.logs import error_line, log_crash
from escalations.app.version import package_version
from escalations.errors import EX_CONFIG, ConfigError, EscalationsError

log = logging.getLogger(__name__)

EX_FAULT = 1
"""An unexpected fault (a bug): ``Restart=on-failure`` restarts the worker, within the unit's
start limit. The same code as any other failure that a restart may cure."""

Command = Callable[[argparse.Namespace], int]


def _cmd_version(args: argparse.Namespace) -> int:
    print(f"helpdesk-escalations {package_version()}")  # noqa: T201
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from escalations.app.commands import check

    return check(args)


def _cmd_run(args: argparse.Namespace) -> int:
    from escalations.app.commands import run

    return run(args)


def _cmd_status(args: argparse.Namespace) -> int:
    from escalations.app.commands import status

    return status(args)


def _cmd_effects_list(args: argparse.Namespace) -> int:
    from escalations.app.commands import effects_list

    return effects_list(args)


def _cmd_effects_retry(args: argparse.Namespace) -> int:
    from escalations.app.commands import effects_retry

    return effects_retry(args)


def _add_effects(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    effects = sub.add_parser(
        "effects", help="list the worker's writes to the helpdesk; replay failed ones"
    )
    actions = effects.add_subparsers(dest="effects_command", metavar="ACTION")
    actions.required = True

    p = actions.add_parser(
        "list",
        help="one line per effect: id, kind, state, attempts, escalation, last change, "
        "last error (newest last)",
    )
    p.add_argument("--failed", action="store_true", help="only the effects that failed")
    p.set_defaults(func=_cmd_effects_list)

    retry = actions.add_parser(
        "retry",
        help="queue failed effects again (nothing is written now): the worker's next pass "
        "runs them like any other pending write",
    )
    retry.add_argument("ids", nargs="*", type=int, metavar="ID", help="effect ids (see list)")
    retry.add_argument("--all-failed", action="store_true", help="every failed effect")

    def checked(args: argparse.Namespace) -> int:
        if bool(args.ids) == args.all_failed:
            retry.error("give effect IDs or --all-failed (one of the two)")
        return _cmd_effects_retry(args)

    retry.set_defaults(func=checked)


def _cmd_archive(args: argparse.Namespace) -> int:
    from escalations.app.commands import archive_hold, archive_show, archive_verify

    command = {"verify": archive_verify, "show": archive_show, "hold": archive_hold}
    return command[args.archive_command](args)


def _add_archive(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    archive = sub.add_parser("archive", help="check and show the hard copies of closed escalations")
    actions = archive.add_subparsers(dest="archive_command", metavar="ACTION")
    actions.required = True
    p = actions.add_parser(
        "verify",
        help="re-check every file of every hard copy against its manifest (exit 1 naming each "
        "file that differs or is missing)",
    )
    p.add_argument("--escalation", metavar="KEY", help="only this escalation's copies")
    p.set_defaults(func=_cmd_archive)
    p = actions.add_parser("show", help="where an escalation's hard copy is and what it holds")
    p.add_argument("key", metavar="KEY", help="the escalation key (see status)")
    p.set_defaults(func=_cmd_archive)
    p = actions.add_parser(
        "hold",
        help="keep an escalation's hard copies past retention (a local legal hold, for one "
        "whose ticket is gone); --release lifts it",
    )
    p.add_argument("key", metavar="KEY", help="the escalation key (see status)")
    p.add_argument("--release", action="store_true", help="lift the hold")
    p.set_defaults(func=_cmd_archive)


def _cmd_diagnostics(args: argparse.Namespace) -> int:
    from escalations.app.commands import diagnostics

    return diagnostics(args)


def _cmd_provision(args: argparse.Namespace) -> int:
    from escalations.app.provision import command

    return command(args)


PROVISION_ABOUT = (
    "create or update in Zammad what agents click and the worker needs (attributes, parked "
    "state, group, tags, macros, overviews, text modules; the webhook trigger with "
    "--webhook-url), from the mappings; idempotent; needs the admin token. On osTicket, whose "
    "API cannot create them, it writes nothing: one line per object the mappings need, ok or "
    "the exact admin-panel step, exit 78 while a step remains"
)


def _add_provision(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "provision",
        help=PROVISION_ABOUT,
        description=PROVISION_ABOUT,
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would change; write nothing (on osTicket provision never writes: "
        "the same checklist with or without it)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="also overwrite objects an admin changed by hand since provision made them",
    )
    p.add_argument(
        "--webhook-url",
        metavar="URL",
        help="the worker's webhook address as Zammad reaches it (e.g. "
        "https://escalations.example.com/zammad/webhook): creates the signed webhook and the "
        "trigger that calls it (needs ESCALATIONS_WEBHOOK_SECRET; docs/webhook.md)",
    )
    p.set_defaults(func=_cmd_provision)


def _cmd_sandbox(args: argparse.Namespace) -> int:
    from escalations.app.commands import sandbox

    return sandbox(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from escalations.app.commands import demo

    return demo(args)


_ENV_FILE_HELP = (
    "read settings from FILE (systemd EnvironmentFile= syntax; only its ESCALATIONS_* "
    "variables); the environment overrides it. Before or after the command"
)


def _env_file_parent() -> argparse.ArgumentParser:
    """The ``--env-file`` every command and action takes. Its default is SUPPRESS so that a
    command's parser, which runs after the top-level one, never overwrites the FILE given
    before the command with an absent option's default."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--env-file", type=Path, metavar="FILE", default=argparse.SUPPRESS, help=_ENV_FILE_HELP
    )
    return parent


EX_USAGE = 64
"""A command line argparse cannot read (sysexits' ``EX_USAGE``): kept apart from ``status``'s
2 (down), so a monitoring check never takes a typo for an outage."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors exiting ``EX_USAGE`` instead of 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EX_USAGE, f"{self.prog}: error: {message}\n")


class _CommandParser(_Parser):
    """The parser of every command and nested action: argparse builds sub-parsers with the
    class of the parser they hang from, so each one, also a command added later, gets
    ``--env-file`` from the shared parent without being told."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["parents"] = [*kwargs.get("parents", ()), _env_file_parent()]
        super().__init__(**kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="escalations",
        description="Formal multi-level escalations for Zammad: sync worker and tools.",
    )
    parser.add_argument(
        "--version", action="version", version=f"helpdesk-escalations {package_version()}"
    )
    # here the default is None, so args.env_file always exists
    parser.add_argument("--env-file", type=Path, metavar="FILE", help=_ENV_FILE_HELP)
    # typed as a plain ArgumentParser, the type the _add_* helpers take
    command_parser = cast(type[argparse.ArgumentParser], _CommandParser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=command_parser)
    sub.required = True

    p = sub.add_parser(
        "check", help="validate settings and mappings (and the helpdesk with --live)"
    )
    p.add_argument(
        "--live",
        action="store_true",
        help="also check that every field, tag, group, state and person named in the "
        "mappings, and what `provision` makes, exists in the helpdesk as the mappings say, and "
        "that the token has the permissions needed; anything it cannot verify fails the check",
    )
    p.add_argument(
        "--allow-unverified",
        action="store_true",
        help="with --live: pass when what could be checked is fine, although some of it could "
        "not be verified (the worker's agent token cannot read every admin list; the admin "
        "token ESCALATIONS_HELPDESK_ADMIN_TOKEN can)",
    )
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("run", help="run the sync worker (until SIGTERM, or one pass with --once)")
    p.add_argument("--once", action="store_true", help="run a single pass and exit")
    p.add_argument(
        "--at",
        metavar="TIME",
        help="run the pass as of this instant (ISO-8601 with zone, e.g. 2026-12-01T09:30:00Z); "
        "needs --once",
    )
    p.add_argument(
        "--webhook",
        metavar="HOST:PORT",
        help="listen for Zammad's signed webhook on HOST:PORT and poll at once on each call "
        "(overrides ESCALATIONS_WEBHOOK_LISTEN; needs ESCALATIONS_WEBHOOK_SECRET; "
        "docs/webhook.md)",
    )
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser(
        "status",
        help="open escalations by level and state, duties and effects, last poll, health "
        "(exit 0 healthy, 1 degraded, 2 down)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object (docs: README)")
    p.set_defaults(func=_cmd_status)

    _add_effects(sub)
    _add_archive(sub)
    _add_provision(sub)
    from escalations.app.report_command import add_parser as _add_report

    _add_report(sub)
    from escalations.app.rebuild_command import add_parser as _add_rebuild

    _add_rebuild(sub)

    p = sub.add_parser(
        "diagnostics",
        help="print a bundle for a bug report: versions, settings and environment (secrets "
        "masked), mapping checksums, store statistics, last errors",
    )
    p.add_argument("--json", action="store_true", help="one JSON object instead of text")
    p.set_defaults(func=_cmd_diagnostics)

    p = sub.add_parser("version", help="print the version")
    p.set_defaults(func=_cmd_version)

    p = sub.add_parser(
        "sandbox", help="serve the in-memory Zammad-compatible sandbox on a loopback port"
    )
    p.add_argument("--port", type=int, default=8765, help="TCP port on 127.0.0.1 (default 8765)")
    p.add_argument(
        "--seed", type=Path, metavar="FILE", help="seed JSON file (default: the demo data)"
    )
    p.set_defaults(func=_cmd_sandbox)

    p = sub.add_parser(
        "demo",
        help="start the sandbox, run the worker through a scripted day and tell the story",
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="where the demo keeps its store (default: a new temporary directory)",
    )
    p.set_defaults(func=_cmd_demo)
    return parser


def _say(text: str) -> None:
    print(error_line(text), file=sys.stderr)  # noqa: T201


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        for line in str(exc).splitlines():
            _say(line)
        return EX_CONFIG
    except EscalationsError as exc:
        _say(str(exc))
        return exc.exit_code
    except Misconfigured as exc:  # not the token: the message names what to fix
        _say(str(exc))
        return EX_CONFIG
    except AuthError as exc:
        _say(
            f"the helpdesk refused the token ({exc}): check ESCALATIONS_HELPDESK_TOKEN or the "
            "helpdesk-token credential"
        )
        return EX_CONFIG
    except HelpdeskError as exc:
        _say(f"helpdesk error: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `escalations status | head`: the reader has gone
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the exit's flush does not fail again
        return 0
    except Exception:  # noqa: BLE001 - a bug: its traceback goes to the log, with its priority
        log_crash(getattr(args, "command", None))
        return EX_FAULT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
