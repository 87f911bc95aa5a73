"""The crash-safe output file: the output path checked before any work, the video staged in an unnamed file (else a
locked, PID-named hidden temporary that later runs remove) and linked into place, with its attachments (the report),
only when complete (:func:`atomic_output`)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import secrets
from pathlib import Path
from typing import Iterator

from retime.errors import OutputError
from retime.media._codecs import muxer_for

__all__ = ["TEMP_NAME", "StagedOutput", "atomic_output", "check_output_path", "remove_stale_temporaries",
           "temp_path_for", "write_atomically"]


def check_output_path(output: Path, *, input: Path | None = None, overwrite: bool = False) -> None:
    """Refuse an output path before any work starts.

    Raises:
        OutputError: ``output`` is the input file (same path or same file), a directory, exists without
            ``overwrite``, or its folder is missing or not writable.
    """
    output = Path(output)
    if input is not None:
        same = output.resolve() == Path(input).resolve()
        if not same and output.exists():
            with contextlib.suppress(OSError):
                same = os.path.samefile(output, input)
        if same:
            raise OutputError(f"{output}: the output is the input file; choose another output path")
    if output.is_dir():
        raise OutputError(f"{output}: is a directory; give an output file name")
    if output.exists() and not overwrite:
        raise OutputError(f"{output}: already exists (use --overwrite or -y to replace it)")
    folder = output.resolve().parent
    if not folder.is_dir():
        raise OutputError(f"{output}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{output}: the folder {folder} is not writable")
    if not output.suffix:
        raise OutputError(f"{output}: no file extension; name the container, e.g. .mp4 or .mkv")


#: The fallback temporary name: ``.NAME.retime-PID-XXXXXXXX.part.EXT``. The PID and an advisory lock held for the
#: whole run tell a later run whether its writer is gone (then the file is debris and is removed).
TEMP_NAME = re.compile(r"^\..*\.retime-(?P<pid>\d+)-[0-9a-f]{8}\.part(\.[^.]*)?$")


def temp_path_for(output: Path) -> Path:
    """A hidden, unique temporary path beside ``output`` with the same extension and this process's PID:
    ``dir/.NAME.retime-PID-XXXXXXXX.part.EXT`` for ``dir/NAME.EXT`` (see :data:`TEMP_NAME`)."""
    output = Path(output)
    return output.with_name(f".{output.stem}.retime-{os.getpid()}-{secrets.token_hex(4)}.part{output.suffix}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Remove the temporary files that killed runs (SIGKILL, a power cut) left in ``folder``; return them.

    A file counts as left over only when its name matches :data:`TEMP_NAME`, its PID is not a running process
    and nobody holds its lock (a live writer holds an exclusive ``flock`` until it finishes).
    """
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = TEMP_NAME.match(name)
        if match is None or _pid_alive(int(match["pid"])):
            continue
        path = Path(folder) / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path.unlink()
            removed.append(path)
        except OSError:  # locked (a writer on another machine), or not ours to remove
            pass
        finally:
            os.close(fd)
    return removed


def _open_unnamed(folder: Path) -> int | None:
    """An unnamed file in ``folder`` (``O_TMPFILE``: it vanishes with the process unless linked), or ``None``
    where the file system or the platform has none, or ``/proc`` (needed to link it) is missing."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        return os.open(folder, flag | os.O_RDWR, 0o666)
    except OSError:  # EOPNOTSUPP, EISDIR (old kernels), EINVAL...
        return None


def _disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def _write_error(output: Path, exc: BaseException, doing: str) -> OutputError:
    """One OutputError that names ``output`` (never a temporary name) and says "disk full" when it is."""
    if _disk_full(exc):
        return OutputError(f"{output}: disk full (no space left on the device of {Path(output).resolve().parent}): "
                           f"cannot {doing}; nothing was written")
    reason = getattr(exc, "strerror", None) or str(exc)
    return OutputError(f"{output}: cannot {doing}: {reason}")


class StagedOutput:
    """The output of one run while it is being written; made by :func:`atomic_output`.

    ``path`` is what the writer opens (an unnamed ``O_TMPFILE`` file through ``/proc/self/fd`` where the file
    system has them; else a hidden temporary file beside the output, locked for the run); ``muxer`` is the FFmpeg
    container the final name asks for. :meth:`attach` adds a small file (the ``--report``) that appears together
    with the video.
    """

    def __init__(self, output: Path, overwrite: bool, container: bool = True) -> None:
        self.output = output
        self.overwrite = overwrite
        self.muxer = muxer_for(output) if container else None
        self.folder = output.resolve().parent
        self._attachments: list[tuple[Path, bytes]] = []
        self._staged: list[tuple[Path, Path]] = []  # (temporary, final) of the attachments
        self.name: Path | None = None  # the visible temporary name (fallback only)
        self.fd = _open_unnamed(self.folder)
        if self.fd is None:
            self.name, self.fd = self._named_temp(output)
        self.path = Path(f"/proc/self/fd/{self.fd}") if os.path.isdir("/proc/self/fd") else self.name

    def _named_temp(self, final: Path, doing: str = "create a temporary file in its folder") -> tuple[Path, int]:
        name = temp_path_for(final)
        try:
            fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
        except OSError as exc:
            raise _write_error(final, exc, doing) from None
        fcntl.flock(fd, fcntl.LOCK_EX)  # held until this process ends: a later run leaves the file alone
        return name, fd

    def attach(self, path: str | Path, data: bytes) -> None:
        """Commit ``data`` to ``path`` together with the video: written beside it now, moved into place right after
        the video (and the video removed again if that fails). Only before the ``with`` block ends."""
        self._attachments.append((Path(path), data))
        remove_stale_temporaries(Path(path).resolve().parent)

    # -- commit ---------------------------------------------------------------------------------------------------
    def commit(self) -> None:
        """Make the video (then its attachments) appear at their paths, complete and on disk."""
        try:
            os.fsync(self.fd)  # a power cut right after the rename must not leave an empty OUT
        except OSError as exc:
            raise _write_error(self.output, exc, "write the output") from None
        for path, data in self._attachments:
            self._stage_attachment(path, data)
        self._link_video()
        for i, (tmp, final) in enumerate(self._staged):
            try:
                os.replace(tmp, final)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    self.output.unlink()  # not one without the other
                for later, _ in self._staged[i:]:
                    with contextlib.suppress(OSError):
                        later.unlink()
                self._staged = []
                raise _write_error(final, exc, "write the report") from None
        self._staged = []
        _sync_folder(self.folder)

    def _stage_attachment(self, path: Path, data: bytes) -> None:
        name, fd = None, None
        try:
            name, fd = self._named_temp(path, "write the report")
            self._staged.append((name, path))
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError as exc:
            raise _write_error(path, exc, "write the report") from None
        finally:
            if fd is not None:
                os.close(fd)

    def _link_video(self) -> None:
        output = self.output
        try:
            if self.name is None:  # the unnamed file gets a name: the final one, or a temporary one to rename
                target = self.folder / (output.name if not self.overwrite else temp_path_for(output).name)
                try:
                    _link_unnamed(self.fd, target)
                except FileExistsError:
                    raise OutputError(f"{output}: appeared while retime was running; not replaced") from None
                if self.overwrite:
                    self.name = target
                    os.replace(target, output)
                    self.name = None
                return
            if self.overwrite:
                os.replace(self.name, output)
                return
            try:
                os.link(self.name, output)
            except FileExistsError:
                raise OutputError(f"{output}: appeared while retime was running; not replaced") from None
            except OSError:  # no hard links here (FAT, some network filesystems)
                if output.exists():
                    raise OutputError(f"{output}: appeared while retime was running; not replaced") from None
                os.replace(self.name, output)
        except OutputError:
            raise
        except OSError as exc:
            raise _write_error(output, exc, "move the finished file into place") from None

    def discard(self) -> None:
        """Remove every temporary file; close the descriptor (an unnamed file then vanishes)."""
        for tmp, _ in self._staged:
            with contextlib.suppress(OSError):
                tmp.unlink()
        self._staged = []
        if self.name is not None:
            with contextlib.suppress(OSError):
                self.name.unlink()
            self.name = None
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None


def write_atomically(path: str | Path, data: bytes, *, what: str = "the report") -> None:
    """Write a small file (a report) so that it appears complete or not at all, through a locked temporary name
    beside it that a later run removes if this process is killed.

    Raises:
        OutputError: the folder is missing, not writable or full (the message names ``path``).
    """
    path = Path(path)
    remove_stale_temporaries(path.resolve().parent)
    fd, tmp = None, None
    try:
        tmp = temp_path_for(path)
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
        fcntl.flock(fd, fcntl.LOCK_EX)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise _write_error(path, exc, f"write {what}") from None
    finally:
        if fd is not None:
            os.close(fd)
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()


def _link_unnamed(fd: int, target: Path) -> None:
    """Give the unnamed file ``fd`` the name ``target`` (``linkat`` of ``/proc/self/fd/N``, following the link).

    Python calls ``linkat`` (which can follow) only when given a directory descriptor; otherwise it calls plain
    ``link``, which links the magic symlink itself and fails with EXDEV.
    """
    folder = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.link(f"/proc/self/fd/{fd}", target.name, src_dir_fd=folder, dst_dir_fd=folder, follow_symlinks=True)
    finally:
        os.close(folder)


def _sync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_output(output: str | Path, *, input: str | Path | None = None, overwrite: bool = False,
                  container: bool = True) -> Iterator[StagedOutput]:
    """Stage ``output``: yield a :class:`StagedOutput` whose ``path`` the writer fills; on a clean exit the file
    appears at ``output`` (with its attachments), on any exception (including KeyboardInterrupt) nothing appears
    and ``output`` is left as it was. A killed process (SIGKILL, a power cut) leaves nothing where the file system
    has unnamed files (``O_TMPFILE``: ext4, XFS, Btrfs, tmpfs), else a hidden temporary file that the next run in
    that folder removes (:func:`remove_stale_temporaries`).

    Without ``overwrite`` the final link fails instead of replacing a file that appeared at ``output`` meanwhile.
    ``container=False``: ``output`` is not a video container (a chunk's packet file), so its extension is not checked.

    Raises:
        OutputError: as :func:`check_output_path`; the extension is no container; the folder is full or the move
            fails.
    """
    output = Path(output)
    check_output_path(output, input=None if input is None else Path(input), overwrite=overwrite)
    remove_stale_temporaries(output.resolve().parent)
    staged = StagedOutput(output, overwrite, container)
    try:
        yield staged
        staged.commit()
    finally:
        staged.discard()

