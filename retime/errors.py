"""One exception family for everything a user can cause, each with its documented exit code.

The CLI catches :class:`RetimeError` at one place and prints ``retime: error: <message>`` on one line; anything
else is a bug (exit 1, traceback only with ``--debug``).

Exit codes (also in ``retime --help`` and README.md):

====  ==========================================================================
 0    success
 1    internal error (a bug: please report it with ``--debug`` output)
 2    usage error (bad option or argument; Typer/Click's own code)
 3    input error: missing file, a directory, not a video, no video stream,
      truncated or corrupted video, fewer than 2 frames
 4    output error: output exists (without ``--overwrite``), output equals
      input, output folder missing or not writable, disk full, codec unsupported
 5    model error: weights missing, truncated or wrong
 6    a folder run: one or more files failed (each one's code and reason in the
      summary and in OUT_DIR/retime-manifest.json); a chunked run: chunks failed
      on every try or are not done (nothing is written)
130   interrupted (Ctrl-C, SIGTERM, SIGHUP); no output is left behind
141   stdout was closed early (``retime detect ... | head``): nothing more is
      printed, as Unix filters do (128 + SIGPIPE, what a shell reports)
====  ==========================================================================
"""

from __future__ import annotations

__all__ = ["EXIT_BROKEN_PIPE", "EXIT_INPUT", "EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_MODEL", "EXIT_OK",
           "EXIT_OUTPUT", "EXIT_SOME_FAILED", "EXIT_USAGE", "InputError", "ModelError", "OutputError", "RetimeError",
           "UsageError"]

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_OUTPUT = 4
EXIT_MODEL = 5
#: A folder run in which at least one file failed (each file's own code and reason: the summary and the manifest),
#: or a chunked run with chunks that failed or are not done (retime.chunks.ChunksNotDone).
EXIT_SOME_FAILED = 6
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


class RetimeError(Exception):
    """Base of every error a user can cause; ``exit_code`` is what the CLI returns."""

    exit_code = EXIT_INTERNAL


class InputError(RetimeError):
    """The input cannot be read as a video with at least two frames (exit code 3)."""

    exit_code = EXIT_INPUT


class OutputError(RetimeError):
    """The output cannot or must not be written (exit code 4)."""

    exit_code = EXIT_OUTPUT


class ModelError(RetimeError):
    """The model weights are missing, truncated or do not fit the network (exit code 5)."""

    exit_code = EXIT_MODEL


class UsageError(RetimeError):
    """An option value is out of range or options contradict each other (exit code 2)."""

    exit_code = EXIT_USAGE
