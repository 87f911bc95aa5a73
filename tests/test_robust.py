"""Robustness (issue 15): streams and bytes from the wild, crash safety, full disks, pipes, option values.

Each test stands for a class of inputs or events, not one file: every container retime writes, every stream kind
beside the video, every undecodable tag, every way a run can end early. Inputs are made here with PyAV from small
synthetic clips (tests/conftest.py); runs that need a real process (signals, pipes) go through
tests/launch_retime.py, the console entry point with the blending stand-in for the model.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

import retime.cli as cli
import retime.media.encode as encode
from retime.media import _codecs, _output
import retime.pipeline as pipeline
from conftest import BlendInterpolator, damage, moving_frames, true_frames, write_clip
from retime.errors import EXIT_BROKEN_PIPE, EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OUTPUT, EXIT_USAGE
from retime.media import VideoWriter, probe
from retime.media.encode import atomic_output, fitting_codecs, muxer_for, remove_stale_temporaries, temp_path_for

runner = CliRunner()
LAUNCHER = Path(__file__).resolve().parent / "launch_retime.py"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def no_model(monkeypatch):
    monkeypatch.setattr(pipeline._model, "_default_interpolator", lambda device, model=None: BlendInterpolator)


def invoke(*args):
    return runner.invoke(cli.app, [str(a) for a in args])


def one_error_line(result, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("retime: error: "), result.stderr
    return lines[0]


def _default_sigint() -> None:
    # A test run started as a background job inherits SIGINT ignored, and Python keeps an ignored SIGINT: the child
    # gets the default disposition, as a program started from a terminal has it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def launch(*args, flags=("--blend",), **kwargs) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    kwargs.setdefault("preexec_fn", _default_sigint)
    return subprocess.Popen([sys.executable, str(LAUNCHER), *flags, "--", *map(str, args)], env=env, **kwargs)


def frame_count(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def only(folder: Path, *names: str) -> None:
    """Nothing but ``names`` in ``folder`` (no temporary file, no partial output)."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """12 frames, one repairable duplicate (frame 5), H.264 in MP4, no other streams."""
    d = tmp_path_factory.mktemp("small")
    return write_clip(d / "small.mp4", damage(moving_frames(12), [5]), codec="libx264").path


def _timecoded(path: Path, frames) -> Path:
    out = av.open(str(path), "w")
    v = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
    v.width, v.height, v.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
    v.metadata["timecode"] = "01:00:00:00"  # what `ffmpeg -timecode` sets; the muxer adds a tmcd track
    for i, f in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        out.mux(v.encode(frame))
    out.mux(v.encode(None))
    out.close()
    return path


# --- 1. timecode and data streams -----------------------------------------------------------------------------


@pytest.mark.parametrize("src_ext", ["mov", "mp4"])
@pytest.mark.parametrize("out_ext", ["mov", "mp4", "mkv", "webm"])
def test_a_timecode_track_is_kept_in_every_container(tmp_path, src_ext, out_ext):
    src = _timecoded(tmp_path / f"tc.{src_ext}", damage(moving_frames(10), [4]))
    with av.open(str(src)) as c:
        assert [s.type for s in c.streams] == ["video", "data"]  # the input really has a timecode track
    out = tmp_path / f"o.{out_ext}"
    result = invoke("fix-drops", src, out, "--report", tmp_path / "r.json")
    assert result.exit_code == 0, result.stderr
    with av.open(str(out)) as c:
        video = c.streams.video[0]
        assert {k.lower(): v for k, v in video.metadata.items()}.get("timecode") == "01:00:00:00"
        kinds = [s.type for s in c.streams]
    if out_ext in ("mov", "mp4"):
        assert kinds == ["video", "data"]  # a timecode track again
    else:  # Matroska/WebM have none: the tag holds it, and the summary and the report say so
        assert kinds == ["video"] and "timecode track #1 (01:00:00:00) kept as the video's timecode tag" in \
            result.stderr
        assert "timecode" in json.loads((tmp_path / "r.json").read_text())["notes"][0]
    assert frame_count(out) == 10


def test_a_data_stream_is_copied_where_it_fits_and_otherwise_dropped_with_a_reason(tmp_path):
    src = tmp_path / "klv.ts"
    out = av.open(str(src), "w")
    v = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
    v.width, v.height, v.pix_fmt = 96, 64, "yuv420p"
    data = out.add_data_stream("klv")
    for i, f in enumerate(damage(moving_frames(10), [4])):
        frame = av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        out.mux(v.encode(frame))
        packet = av.Packet(b"\x06\x0e\x2b\x34" + bytes([i]) * 12)
        packet.stream, packet.pts, packet.dts = data, i * 3600, i * 3600
        out.mux(packet)
    out.mux(v.encode(None))
    out.close()
    # MPEG-TS holds KLV: copied, every packet
    result = invoke("fix-drops", src, tmp_path / "o.ts")
    assert result.exit_code == 0 and "not copied" not in result.stderr
    with av.open(str(tmp_path / "o.ts")) as c:
        assert len([p for p in c.demux(c.streams.data[0]) if p.size]) == 10
    # Matroska and MP4 do not: dropped, and the summary says which stream and why, decided before any frame
    info = probe(src)
    writer = VideoWriter(tmp_path / "w.mp4", info, time_base=info.time_base, rate=info.frame_rate)
    assert writer.notes and "data stream #1 (klv)" in writer.notes[0] and writer.frames_written == 0
    writer.abort()
    for ext in ("mkv", "mp4"):
        result = invoke("fix-drops", src, tmp_path / f"o.{ext}")
        assert result.exit_code == 0, result.stderr
        assert re.search(r"note: data stream #1 \(klv\) not copied: the .* container cannot hold it", result.stderr)
        assert frame_count(tmp_path / f"o.{ext}") == 10


# --- 2. unknown codecs ----------------------------------------------------------------------------------------


def _patched(src: Path, dst: Path, old: bytes, new: bytes) -> Path:
    data = src.read_bytes()
    assert old in data and len(old) == len(new)
    dst.write_bytes(data.replace(old, new))
    return dst


@pytest.fixture(scope="module")
def with_audio(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("audio")
    frames = damage(moving_frames(10), [4])
    return {"mp4": write_clip(d / "a.mp4", frames, codec="libx264", audio=True).path,
            "mkv": write_clip(d / "a.mkv", frames, audio=True).path}


@pytest.mark.parametrize("container, old, new", [
    ("mp4", b"avc1", b"zzzz"),  # an unknown four-character code (the ftyp brand too)
    ("mkv", b"V_FFV1", b"V_ZZZ1"),  # an unknown Matroska codec ID
])
@pytest.mark.parametrize("command", ["detect", "fix-drops", "upsample"])
def test_an_unknown_video_codec_is_an_input_error(with_audio, tmp_path, container, old, new, command):
    bad = _patched(with_audio[container], tmp_path / f"bad.{container}", old, new)
    args = [command, bad] + ([tmp_path / "o.mkv"] if command != "detect" else [])
    assert "video codec is unknown" in one_error_line(invoke(*args), EXIT_INPUT)
    only(tmp_path, bad.name)


# (an MP4 names AAC in its esds box too, so only Matroska can hide an audio codec this way)
@pytest.mark.parametrize("container, old, new", [("mkv", b"A_AAC", b"A_ZZZ")])
def test_an_unknown_codec_beside_the_video_is_analysed_but_never_silently_dropped(with_audio, tmp_path, container,
                                                                                  old, new):
    bad = _patched(with_audio[container], tmp_path / f"bad.{container}", old, new)
    assert invoke("detect", bad).exit_code == 0  # the video alone is what detect reads
    line = one_error_line(invoke("fix-drops", bad, tmp_path / "o.mkv"), EXIT_INPUT)
    assert "audio stream #1 has a codec this FFmpeg build does not know" in line
    only(tmp_path, bad.name)


# --- 3. bytes from the wild: tags and file names --------------------------------------------------------------


@pytest.mark.parametrize("container", ["mkv", "mp4"])
def test_undecodable_tags_are_kept_byte_for_byte(tmp_path, container):
    frames = damage(moving_frames(10), [4])
    clean = write_clip(tmp_path / f"clean.{container}", frames, codec="ffv1" if container == "mkv" else "libx264")
    latin = b"made by tests/conftest.p\xe9"  # Latin-1, not UTF-8; the same length as the tag it replaces
    src = _patched(clean.path, tmp_path / f"latin.{container}", b"made by tests/conftest.py", latin)
    assert probe(src).metadata  # readable: the undecodable byte is kept as a surrogate
    comment = next(v for k, v in probe(src).metadata.items() if k.lower() == "comment")
    assert comment.encode("utf-8", "surrogateescape") == latin
    result = invoke("detect", src, "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["frames"] == 10
    out = tmp_path / f"o.{container}"
    assert invoke("fix-drops", src, out).exit_code == 0
    assert latin in out.read_bytes()  # written back as the same bytes


def test_a_file_name_that_is_not_utf8_works_everywhere(tmp_path, small):
    name = os.fsdecode(b"caf\xe9 [bold] %s.mp4")  # Latin-1, Rich markup and a format directive
    src = tmp_path / name
    src.write_bytes(small.read_bytes())
    done = launch("detect", src, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout, stderr = done.communicate(timeout=120)
    assert done.returncode == 0 and stderr == b""
    assert stdout.startswith(os.fsencode(str(src)) + b": 12 frames")  # the name's own bytes, as ls prints them
    out = tmp_path / os.fsdecode(b"r\xe9sultat.mkv")
    done = launch("fix-drops", src, out, "--report", tmp_path / os.fsdecode(b"r\xe9.json"), stderr=subprocess.PIPE)
    assert done.wait(timeout=120) == 0, done.stderr.read()
    assert frame_count(out) == 12
    assert "[bold]" in done.stderr.read().decode("utf-8", "replace")  # printed, not taken as markup


# --- 4. crash safety ------------------------------------------------------------------------------------------


@pytest.fixture(params=["unnamed", "named"])
def temp_kind(request, monkeypatch) -> str:
    """Run a test with O_TMPFILE output and again with the fallback temporary name."""
    if request.param == "named":
        monkeypatch.setattr(_output, "_open_unnamed", lambda folder: None)
    else:
        fd = _output._open_unnamed(Path.cwd())
        if fd is None:
            pytest.skip("this file system has no O_TMPFILE")
        os.close(fd)
    return request.param


def test_while_writing_only_a_locked_temporary_exists(tmp_path, temp_kind):
    out = tmp_path / "o.mkv"
    with atomic_output(out) as staged:
        staged.path.write_bytes(b"half")
        names = [p.name for p in tmp_path.iterdir()]
        if temp_kind == "unnamed":
            assert names == []  # nothing a crash could leave behind
        else:
            assert len(names) == 1 and encode.TEMP_NAME.match(names[0]) and f"-{os.getpid()}-" in names[0]
            assert remove_stale_temporaries(tmp_path) == []  # ours: alive and locked
    only(tmp_path, "o.mkv")
    assert out.read_bytes() == b"half"


def test_a_later_run_removes_what_a_killed_run_left_and_nothing_else(tmp_path):
    # Child processes stage a named temporary each; one keeps running, one is killed (SIGKILL: no clean-up runs).
    code = ("import os, sys, signal; sys.path.insert(0, sys.argv[2]); import retime.media._output as e; "
            "e._open_unnamed = lambda folder: None; cm = e.atomic_output(sys.argv[1]); s = cm.__enter__(); "
            "s.path.write_bytes(b'half'); print(s.name, flush=True); os.kill(os.getpid(), signal.SIGKILL)")
    live = subprocess.Popen([sys.executable, "-c", code.replace("os.kill(os.getpid(), signal.SIGKILL)",
                                                                "sys.stdin.read()"),
                             str(tmp_path / "p.mkv"), str(ROOT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    live_name = Path(live.stdout.readline().strip())
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "o.mkv"), str(ROOT)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL
    left = Path(done.stdout.strip())
    assert left.exists() and encode.TEMP_NAME.match(left.name)
    # files that are not debris stay: a user's files with similar names, and the live writer's temporary
    keep = [tmp_path / ".o.retime-1234.part.mkv", tmp_path / "o.retime-99999999-0123abcd.part.mkv"]
    for path in keep:
        path.write_bytes(b"user data")
    try:
        assert remove_stale_temporaries(tmp_path) == [left]
        assert not left.exists() and live_name.exists() and all(p.exists() for p in keep)
    finally:
        live.communicate("", timeout=60)
    assert live.returncode == 0


def test_the_fallback_temporary_name_holds_the_pid():
    name = temp_path_for(Path("/x/film.mkv")).name
    match = encode.TEMP_NAME.match(name)
    assert match and int(match["pid"]) == os.getpid() and name.endswith(".part.mkv")


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """600 distinct frames (24 s at 25 fps), FFV1: long enough to be caught in the middle of its encode."""
    d = tmp_path_factory.mktemp("long")
    return write_clip(d / "long.mkv", moving_frames(600, speed=1)).path


def _wait_mid_encode(process: subprocess.Popen, folder: Path, timeout: float = 60) -> None:
    """Return once the process has an output file in ``folder`` open with a few frames in it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before it could be interrupted"
        for fd in Path(f"/proc/{process.pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
                size = os.stat(fd).st_size
            except OSError:
                continue
            if target.startswith(str(folder)) and size > 100_000:
                return
        time.sleep(0.01)
    raise AssertionError("the run never got to encoding")


@pytest.mark.parametrize("kind", ["unnamed", "named"])
def test_sigkill_mid_encode_leaves_nothing_that_outlives_the_next_run(long_clip, tmp_path, kind):
    flags = ("--named-temp",) if kind == "named" else ()
    out = tmp_path / "o.mkv"
    args = ("fix-drops", long_clip, out, "--codec", "ffv1", "--report", tmp_path / "r.json")
    run = launch(*args, flags=flags, stderr=subprocess.PIPE)
    _wait_mid_encode(run, tmp_path)
    run.kill()
    assert run.wait(timeout=60) == -signal.SIGKILL
    left = [p.name for p in tmp_path.iterdir()]
    assert "o.mkv" not in left and "r.json" not in left
    if kind == "unnamed":
        assert left == []  # the unnamed file died with the process
    else:
        assert len(left) == 1 and encode.TEMP_NAME.match(left[0])  # hidden, and removed by the next run
    rerun = launch(*args, flags=flags, stderr=subprocess.PIPE)
    assert rerun.wait(timeout=300) == 0, rerun.stderr.read()
    only(tmp_path, "o.mkv", "r.json")
    assert frame_count(out) == 600


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT])
def test_hangup_terminate_and_interrupt_exit_130_and_leave_nothing(long_clip, tmp_path, signum):
    run = launch("fix-drops", long_clip, tmp_path / "o.mkv", "--codec", "ffv1", flags=("--named-temp",),
                 stderr=subprocess.PIPE)
    _wait_mid_encode(run, tmp_path)
    run.send_signal(signum)
    assert run.wait(timeout=60) == EXIT_INTERRUPTED
    lines = run.stderr.read().decode().splitlines()
    assert len(lines) == 1 and "interrupted" in lines[0]
    only(tmp_path)


# --- 5. the report and the video together ---------------------------------------------------------------------


class Sabotage(BlendInterpolator):
    """A blend that does ``action`` on its first call: something that goes wrong while the video is written."""

    def __init__(self, action):
        super().__init__()
        self.action = action

    def interpolate(self, frame0, frame1, ts):
        if not self.calls:
            self.action()
        return super().interpolate(frame0, frame1, ts)


@pytest.mark.parametrize("command", ["fix-drops", "upsample"])
@pytest.mark.parametrize("sabotage", ["folder removed", "folder read-only", "path became a folder", "disk full"])
def test_a_report_that_cannot_be_written_takes_the_video_with_it(tmp_path, small, monkeypatch, command, sabotage):
    reports = tmp_path / "reports"
    reports.mkdir()
    report = reports / "r.json"
    out = tmp_path / "o.mkv"
    action = {"folder removed": reports.rmdir, "folder read-only": lambda: reports.chmod(0o500),
              "path became a folder": report.mkdir, "disk full": lambda: None}[sabotage]
    if sabotage == "folder read-only" and os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    if sabotage == "disk full":  # the report's temporary file is /dev/full
        real = encode.StagedOutput._named_temp
        monkeypatch.setattr(encode.StagedOutput, "_named_temp", lambda self, final, *doing: (
            (final, os.open("/dev/full", os.O_WRONLY)) if final == report else real(self, final, *doing)))
    monkeypatch.setattr(pipeline._model, "_default_interpolator", lambda device, model=None: lambda: Sabotage(action))
    line = one_error_line(invoke(command, small, out, "--report", report), EXIT_OUTPUT)
    assert "r.json" in line and ("disk full" in line) == (sabotage == "disk full")
    reports.chmod(0o700) if reports.exists() else None
    assert not out.exists()
    only(tmp_path, *(["reports"] if reports.exists() else []))


# --- 6. WebM and every container's default and hint -------------------------------------------------------------


@pytest.mark.parametrize("ext", ["mp4", "mkv", "mov", "webm"])
def test_every_container_has_a_working_default_codec(small, tmp_path, ext):
    out = tmp_path / f"o.{ext}"
    result = invoke("fix-drops", small, out)
    assert result.exit_code == 0, result.stderr
    assert frame_count(out) == 12
    if ext == "webm":
        assert "libvpx-vp9" in result.stderr or "av1" in result.stderr


def test_webm_keeps_ten_bits_where_an_encoder_can(clips, tmp_path):
    out = tmp_path / "t.webm"
    result = invoke("fix-drops", clips["tenbit"].path, out)
    assert result.exit_code == 0, result.stderr
    with av.open(str(out)) as c:
        pix_fmt = c.streams.video[0].codec_context.pix_fmt
    ten_bit_encoders = [e for e in encode.CONTAINER_DEFAULTS["webm"] if _codecs._has_encoder(e)
                        and _codecs._max_bits(e) >= 10]
    assert pix_fmt == ("yuv420p10le" if ten_bit_encoders else "yuv420p")


@pytest.mark.parametrize("ext", ["mp4", "mkv", "mov", "webm"])
@pytest.mark.parametrize("codec", ["h264", "h265", "ffv1", "vp9", "av1"])
def test_a_codec_the_container_refuses_gets_a_hint_that_works(small, tmp_path, ext, codec):
    out = tmp_path / f"o.{ext}"
    result = invoke("fix-drops", small, out, "--codec", codec, "--preset", "ultrafast")
    if result.exit_code == 0:
        assert codec in fitting_codecs(muxer_for(out)) and frame_count(out) == 12
        return
    line = one_error_line(result, EXIT_OUTPUT)
    assert codec not in fitting_codecs(muxer_for(out))
    hinted = re.search(r"use --codec (\w+)", line)
    assert hinted, line
    only(tmp_path)
    result = invoke("fix-drops", small, out, "--codec", hinted[1], "--preset", "ultrafast")
    assert result.exit_code == 0, result.stderr


# --- 7. a closed stdout ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_a_closed_stdout_pipe_ends_quietly_like_unix_filters(small, json_flag):
    read, write = os.pipe()
    os.close(read)  # the reader is gone before a byte is written (`| head -0`, or a head that already exited)
    run = launch("detect", small, *json_flag, stdout=write, stderr=subprocess.PIPE)
    os.close(write)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == EXIT_BROKEN_PIPE and stderr == b""


def test_detect_piped_into_head_shows_its_first_line(small):
    shell = subprocess.run(f"{sys.executable} {LAUNCHER} --blend -- detect {small} | head -1", shell=True,
                           capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert shell.stdout.startswith(f"{small}: 12 frames") and shell.stderr == ""


# --- 8. piped output: one record per line ---------------------------------------------------------------------


def test_piped_detect_output_has_one_record_per_line(tmp_path):
    # many cuts and duplicates, behind a path far longer than 80 columns
    shots = [moving_frames(6, seed=s) for s in range(8)]
    frames = [((f * (0.3 + 0.1 * (i % 2))) + 40 * (i % 3)).round().clip(0, 255).astype(np.uint8)
              for i, shot in enumerate(shots) for f in shot]
    deep = tmp_path / ("a-rather-long-folder-name-" * 4)
    deep.mkdir()
    src = write_clip(deep / "clip [bold].mkv", damage(frames, [2, 8, 14, 20, 26])).path
    result = invoke("detect", src)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    data = json.loads(invoke("detect", src, "--json").stdout)
    assert len(str(src)) > 100 and data["cuts"] and data["duplicates"]
    assert lines[0].startswith(f"{src}: 48 frames, 96x64, 25 fps")
    rows = [line for line in lines if re.fullmatch(r"\d+ +[\d.]+ +[\d.]+ +\d+-\d+ +[a-z-]+", line.strip())]
    assert len(rows) == len(data["duplicates"])
    assert lines[-1].startswith(f"{len(data['cuts'])} scene cut(s): before frame")
    assert lines[-1].count("before frame") == len(data["cuts"])
    assert len(lines) == 1 + 1 + len(rows) + 2  # header, column names, one row per duplicate, two summary lines


# --- 9. bad option values are usage errors --------------------------------------------------------------------


BAD_VALUES = [("--codec", "h246"), ("--codec", "vp99"), ("--preset", "fastest"), ("--crf", "52"), ("--crf", "x"),
              ("--threshold", "-1"), ("--max-run", "0"), ("--scene-cut", "nan"), ("--device", "tpu"),
              ("--scale", "0.3"), ("--precision", "half"), ("--factor", "1"), ("--fps", "0"), ("--fps", "sixty")]
ONLY = {"--factor": {"upsample"}, "--fps": {"upsample"}, "--codec": {"fix-drops", "upsample"},
        "--preset": {"fix-drops", "upsample"}, "--crf": {"fix-drops", "upsample"}, "--scale": {"fix-drops", "upsample"},
        "--precision": {"fix-drops", "upsample"}}


@pytest.mark.parametrize("command, option, value", [
    (command, option, value) for command in ("fix-drops", "upsample", "detect") for option, value in BAD_VALUES
    if command in ONLY.get(option, {command})])
def test_every_bad_option_value_is_a_usage_error_before_any_work(small, tmp_path, command, option, value):
    args = [command, small] + ([tmp_path / "o.mp4"] if command != "detect" else []) + [option, value]
    assert cli_main(args) == EXIT_USAGE
    only(tmp_path)


def cli_main(args) -> int:
    """The console script's own exit code (Click's usage errors are mapped in ``main``, not in the app)."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main([str(a) for a in args])
    return exit_info.value.code


# --- 10. a full disk ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["fix-drops", "upsample"])
@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_a_full_disk_says_so_and_names_out(small, tmp_path, monkeypatch, command, ext):
    # every write of the video fails with ENOSPC, as on a disk with no space left at all
    monkeypatch.setattr(_output, "_open_unnamed", lambda folder: os.open("/dev/full", os.O_WRONLY))
    out = tmp_path / f"o.{ext}"
    line = one_error_line(invoke(command, small, out), EXIT_OUTPUT)
    assert line.startswith(f"retime: error: {out}: disk full")
    assert ".part" not in line and "/proc/" not in line and "libx264" not in line
    only(tmp_path)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs (root only; where it cannot be mounted the ENOSPC tests above still run)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root)")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.parametrize("fill", ["full", "fills up"])
def test_a_real_full_disk(long_clip, tiny_disk, fill):
    if fill == "full":  # no space left at all before the run
        fd = os.open(tiny_disk / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            with pytest.raises(OSError, match="No space left"):
                while True:
                    os.write(fd, bytes(4096))
        finally:
            os.close(fd)
    out = tiny_disk / "o.mkv"
    line = one_error_line(invoke("fix-drops", long_clip, out, "--codec", "ffv1"), EXIT_OUTPUT)
    assert line.startswith(f"retime: error: {out}: disk full")
    only(tiny_disk, *(["filler"] if fill == "full" else []))
    line = one_error_line(invoke("detect", long_clip, "--report", tiny_disk / "r.json"), EXIT_OUTPUT) \
        if fill == "full" else None
    assert line is None or "disk full" in line


# --- also: upsample says what it does with duplicates ---------------------------------------------------------


def test_upsample_says_it_keeps_duplicates(small, tmp_path):
    result = invoke("upsample", small, tmp_path / "u.mkv")
    assert result.exit_code == 0
    assert "1 duplicate frame(s): 5" in result.stderr and "not repaired" in result.stderr
    assert "retime fix-drops" in result.stderr
    clean = write_clip(tmp_path / "clean.mkv", true_frames(12, cut=None)).path
    result = invoke("upsample", clean, tmp_path / "v.mkv")
    assert result.exit_code == 0 and "not repaired" not in result.stderr


# --- pipes: "-" as IN and OUT --------------------------------------------------------------------------------------

def _y4m(path: Path, frames: int = 12) -> bytes:
    """A y4m stream of a real clip's first frames, as `ffmpeg -f yuv4mpegpipe -` writes one."""
    with av.open(str(ROOT / "assets" / "clips" / "bikes.mp4")) as src, av.open(str(path), "w",
                                                                                format="yuv4mpegpipe") as out:
        stream = out.add_stream("rawvideo", rate=25)
        stream.width, stream.height, stream.pix_fmt = 640, 272, "yuv420p"
        for i, frame in zip(range(frames), src.decode(video=0)):
            copy = av.VideoFrame.from_ndarray(frame.to_ndarray(), format="yuv420p")
            copy.pts = i
            out.mux(stream.encode(copy))
        out.mux(stream.encode())
    return path.read_bytes()


def test_upsample_reads_stdin_and_writes_stdout(tmp_path):
    stream = _y4m(tmp_path / "in.y4m")
    run = launch("upsample", "--factor", "2", "-", "-", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE, cwd=tmp_path)
    out, err = run.communicate(stream, timeout=120)
    assert run.returncode == 0, err.decode()
    (tmp_path / "out.nut").write_bytes(out)
    with av.open(str(tmp_path / "out.nut")) as c:
        assert c.format.name == "nut" and c.streams.video[0].codec_context.name == "ffv1"  # lossless by default
        assert c.streams.video[0].average_rate == 50
        frames = [f.to_ndarray() for f in c.decode(video=0)]
    with av.open(str(tmp_path / "in.y4m")) as c:
        source = [f.to_ndarray() for f in c.decode(video=0)]
    assert len(frames) == 2 * len(source)
    assert all(np.array_equal(frames[2 * i], source[i]) for i in range(len(source)))  # source frames bit-exact
    assert b"- -> -" in err  # the summary names the pipes, not the spool files
    only(tmp_path, "in.y4m", "out.nut")


def test_fix_drops_from_stdin_to_a_file_and_to_a_closed_pipe(tmp_path):
    stream = _y4m(tmp_path / "in.y4m")
    run = launch("fix-drops", "-", tmp_path / "o.mkv", "--codec", "ffv1", stdin=subprocess.PIPE,
                 stderr=subprocess.PIPE)
    _, err = run.communicate(stream, timeout=120)
    assert run.returncode == 0, err.decode()
    assert frame_count(tmp_path / "o.mkv") == 12
    # a reader that goes away: exit 141 (as Unix filters), one silent end, no traceback
    run = launch("fix-drops", "-", "-", stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    run.stdout.close()
    _, err = run.communicate(stream, timeout=120)
    assert run.returncode == EXIT_BROKEN_PIPE and b"Traceback" not in err


def test_empty_stdin_and_terminals_are_one_line_errors(tmp_path):
    run = launch("upsample", "-", tmp_path / "o.mkv", stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = run.communicate(b"", timeout=60)
    assert run.returncode == EXIT_INPUT and err.decode().strip().count("\n") == 0 and "stdin" in err.decode()
    only(tmp_path)


# --- 9. session 15's adversarial pass: stdout closed or full, stream names, folders, reports, named pipes --------


@pytest.mark.parametrize("args,code,message", [
    (["detect", "{small}"], EXIT_OUTPUT, "cannot write to stdout: it is closed"),
    (["fix-drops", "{small}", "-"], EXIT_OUTPUT, "OUT is -, but stdout is closed"),
    (["fix-drops", "{small}", "{tmp}/o.mkv", "--codec", "ffv1"], 0, None),  # the summary is on stderr
])
def test_a_stdout_closed_from_the_start_fails_only_a_command_that_writes_to_it(small, tmp_path, args, code, message):
    argv = [a.format(small=small, tmp=tmp_path) for a in args]
    run = launch(*argv, stderr=subprocess.PIPE, preexec_fn=lambda: (_default_sigint(), os.close(1)))
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == code, stderr
    lines = stderr.decode().splitlines()
    if message is None:
        assert (tmp_path / "o.mkv").exists() and not any("error" in line for line in lines)
    else:
        assert lines == [f"retime: error: {message}"] and not (tmp_path / "o.mkv").exists()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_a_full_stdout_is_an_output_error(small, json_flag):
    with open("/dev/full", "wb") as full:
        run = launch("detect", small, *json_flag, stdout=full, stderr=subprocess.PIPE)
        _, stderr = run.communicate(timeout=120)
    assert run.returncode == EXIT_OUTPUT
    assert stderr.decode().splitlines() == ["retime: error: disk full: stdout: No space left on device"]


def test_errors_of_a_piped_run_name_stdin_and_stdout_not_the_spools(tmp_path, clips):
    text = tmp_path / "text.mp4"
    text.write_text("not a video\n")
    with open(text, "rb") as stdin:
        run = launch("fix-drops", "-", tmp_path / "o.mkv", stdin=stdin, stderr=subprocess.PIPE)
        _, stderr = run.communicate(timeout=120)
    assert run.returncode == EXIT_INPUT and stderr.decode().startswith("retime: error: stdin: ")
    # a subtitle stream NUT (stdout's container) cannot hold: the advice is a file, not another extension
    subs = clips["subtitled"].path
    with open(tmp_path / "p.nut", "wb") as stdout:
        run = launch("fix-drops", subs, "-", stdout=stdout, stderr=subprocess.PIPE)
        _, stderr = run.communicate(timeout=120)
    line = stderr.decode().strip()
    assert run.returncode == EXIT_OUTPUT and line.startswith("retime: error: stdout: the NUT container")
    assert "write OUT to a file such as out.mkv instead of -" in line and "retime-pipe-" not in line


def test_a_named_pipe_as_in_is_read_once_and_spooled(small, tmp_path):
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    run = launch("fix-drops", fifo, tmp_path / "o.mkv", "--codec", "ffv1", stderr=subprocess.PIPE)
    with open(fifo, "wb") as writer:  # blocks until retime opens it: one read, as a pipe allows
        writer.write(small.read_bytes())
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 0, stderr
    assert frame_count(tmp_path / "o.mkv") == 12


def test_folder_runs_refuse_stdout_and_an_uncreatable_out(tmp_path, small):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.mp4").write_bytes(small.read_bytes())
    line = one_error_line(invoke("fix-drops", folder, "-"), EXIT_USAGE)
    assert "OUT must be a folder too, not -" in line
    blocker = tmp_path / "file"
    blocker.write_text("x")
    line = one_error_line(invoke("fix-drops", folder, blocker / "sub"), EXIT_OUTPUT)
    assert "cannot create the output folder" in line


def test_a_report_never_replaces_a_file_that_is_not_a_report(small, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    out = tmp_path / "o.mkv"
    line = one_error_line(invoke("fix-drops", small, out, "--codec", "ffv1", "--report", notes), EXIT_OUTPUT)
    assert "not a retime report" in line and "-y" in line
    assert notes.read_text() == "my notes\n" and not out.exists()
    line = one_error_line(invoke("detect", small, "--report", notes), EXIT_OUTPUT)
    assert "not a retime report" in line and "-y" not in line  # detect has no -y
    report = tmp_path / "r.json"
    assert invoke("detect", small, "--report", report).exit_code == 0
    assert invoke("detect", small, "--report", report).exit_code == 0  # its own earlier report: replaced
    assert invoke("fix-drops", small, out, "--codec", "ffv1", "--report", notes, "-y").exit_code == 0
    assert json.loads(notes.read_text())["retime"]


def test_detection_options_out_of_range_are_named_as_options(small):
    assert "--threshold must be" in one_error_line(invoke("detect", small, "--threshold", "100"), EXIT_USAGE)
    assert "--scene-cut must be" in one_error_line(invoke("detect", small, "--scene-cut", "5"), EXIT_USAGE)
