"""The one exit point of every command: a RetimeError becomes one line and its exit code, Ctrl-C/SIGTERM/SIGHUP
130, a closed stdout 141 (its reader gone) or 4 (closed before the run, or full), anything else 1 (the traceback
with ``--debug``)."""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import os
import signal
import sys
import traceback
from typing import Any, Callable

import typer
from rich.console import Console

from retime.errors import EXIT_BROKEN_PIPE, EXIT_INTERNAL, EXIT_INTERRUPTED, OutputError, RetimeError

class _Console(Console):
    """A Rich console whose closed pipe ends the run like Unix filters (exit 141, silent), not Rich's exit 1."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError


#: stderr: the progress bar, the summary, the weights commands' lines (looked up at call time, so it can be replaced)
err = _Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(message: str) -> None:
    """One line on stderr, plain text (no wrapping, no markup), whatever the terminal width."""
    with contextlib.suppress(OSError, ValueError):  # stderr itself closed: nobody to tell
        sys.stderr.write(f"retime: error: {' '.join(str(message).split())}\n")
        sys.stderr.flush()


def exit_point(command: Callable[..., None]) -> Callable[..., None]:
    """Run a command; map RetimeError to its exit code, KeyboardInterrupt to 130 and anything else to 1, each with
    one line on stderr (plus the traceback with --debug)."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        debug = bool(kwargs.get("debug"))
        # File names and tags are bytes from the wild: print an undecodable name back as the bytes it is (as ls
        # does) instead of failing on it.
        with contextlib.suppress(AttributeError, ValueError):
            sys.stdout.reconfigure(errors="surrogateescape")
        if sys.stdout is None:  # started with stdout closed (`>&-`): only a write to it is an error
            sys.stdout = _ClosedStdout()
        previous = _signals_as_interrupt()
        try:
            try:
                command(*args, **kwargs)
                sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise OutputError(f"disk full: {exc.filename or 'stdout'}: {exc.strerror}") from None
                if isinstance(sys.stdout, _ClosedStdout) and exc.errno == errno.EBADF:
                    raise OutputError("cannot write to stdout: it is closed") from None
                raise
        except typer.Exit:
            raise
        except BrokenPipeError:
            _silence_stdout()
            raise typer.Exit(EXIT_BROKEN_PIPE) from None
        except RetimeError as exc:
            if debug:
                traceback.print_exc()
            _fail(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt as exc:
            if debug:
                traceback.print_exc()
            _fail(str(exc) or "interrupted; no output was written")  # a folder run says what it kept
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as exc:  # a bug: one line, the traceback on request
            if debug:
                traceback.print_exc()
            _fail(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)")
            raise typer.Exit(EXIT_INTERNAL) from None
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    return run


#: Signals that mean "stop now": a killed run (SIGTERM) or a closed terminal or SSH session (SIGHUP).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _signals_as_interrupt() -> dict:
    """Treat SIGTERM and SIGHUP like Ctrl-C, so the temporary output is removed; return the previous handlers.
    Main thread only."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = {}
    for signum in STOP_SIGNALS:
        try:
            previous[signum] = signal.signal(signum, handler)
        except ValueError:  # not the main thread (e.g. some test runners)
            break
    return previous


def _silence_stdout() -> None:
    """After a reader closed stdout (``retime detect ... | head``): point it at /dev/null, so that Python's own
    flush at exit does not complain, and print nothing more (what Unix filters do)."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


class _ClosedStdout(io.TextIOBase):
    """What ``sys.stdout`` is when the process started without one: writing raises ``OSError(EBADF)`` (an output
    error), flushing and asking whether it is a terminal do not."""

    closed_at_start = True  # what retime.cli._pipes checks before OUT - does any work

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "stdout is closed")

    @property
    def buffer(self):
        raise OSError(errno.EBADF, "stdout is closed")

    def isatty(self) -> bool:
        return False

    def flush(self) -> None:
        pass
