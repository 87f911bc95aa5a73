"""Chunks of one long video: cut at scene cuts or keyframes, each rendered after a seek, joined into the output an
unchunked run writes (same frames, PTS and audio; bit-exact with FFV1), in one command or as a job array of separate
processes that survives a crash and never redoes a finished chunk."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import av
import pytest

from retime.batch import run_folder
from retime.chunks import ChunksNotDone, plan_chunks, render_chunk, run_chunked, split
from retime.chunks._seek import frames_from
from retime.errors import EXIT_SOME_FAILED, EXIT_USAGE, InputError, OutputError
from retime.executor import ExecutorSettings
from retime.media import EncodeSettings
from retime.media.decode import iter_frames
from retime.pipeline import fix_drops, upsample
from retime.plan import Copy, Synth
from tests.conftest import (CUT, DUPLICATES, BlendInterpolator, damage, moving_frames, packets, true_frames,
                            write_clip)

ROOT = Path(__file__).resolve().parents[1]
LOSSLESS = EncodeSettings(codec="ffv1")
LAUNCH = [sys.executable, str(ROOT / "tests" / "launch_retime.py")]


def _frames(path: Path) -> list[tuple[int, str]]:
    """(PTS, md5 of every plane) of each decoded frame."""
    with av.open(str(path)) as container:
        return [(f.pts, hashlib.md5(b"".join(bytes(p) for p in f.planes)).hexdigest())
                for f in container.decode(video=0)]


class CrashOnce(BlendInterpolator):
    """Kills its worker process at its first call, once per ``flag`` file: the chunk's next try succeeds."""

    def __init__(self, flag: Path) -> None:
        super().__init__()
        self.flag = str(flag)

    def interpolate(self, frame0, frame1, ts):
        if not os.path.exists(self.flag):
            Path(self.flag).touch()
            os._exit(9)
        return super().interpolate(frame0, frame1, ts)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """The damaged two-shot clip (duplicates, a cut at frame 30, audio) in H.264 with a keyframe every 8 frames and
    B-frames, so chunks start after real seeks."""
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    write_clip(path, damage(true_frames(), DUPLICATES), codec="libx264", audio=True,
               options={"preset": "fast", "x264-params": "keyint=8:min-keyint=8:scenecut=0"})
    return path


def test_split_starts_chunks_at_cuts_then_keyframes_never_inside_a_repair():
    frames = [Copy(i) for i in range(40)]
    frames[21] = Synth(20, 22, 0.5)  # a repaired drop: no chunk may start at 22's copy's neighbour inside it
    keep = [min(s for op in frames[j:] for s in op.needs()) for j in range(40)]
    chunks = split(frames, keep, 10, cuts={13}, keys={0, 8, 16, 24, 32})
    assert [(c.first, c.at) for c in chunks] == [(0, "start"), (13, "cut"), (24, "keyframe"), (32, "keyframe")]
    assert chunks[-1].end == 40 and all(a.end == b.first for a, b in zip(chunks, chunks[1:]))
    # a chunk owns the frames synthesized up to the next chunk's first source frame, which it decodes too
    assert split(frames, keep, 20, cuts=(), keys={22})[0].last_source == 22
    assert len(split(frames, keep, 40, cuts=(13,), keys=())) == 1


def test_a_chunk_seeks_to_its_keyframe_instead_of_decoding_from_the_start(long_clip, monkeypatch):
    whole = list(iter_frames(long_clip))
    pts = [f.pts for f in whole]
    import retime.chunks._seek as seek

    monkeypatch.setattr(seek, "iter_frames", lambda path: pytest.fail("decoded from the start"))
    got = list(frames_from(long_clip, 19, pts))
    assert [f.index for f in got] == list(range(19, 40)) and [f.pts for f in got] == pts[19:]
    assert all(bytes(a.frame.planes[0]) == bytes(b.frame.planes[0]) for a, b in zip(got, whole[19:]))


@pytest.mark.parametrize("command", ["fix-drops", "upsample"])
def test_chunked_output_equals_the_unchunked_one(long_clip, tmp_path, command):
    """Three or more chunks in a pool of two workers, one of them killed at its first frame: the same frames
    (bit-exact), PTS and audio as one unchunked run, and the report says how it was cut."""
    run, extra = (fix_drops, {}) if command == "fix-drops" else (upsample, {"factor": 2})
    plain, chunked = tmp_path / "plain.mkv", tmp_path / "chunked.mkv"
    run(long_clip, plain, interpolator=BlendInterpolator(), encode=LOSSLESS, **extra)
    result = run_chunked(command, long_clip, chunked, chunk_seconds=0.4, interpolator=CrashOnce(tmp_path / "flag"),
                         executor=ExecutorSettings(jobs=2), encode=LOSSLESS, report=tmp_path / "r.json", **extra)
    assert _frames(chunked) == _frames(plain) and len(_frames(plain)) == result.frames_written
    assert packets(chunked, "audio") == packets(plain, "audio") != []
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["chunks"]["count"] >= 3 and "cut" in report["chunks"]["starts"]
    assert report["frames_out"] == len(_frames(plain)) and (tmp_path / "flag").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chunked.mkv", "flag", "plain.mkv", "r.json"]


def test_lossy_chunked_output_keeps_the_frame_count_and_pts(long_clip, tmp_path):
    plain, chunked = tmp_path / "plain.mp4", tmp_path / "chunked.mp4"
    fix_drops(long_clip, plain, interpolator=BlendInterpolator())
    run_chunked("fix-drops", long_clip, chunked, chunk_seconds=0.4, interpolator=BlendInterpolator(),
                executor=ExecutorSettings(jobs=1))
    assert [p for p, _ in _frames(chunked)] == [p for p, _ in _frames(plain)]
    assert packets(chunked, "audio") == packets(plain, "audio")


class Broken(BlendInterpolator):
    def interpolate(self, frame0, frame1, ts):
        raise RuntimeError("injected")


def test_a_chunk_that_fails_on_every_try_leaves_no_output(long_clip, tmp_path):
    with pytest.raises(ChunksNotDone, match="injected"):
        run_chunked("fix-drops", long_clip, tmp_path / "out.mkv", chunk_seconds=0.4, interpolator=Broken(),
                    executor=ExecutorSettings(jobs=1, max_tries=2), encode=LOSSLESS)
    assert not (tmp_path / "out.mkv").exists()


def test_a_refused_output_leaves_nothing_beside_it(long_clip, tmp_path):
    (tmp_path / "out.mkv").write_bytes(b"keep me")
    with pytest.raises(OutputError, match="already exists"):
        run_chunked("fix-drops", long_clip, tmp_path / "out.mkv", chunk_seconds=0.4, interpolator=BlendInterpolator())
    assert [p.name for p in tmp_path.iterdir()] == ["out.mkv"] and (tmp_path / "out.mkv").read_bytes() == b"keep me"


def test_render_chunk_is_idempotent_and_refuses_a_changed_input(tmp_path):
    source = tmp_path / "in.mkv"
    write_clip(source, damage(moving_frames(20), [5, 15]))
    plan_chunks("fix-drops", source, tmp_path / "out.mkv", tmp_path / "m.json", chunk_seconds=0.3,
                interpolator=BlendInterpolator(), encode=LOSSLESS)
    first = render_chunk(tmp_path / "m.json", 1, interpolator=BlendInterpolator())
    again = render_chunk(tmp_path / "m.json", 1, interpolator=BlendInterpolator())
    assert first["status"] == "done" and again["status"] == "skipped" and again["bytes"] == first["bytes"]
    os.utime(source, ns=(1, 1))
    with pytest.raises(InputError, match="changed since"):
        render_chunk(tmp_path / "m.json", 0, interpolator=BlendInterpolator())
    source.rename(tmp_path / "elsewhere.mkv")  # a worker that does not see the input
    with pytest.raises(InputError, match="this worker cannot read the input"):
        render_chunk(tmp_path / "m.json", 0, interpolator=BlendInterpolator())


def _cli(*args: str, flags=("--blend",), **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*LAUNCH, *flags, "--", *args], cwd=ROOT, capture_output=True, text=True, timeout=300, **kw)


def test_job_array_in_separate_processes_survives_a_crash_and_equals_one_run(long_clip, tmp_path):
    """plan, run (one chunk killed mid-way), status, join refused, run again (redone), run a third time (nothing
    redone), join: the output equals the unchunked command's."""
    m, out, plain = tmp_path / "job.json", tmp_path / "out.mkv", tmp_path / "plain.mkv"
    planned = _cli("chunks", "plan", "fix-drops", str(long_clip), str(out), "--manifest", str(m),
                   "--chunk-seconds", "0.4", "--codec", "ffv1", "--quiet")
    assert planned.returncode == 0, planned.stderr
    n = json.loads(planned.stdout)["chunks"]
    assert n >= 3
    crashed = _cli("chunks", "run", str(m), "--index", "1", flags=("--blend", "--crash-after", "2"))
    assert crashed.returncode == 9
    assert not list((tmp_path / "job.chunks").iterdir())  # nothing half-written, nothing counted done
    for i in range(n):
        env = {**os.environ, "SLURM_ARRAY_TASK_ID": str(i)}  # the index as a SLURM array job gets it
        ran = _cli("chunks", "run", str(m), "--json", env=env)
        assert ran.returncode == 0 and json.loads(ran.stdout)["status"] == "done", ran.stderr
        if i == 0:
            refused = _cli("chunks", "join", str(m))
            assert refused.returncode == EXIT_SOME_FAILED and "not done" in refused.stderr and not out.exists()
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "job.chunks").iterdir()}
    again = _cli("chunks", "run", str(m), "--json")  # every chunk: all done already
    assert again.returncode == 0 and again.stdout == ""
    assert json.loads(_cli("chunks", "run", str(m), "--index", "2", "--json").stdout)["status"] == "skipped"
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "job.chunks").iterdir()} == stamps
    joined = _cli("chunks", "join", str(m), "--report", str(tmp_path / "r.json"))
    assert joined.returncode == 0, joined.stderr
    whole = _cli("fix-drops", str(long_clip), str(plain), "--codec", "ffv1", "--quiet")
    assert whole.returncode == 0, whole.stderr
    assert _frames(out) == _frames(plain) and packets(out, "audio") == packets(plain, "audio")
    assert json.loads((tmp_path / "r.json").read_text())["chunks"]["count"] == n


def test_folder_runs_through_the_executor_and_retries_a_killed_worker(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        write_clip(src / f"c{i}.mkv", damage(moving_frames(10, seed=i), [4]))
    out = tmp_path / "out"
    result = run_folder("fix-drops", src, out, interpolator=CrashOnce(tmp_path / "flag"), encode=LOSSLESS,
                        executor=ExecutorSettings(jobs=2, max_tries=2))
    assert [o.status for o in result.outcomes] == ["done"] * 3 and (tmp_path / "flag").exists()
    for i in range(3):
        fix_drops(src / f"c{i}.mkv", tmp_path / f"single{i}.mkv", interpolator=BlendInterpolator(), encode=LOSSLESS)
        assert _frames(out / f"c{i}.mkv") == _frames(tmp_path / f"single{i}.mkv")


@pytest.mark.parametrize("args, message", [
    (["{clip}", "{out}", "--executor", "ray"], "pip install 'retime[ray]'"),
    (["{clip}", "{out}", "--gpus-per-task", "1"], "need --executor ray"),
    (["{folder}", "{out}", "--chunk-seconds", "5"], "--chunk-seconds is for one file"),
    (["{clip}", "{out}", "--chunk-seconds", "0"], "--chunk-seconds must be a positive"),
])
def test_usage_errors_are_one_line_and_exit_2(long_clip, tmp_path, args, message):
    # Ray hidden, as on an install without the extra (whether or not this one has it)
    code = "import sys; sys.modules['ray'] = None; from retime.cli import main; main(sys.argv[1:])"
    argv = [a.format(clip=long_clip, folder=long_clip.parent, out=tmp_path / "o.mkv") for a in args]
    done = subprocess.run([sys.executable, "-c", code, "fix-drops", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == EXIT_USAGE and message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "o.mkv").exists()


@pytest.mark.parametrize("which", ["in", "out"])
def test_a_plan_refuses_a_pipe_with_a_hint(long_clip, tmp_path, which):
    """The chunk jobs read IN and the join writes OUT after the plan has exited: neither can be stdin or stdout.
    Exit 2 with the one-process alternative, and no manifest."""
    m = tmp_path / "job.json"
    args = ["-", str(tmp_path / "out.mkv")] if which == "in" else [str(long_clip), "-"]
    planned = _cli("chunks", "plan", "upsample", *args, "--manifest", str(m), "--factor", "2",
                   stdin=subprocess.DEVNULL)
    assert planned.returncode == 2, planned.stderr
    assert "not -" in planned.stderr and "retime upsample - OUT --chunk-seconds S" in planned.stderr
    assert len(planned.stderr.strip().splitlines()) == 1 and not m.exists() and planned.stdout == ""
