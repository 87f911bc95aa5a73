"""The fuzz suite (issue 15): seeded mutations of small MP4, MKV and WebM clips through detect, fix-drops and upsample.

Every case must end in exit 0 with a valid output (it decodes, with the frame count its report gives), or in exactly
one ``retime: error:`` line on stderr with exit 2, 3, 4 or 5: never 1 (a bug), never a traceback, never a hang
(each command is killed past its timeout), and nothing beside OUT in its folder. Commands run in real processes
forked from one server (tests/launch_retime.py --serve), with the blending stand-in for the model, so a case costs
a fork and the work, not an interpreter start.

Size: ``RETIME_FUZZ_CASES`` cases per container (default 24: about a minute on two cores). Replay a failure with
the seeds it prints: ``RETIME_FUZZ_SEEDS=mkv:17,mp4:3 python -m pytest tests/test_fuzz.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import damage, moving_frames

LAUNCHER = Path(__file__).resolve().parent / "launch_retime.py"
ROOT = Path(__file__).resolve().parents[1]
CONTAINERS = ("mp4", "mkv", "webm")
MUTATIONS = ("flip", "zero", "duplicate", "truncate")
CASES = int(os.environ.get("RETIME_FUZZ_CASES", "24"))
TIMEOUT_S = 60  # a 16-frame 96x64 clip takes well under a second per command; past this it hangs
ALLOWED = {0, 2, 3, 4, 5}

pytestmark = pytest.mark.slow


def seeds_for(container: str) -> list[int]:
    wanted = os.environ.get("RETIME_FUZZ_SEEDS")
    if not wanted:
        return list(range(CASES))
    return [int(s.split(":")[1]) for s in wanted.split(",") if s.split(":")[0] == container]


def base_clip(folder: Path, container: str) -> Path:
    """16 frames of 96x64 with a repairable duplicate (5) and a run of two (10-11), and an audio stream: H.264 and
    AAC in MP4, FFV1 and PCM in MKV (about a third of the file is audio, so many mutations leave the video
    readable and the copy path runs on damaged packets), VP9 and Opus in WebM."""
    video_codec, audio_codec, options = {"mp4": ("libx264", "aac", {"preset": "ultrafast", "crf": "18"}),
                                         "mkv": ("ffv1", "pcm_s16le", {}),
                                         "webm": ("libvpx-vp9", "libopus", {"cpu-used": "8",
                                                                            "deadline": "realtime"})}[container]
    path = folder / f"base.{container}"
    out = av.open(str(path), "w")
    video = out.add_stream(video_codec, rate=25, options=options)
    video.width, video.height, video.pix_fmt = 96, 64, "yuv420p"
    audio = out.add_stream(audio_codec, rate=48000, layout="mono")
    tone = (0.3 * np.sin(np.arange(48000 * 16 // 25) * 2 * np.pi * 440 / 48000)).astype(np.float32)
    step = 960
    chunks = iter(range(0, tone.size, step))
    for i, rgb in enumerate(damage(moving_frames(16), [5, 10, 11])):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = i
        out.mux(video.encode(frame))
        for k in (next(chunks, None),):  # interleave: one 20 ms audio chunk per 40 ms frame, the rest after
            if k is not None:
                out.mux(audio.encode(_tone_frame(tone, k, step, audio_codec)))
    out.mux(video.encode(None))
    for k in chunks:
        out.mux(audio.encode(_tone_frame(tone, k, step, audio_codec)))
    out.mux(audio.encode(None))
    out.close()
    return path


def _tone_frame(tone: np.ndarray, k: int, step: int, codec: str) -> av.AudioFrame:
    chunk = np.ascontiguousarray(tone[None, k:k + step])
    if codec == "pcm_s16le":
        frame = av.AudioFrame.from_ndarray((chunk * 32767).astype(np.int16), format="s16", layout="mono")
    else:
        frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
    frame.sample_rate, frame.pts = 48000, k
    return frame


def mutate(data: bytes, seed: int, container: str) -> tuple[str, bytes]:
    """One seeded mutation of ``data``: byte flips, a zeroed run, a duplicated chunk or a truncation."""
    rng = np.random.default_rng([seed, CONTAINERS.index(container)])
    kind = MUTATIONS[seed % len(MUTATIONS)]
    buf = bytearray(data)
    n = len(buf)
    if kind == "flip":
        for at in rng.integers(0, n, int(rng.integers(1, 7))):
            buf[at] ^= int(rng.integers(1, 256))
    elif kind == "zero":
        length = int(rng.integers(16, 1025))
        at = int(rng.integers(0, n))
        buf[at:at + length] = bytes(len(buf[at:at + length]))
    elif kind == "duplicate":
        length = int(rng.integers(16, 4097))
        at, to = int(rng.integers(0, n)), int(rng.integers(0, n))
        buf[to:to] = buf[at:at + length]
    else:
        del buf[int(rng.integers(0, n)):]
    return kind, bytes(buf)


@dataclass
class Server:
    """The fork server: one retime import, one fork per command."""

    process: subprocess.Popen

    def run(self, args: list, cwd: Path, name: str) -> tuple[int | None, bool, str, str]:
        out, err = cwd / f"{name}.stdout", cwd / f"{name}.stderr"
        case = {"args": [str(a) for a in args], "cwd": str(cwd), "stdout": str(out), "stderr": str(err),
                "timeout": TIMEOUT_S}
        self.process.stdin.write(json.dumps(case) + "\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        texts = out.read_text(errors="replace"), err.read_text(errors="replace")
        out.unlink()
        err.unlink()
        return answer["rc"], answer["hang"], texts[0], texts[1]


@pytest.fixture(scope="module")
def server():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    process = subprocess.Popen([sys.executable, str(LAUNCHER), "--blend", "--serve"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, env=env)
    yield Server(process)
    process.stdin.close()
    process.wait(timeout=60)


def check_output(path: Path, report: Path) -> str | None:
    """Why a successful run's output is not valid, or None."""
    try:
        frames_out = json.loads(report.read_text())["frames_out"]
        with av.open(str(path)) as c:
            decoded = sum(1 for _ in c.decode(video=0))
    except Exception as exc:  # any failure to read it back is the finding
        return f"output unreadable: {type(exc).__name__}: {exc}"
    if decoded != frames_out or decoded < 2:
        return f"output has {decoded} frames, the report says {frames_out}"
    return None


def run_case(server: Server, work: Path, container: str, seed: int | None, base: bytes) -> tuple[list[str], list]:
    """Run the three commands on mutation ``seed`` of ``base`` (``None``: unmutated); (problems, exit codes)."""
    kind, data = mutate(base, seed, container) if seed is not None else ("none", base)
    case = work / f"{container}-{seed}"
    case.mkdir()
    src = case / f"in.{container}"
    src.write_bytes(data)
    problems, codes = [], []
    commands = {"detect": ["detect", src], "fix-drops": ["fix-drops", src], "upsample": ["upsample", src]}
    for command, args in commands.items():
        outdir = case / command
        outdir.mkdir()
        out, report = outdir / f"out.{container}", outdir / "report.json"
        if command != "detect":
            args = args + [out, "--preset", "ultrafast", "--report", report]
        rc, hang, stdout, stderr = server.run(args, outdir, "log")
        codes.append(rc)
        where = f"{container}:{seed} ({kind}) {command}"
        lines = stderr.splitlines()
        if hang:
            problems.append(f"{where}: hung (killed after {TIMEOUT_S} s)")
            continue
        if "Traceback" in stderr or rc not in ALLOWED:
            problems.append(f"{where}: exit {rc}: {stderr.strip()[-400:]}")
            continue
        if rc != 0 and (len(lines) != 1 or not lines[0].startswith("retime: error: ")):
            problems.append(f"{where}: exit {rc} with {len(lines)} stderr line(s): {stderr.strip()[-400:]}")
        left = sorted(p.name for p in outdir.iterdir())
        expected = [] if rc != 0 or command == "detect" else ["out." + container, "report.json"]
        if left != expected:
            problems.append(f"{where}: exit {rc} left {left} (expected {expected})")
        elif rc == 0 and command == "detect" and not stdout.startswith(str(src)):
            problems.append(f"{where}: exit 0 but stdout is {stdout[:200]!r}")
        elif rc == 0 and command != "detect":
            why = check_output(out, report)
            if why:
                problems.append(f"{where}: {why}")
    return problems, codes


@pytest.mark.parametrize("container", CONTAINERS)
def test_mutated_inputs_never_break_a_promise(server, tmp_path, container):
    base = base_clip(tmp_path, container).read_bytes()
    # the unmutated clip works in every command: the corpus starts from a valid file
    assert run_case(server, tmp_path, container, None, base) == ([], [0, 0, 0])
    problems, outcomes = [], []
    for seed in seeds_for(container):
        found, codes = run_case(server, tmp_path, container, seed, base)
        problems += found
        outcomes += codes
    print(f"{container}: exit codes {sorted((c, outcomes.count(c)) for c in set(outcomes) if c is not None)}")
    replay = ",".join(sorted({p.split(" ")[0] for p in problems}))
    assert not problems, (f"{len(problems)} broken promise(s); replay with RETIME_FUZZ_SEEDS={replay} "
                          f"python -m pytest tests/test_fuzz.py\n" + "\n".join(problems))
