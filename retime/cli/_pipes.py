"""``-`` as IN or OUT, so that retime sits inside ffmpeg pipelines.

retime reads its input twice (pass 1 finds the drops and the scene cuts, pass 2 renders), and a pipe can be read
once: stdin, or a named pipe (FIFO) given as IN, is therefore spooled to a temporary file first. The output is written to a temporary NUT file (FFV1,
lossless, unless ``--codec`` says otherwise; audio and subtitles copied where NUT holds them) and streamed to
stdout once complete, so a failed run sends nothing downstream rather than half a video.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from retime.errors import InputError, OutputError, RetimeError, UsageError

__all__ = ["STDIO", "is_stdio", "piped"]

#: The IN or OUT that means stdin or stdout.
STDIO = "-"
#: Bytes per read/write when spooling.
BLOCK = 1 << 20


def is_stdio(path: Path | str) -> bool:
    return str(path) == STDIO


@contextlib.contextmanager
def piped(input: Path, output: Path, options: dict) -> Iterator[tuple[Path, Path, dict]]:
    """``(input, output, options)`` with ``-`` replaced by temporary files; on a clean exit the output file is
    copied to stdout. Without ``-`` everything is yielded unchanged.

    Raises:
        UsageError: IN is ``-`` but stdin is a terminal, or OUT is ``-`` but stdout is one.
        InputError: stdin carried no data.
        OutputError: the spool's folder is full.
        BrokenPipeError: stdout's reader closed the pipe (the CLI exits 141).
    """
    from_stdin, to_stdout = is_stdio(input), is_stdio(output)
    from_fifo = not from_stdin and _is_fifo(input)
    if not (from_stdin or from_fifo or to_stdout):
        yield input, output, options
        return
    if from_stdin and sys.stdin.isatty():
        raise UsageError("IN is -, but stdin is a terminal: pipe a video into retime, e.g. "
                         "ffmpeg -i in.mkv -f yuv4mpegpipe - | retime upsample --factor 2 - out.mkv")
    if to_stdout and (sys.stdout is None or getattr(sys.stdout, "closed_at_start", False)):
        raise OutputError("OUT is -, but stdout is closed")
    if to_stdout and sys.stdout.isatty():
        raise UsageError("OUT is -, but stdout is a terminal: pipe retime's output into a program, e.g. "
                         "retime upsample --factor 2 in.mp4 - | ffmpeg -i - out.mp4")
    with tempfile.TemporaryDirectory(prefix="retime-pipe-") as folder:
        named = "stdin" if from_stdin else str(input)
        if from_stdin:
            input = Path(folder) / "stdin"
            _spool(sys.stdin.buffer, input)
        elif from_fifo:
            with open(input, "rb") as fifo:
                input = Path(folder) / "stdin"
                _spool(fifo, input, named)
        if to_stdout:
            output = Path(folder) / "stdout.nut"
            encode = options.get("encode")
            if encode is not None and encode.codec is None:  # what follows in a pipeline re-encodes: lossless
                options = {**options, "encode": dataclasses.replace(encode, codec="ffv1")}
        try:
            yield input, output, options
        except RetimeError as exc:  # the messages name the spools: name stdin and stdout instead
            raise _relabel(exc, input if from_stdin or from_fifo else None, output if to_stdout else None,
                           named) from None
        if to_stdout:
            _send(output)


def _is_fifo(path: Path) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _relabel(exc: RetimeError, spool_in: Path | None, spool_out: Path | None, named: str = "stdin") -> RetimeError:
    """The same error with the spools' names replaced by ``stdin`` (or the FIFO's name) and ``stdout``; advice to
    pick another extension becomes advice to write OUT to a file (stdout carries NUT whatever the extension)."""
    text = str(exc)
    if spool_in is not None:
        text = text.replace(str(spool_in), named)
    if spool_out is not None and str(spool_out) in text:
        text = text.replace(str(spool_out), "stdout")
        text = re.sub(r"(?:use|another extension such as) (\.\w+)", r"write OUT to a file such as out\1 instead of -",
                      text)
    return type(exc)(text)


def _spool(stream, path: Path, named: str = "stdin") -> None:
    try:
        with open(path, "wb") as spool:
            shutil.copyfileobj(stream, spool, BLOCK)
    except OSError as exc:
        raise OutputError(f"{named}: cannot spool the input to {path.parent} ({exc.strerror or exc}); set TMPDIR to "
                          f"a folder with room for the whole stream") from None
    if path.stat().st_size == 0:
        raise InputError(f"{named}: no data" + (" (IN is -)" if named == "stdin" else " (a named pipe)"))


def _send(path: Path) -> None:
    # a reader that closes the pipe raises BrokenPipeError: the CLI exits 141, silent, like other Unix filters
    with open(path, "rb") as source:
        shutil.copyfileobj(source, sys.stdout.buffer, BLOCK)
    sys.stdout.buffer.flush()
