"""Folders: every video of IN_DIR through the same command into OUT_DIR, the same relative names, a manifest that
makes a second run redo only what is not finished, one summary, exit 6 when a file failed."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest
from typer.testing import CliRunner

import retime.cli as cli
from retime.batch import MANIFEST, find_inputs, run_folder
from retime.errors import EXIT_SOME_FAILED, EXIT_USAGE, UsageError
from retime.media import EncodeSettings
from retime.pipeline import fix_drops
from tests.conftest import BlendInterpolator, damage, moving_frames, write_clip

ROOT = Path(__file__).resolve().parents[1]


def _frames(path: Path) -> list[tuple[int, str]]:
    """(PTS, md5 of every plane) of each decoded frame."""
    with av.open(str(path)) as container:
        return [(f.pts, hashlib.md5(b"".join(bytes(p) for p in f.planes)).hexdigest())
                for f in container.decode(video=0)]


@pytest.fixture
def folder(tmp_path) -> Path:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    write_clip(src / "a.mkv", damage(moving_frames(12), [4]))
    write_clip(src / "b.MKV", damage(moving_frames(12, seed=3), [6, 7]))
    write_clip(src / "sub" / "c.mkv", damage(moving_frames(10, seed=5), [5]))
    (src / "notes.txt").write_text("not a video, and not matched")
    return src


LOSSLESS = EncodeSettings(codec="ffv1")


def test_find_inputs_matches_video_extensions_case_insensitively(folder):
    assert find_inputs(folder) == [Path("a.mkv"), Path("b.MKV")]
    assert find_inputs(folder, recursive=True) == [Path("a.mkv"), Path("b.MKV"), Path("sub/c.mkv")]
    assert find_inputs(folder, globs=("a.*",)) == [Path("a.mkv")]
    assert find_inputs(folder, recursive=True, exclude=folder / "sub") == [Path("a.mkv"), Path("b.MKV")]
    # a sub-folder holding a manifest is an earlier folder run's OUT: its videos are outputs, not inputs
    (folder / "sub" / MANIFEST).write_text("{}")
    assert find_inputs(folder, recursive=True) == [Path("a.mkv"), Path("b.MKV")]
    assert find_inputs(folder / "sub") == [Path("c.mkv")]  # given as IN itself, it is read


def test_each_output_equals_its_single_file_run(folder, tmp_path):
    out = tmp_path / "out"
    result = run_folder("fix-drops", folder, out, jobs=2, recursive=True, interpolator=BlendInterpolator(),
                        encode=LOSSLESS)
    assert [o.status for o in result.outcomes] == ["done"] * 3 and not result.failed
    for rel in ("a.mkv", "b.MKV", "sub/c.mkv"):
        single = tmp_path / "single" / rel
        single.parent.mkdir(parents=True, exist_ok=True)
        fix_drops(folder / rel, single, interpolator=BlendInterpolator(), encode=LOSSLESS)
        assert _frames(out / rel) == _frames(single), rel
    manifest = json.loads((out / MANIFEST).read_text())
    assert set(manifest["files"]) == {"a.mkv", "b.MKV", "sub/c.mkv"}
    for entry in manifest["files"].values():
        assert entry["status"] == "done" and entry["exit_code"] == 0 and Path(entry["report"]).is_file()


def test_a_second_run_redoes_only_what_is_not_finished(folder, tmp_path):
    out = tmp_path / "out"
    (folder / "broken.mp4").write_bytes(b"not a video")
    first = run_folder("fix-drops", folder, out, interpolator=BlendInterpolator(), encode=LOSSLESS)
    assert {Path(o.input).name: (o.status, o.exit_code) for o in first.outcomes} == {
        "a.mkv": ("done", 0), "b.MKV": ("done", 0), "broken.mp4": ("failed", 3)}
    assert not (out / "broken.mp4").exists()  # a failed file leaves nothing at its output path
    before = (out / "a.mkv").stat().st_mtime_ns
    os.utime(folder / "b.MKV")  # a changed input is redone
    second = run_folder("fix-drops", folder, out, interpolator=BlendInterpolator(), encode=LOSSLESS)
    assert [o.status for o in second.outcomes] == ["skipped", "done", "failed"]
    assert (out / "a.mkv").stat().st_mtime_ns == before


def test_a_file_committed_before_the_manifest_is_recognised(folder, tmp_path):
    """Killed between a file's commit and the manifest's rewrite: its report says which input it was."""
    out = tmp_path / "out"
    run_folder("fix-drops", folder, out, interpolator=BlendInterpolator(), encode=LOSSLESS)
    (out / MANIFEST).unlink()
    again = run_folder("fix-drops", folder, out, interpolator=BlendInterpolator(), encode=LOSSLESS)
    assert [o.status for o in again.outcomes] == ["skipped", "skipped"]


def test_outputs_inside_the_input_folder_are_never_inputs(folder):
    result = run_folder("fix-drops", folder, folder / "fixed", recursive=True, interpolator=BlendInterpolator(),
                        encode=LOSSLESS)
    again = run_folder("fix-drops", folder, folder / "fixed", recursive=True, interpolator=BlendInterpolator(),
                       encode=LOSSLESS)
    assert len(result.outcomes) == len(again.outcomes) == 3


@pytest.mark.parametrize("args, message", [
    (["{in}", "{in}"], "OUT must be another folder than IN"),
    (["{in}", "{out}", "--report", "r.json"], "--report is for one file"),
    (["{in}", "{out}", "--glob", "*.nothing"], "no file matches"),
    (["{in}", "{out}", "--jobs", "0"], "--jobs"),
])
def test_folder_usage_errors_exit_2(folder, tmp_path, args, message):
    argv = ["fix-drops", *(a.format(**{"in": folder, "out": tmp_path / "out"}) for a in args)]
    result = CliRunner().invoke(cli.app, argv)
    assert result.exit_code == EXIT_USAGE and message in result.output, result.output


def test_run_folder_refuses_a_file_as_out(folder, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="OUT must be a folder"):
        run_folder("fix-drops", folder, tmp_path / "file")


@pytest.mark.slow
def test_cli_folder_run_with_the_model_is_killed_and_resumed(tmp_path):
    """The real command in a real process, two workers: a failing file gives exit 6 with its reason in the summary;
    killed mid-way and run again, the finished files are not redone and the result equals an uninterrupted run."""
    src = tmp_path / "in"
    src.mkdir()
    for i in range(5):
        write_clip(src / f"clip{i}.mkv", damage(moving_frames(10, seed=i), [4]))
    (src / "broken.mp4").write_bytes(b"not a video")
    cmd = [sys.executable, "-m", "retime", "fix-drops", str(src), str(tmp_path / "out"), "--quality", "fast",
           "--codec", "ffv1", "--jobs", "2", "--device", "cpu"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True, start_new_session=True)
    manifest = tmp_path / "out" / MANIFEST
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if manifest.is_file() and sum(e["status"] == "done" for e in
                                      json.loads(manifest.read_text() or "{}").get("files", {}).values()) >= 1:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {k for k, e in json.loads(manifest.read_text())["files"].items() if e["status"] == "done"}
    stamps = {k: (tmp_path / "out" / k).stat().st_mtime_ns for k in done_before}
    finished = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert finished.returncode == EXIT_SOME_FAILED, finished.stderr
    assert "broken.mp4: failed (exit 3)" in finished.stderr and "6 file(s)" in finished.stderr
    assert {k: (tmp_path / "out" / k).stat().st_mtime_ns for k in done_before} == stamps  # not redone
    clean = subprocess.run([*cmd[:5], str(tmp_path / "clean"), *cmd[6:]], cwd=ROOT, capture_output=True, text=True,
                           timeout=600)
    assert clean.returncode == EXIT_SOME_FAILED
    for i in range(5):
        assert _frames(tmp_path / "out" / f"clip{i}.mkv") == _frames(tmp_path / "clean" / f"clip{i}.mkv")
    assert not list((tmp_path / "out").glob(".*retime*tmp*"))  # no partial file left beside the outputs
