"""The ``retime`` command line: parse, call :mod:`retime.pipeline`, map errors to one line and an exit code.

Modules: :mod:`._app` (the app, the epilog, the shared option types), :mod:`._exit` (the one exit point),
:mod:`._commands` (fix-drops, upsample, detect), :mod:`._output` (progress, summary, detect's table),
:mod:`._weights` (``retime weights``), :mod:`._chunks` (``retime chunks``); the commands outside the core are mounted by :func:`mount_commands`.

Output streams: stdout carries only what a command is asked for (``detect``'s table, or its JSON with ``--json``);
stderr carries the progress bar (only on a terminal), the human summary after ``fix-drops``/``upsample`` and error
lines. ``--quiet`` prints nothing on success except ``detect --json``'s JSON, which was asked for.
"""

from __future__ import annotations

import sys

import typer

from retime.cli import _chunks, _commands, _weights  # noqa: F401  (their commands register on the app)
from retime.cli._app import EPILOG, DebugOpt, Device, QuietOpt, WeightsOpt, app
from retime.cli._exit import _fail, exit_point
from retime.errors import EXIT_INTERRUPTED, EXIT_USAGE

__all__ = ["COMMANDS_GROUP", "EPILOG", "DebugOpt", "Device", "QuietOpt", "WeightsOpt", "app", "exit_point", "main",
           "mount_commands"]

#: Entry-point group of the commands that live outside the core (``retime bench``, ``retime train``): each names a
#: Typer app whose commands are merged into retime's at start-up, so importing this module loads none of them.
COMMANDS_GROUP = "retime.commands"


def mount_commands(target: typer.Typer = app) -> None:
    """Merge the Typer apps of the ``retime.commands`` entry points into ``target`` (once; idempotent).

    An entry point whose package cannot be imported (a broken or partial install) is skipped, so the core commands
    keep working. The benchmark ships in the wheel; without its extra (scikit-image) ``retime bench`` says which
    extra to install.
    """
    from importlib.metadata import entry_points

    for entry in entry_points(group=COMMANDS_GROUP):
        try:
            commands = entry.load()
        except ImportError:
            continue
        if not any(group.typer_instance is commands for group in target.registered_groups):
            target.add_typer(commands)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``retime``). Click's usage errors (a bad option value, a missing argument) are
    reported like every other error: one ``retime: error:`` line and exit code 2."""
    # typer.BadParameter is a Click UsageError; its base class is the one every usage error derives from (Typer
    # vendors Click in recent releases, so the class is reached through Typer's public name).
    ClickUsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")

    mount_commands(app)
    try:
        code = app(args=argv, prog_name="retime", standalone_mode=False)
    except ClickUsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `retime`: the help itself, as Click prints it
            sys.stderr.write(exc.format_message() + "\n")
            sys.exit(EXIT_USAGE)
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        _fail(exc.format_message() + hint)
        code = EXIT_USAGE
    except (typer.Abort, KeyboardInterrupt):
        _fail("interrupted; no output was written")
        code = EXIT_INTERRUPTED
    sys.exit(code if isinstance(code, int) else 0)
