"""The retime command line: exit codes, one-line errors, quiet and JSON output, reports, the progress bar.

Most tests go through Typer's CliRunner with the model replaced by a blending interpolator; a few run the installed
console script in a subprocess to check the real entry point.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import av
import pytest
from rich.console import Console
from typer.testing import CliRunner

import retime.cli as cli
import retime.pipeline as pipeline
from conftest import DUPLICATES, N_FRAMES, BlendInterpolator, video_facts
from retime import __version__
from retime.errors import EXIT_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OUTPUT, EXIT_USAGE

runner = CliRunner()


@pytest.fixture(autouse=True)
def no_model(monkeypatch):
    """Every run here synthesizes with a blend instead of loading the model."""
    monkeypatch.setattr(pipeline._model, "_default_interpolator", lambda device, model=None: BlendInterpolator)


def invoke(*args: str):
    return runner.invoke(cli.app, [str(a) for a in args])


def _one_error_line(result, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("retime: error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


def test_version_and_help():
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"retime {__version__}"
    result = invoke("--help")
    assert result.exit_code == 0
    assert "Exit codes" in result.stdout and "130" in result.stdout
    for command in ("fix-drops", "upsample", "detect"):
        result = invoke(command, "--help")
        assert result.exit_code == 0 and "Exit codes" in result.stdout and "--debug" in result.stdout


def test_fix_drops_prints_a_summary_and_writes_a_report(clips, tmp_path):
    out, report = tmp_path / "o.mkv", tmp_path / "r.json"
    result = invoke("fix-drops", clips["lossless"].path, out, "--codec", "ffv1", "--report", report)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""  # the summary goes to stderr
    assert "6 synthesized" in result.stderr and "12 duplicate frame(s): 5 (0.200 s)" in result.stderr
    data = json.loads(report.read_text())
    assert data["command"] == "fix-drops" and data["frames_out"] == N_FRAMES and data["synthesized"] == 6
    assert [d["frame"] for d in data["analysis"]["duplicates"]] == DUPLICATES
    assert video_facts(out)["n"] == N_FRAMES


def test_quiet_prints_nothing(clips, tmp_path):
    result = invoke("fix-drops", clips["lossless"].path, tmp_path / "o.mkv", "--quiet", "--codec", "ffv1")
    assert result.exit_code == 0 and result.stdout == "" and result.stderr == ""
    result = invoke("upsample", clips["clean"].path, tmp_path / "u.mkv", "-q", "--fps", "60000/1001")
    assert result.exit_code == 0 and result.stdout == "" and result.stderr == ""
    assert video_facts(tmp_path / "u.mkv")["rate"] == pytest.approx(60000 / 1001)


def test_upsample_factor(clips, tmp_path):
    result = invoke("upsample", clips["clean"].path, tmp_path / "u.mkv", "--factor", "3", "--codec", "ffv1")
    assert result.exit_code == 0, result.stderr
    assert video_facts(tmp_path / "u.mkv")["n"] == 3 * 24


def test_detect_json_schema(clips):
    result = invoke("detect", clips["lossless"].path, "--json")
    assert result.exit_code == 0 and result.stderr == ""
    data = json.loads(result.stdout)
    assert {"retime", "input", "frames", "duration", "duplicates", "runs", "freezes", "cuts", "settings", "scores",
            "plan"} <= set(data)
    assert data["frames"] == N_FRAMES and len(data["scores"]) == N_FRAMES - 1
    assert [d["frame"] for d in data["duplicates"]] == DUPLICATES
    assert set(data["duplicates"][0]) == {"frame", "time", "score", "reason", "action"}
    assert all("score" in d["reason"] for d in data["duplicates"])  # which rule flagged each one
    assert data["cuts"][0]["frame"] == 30 and data["freezes"][0] == {"frame": 34, "length": 5, "time": 1.36}
    assert {r["action"] for r in data["runs"]} == {"interpolate", "keep-cut", "keep-freeze"}
    assert data["plan"]["synthesized"] == 6 and data["settings"]["max_run"] == 3
    assert data["input"]["width"] == 96 and data["input"]["frame_rate"] == "25"


def test_detect_table_and_options(clips, tmp_path):
    result = invoke("detect", clips["lossless"].path)
    assert result.exit_code == 0
    assert "12 duplicate frame(s) in 5 run(s)" in result.stdout and "keep-freeze" in result.stdout
    # a larger --max-run repairs the freeze too; the report file gets the same JSON
    report = tmp_path / "d.json"
    result = invoke("detect", clips["lossless"].path, "--max-run", "5", "--json", "--report", report)
    assert json.loads(result.stdout)["plan"]["synthesized"] == 11
    assert json.loads(report.read_text()) == json.loads(result.stdout)


@pytest.mark.parametrize("name, code, words", [
    ("missing", EXIT_INPUT, "no such file"),
    ("folder", EXIT_INPUT, "directory"),
    ("not_video", EXIT_INPUT, "not a video"),
    ("audio_only", EXIT_INPUT, "no video stream"),
    ("truncated", EXIT_INPUT, "truncated"),
    ("truncated_mkv", EXIT_INPUT, "truncated"),
    ("one_frame", EXIT_INPUT, "at least 2"),
])
@pytest.mark.parametrize("command", ["fix-drops", "detect"])
def test_bad_input_is_one_line_and_an_exit_code(clips, tmp_path, name, code, words, command):
    path = {"missing": tmp_path / "nope.mp4", "folder": tmp_path}.get(name) or clips[name].path
    out = tmp_path / "out.mp4"
    args = [command, path] + ([out] if command == "fix-drops" else [])
    if name == "folder" and command == "fix-drops":  # a folder is a batch, whose OUT must be a folder too
        code, words = EXIT_USAGE, "OUT must be a folder"
    line = _one_error_line(invoke(*args), code)
    assert words in line
    assert not out.exists() and not [p for p in tmp_path.iterdir() if ".part" in p.name]


def test_output_errors(clips, tmp_path):
    src = clips["lossless"].path
    line = _one_error_line(invoke("fix-drops", src, src, "-y"), EXIT_OUTPUT)
    assert "is the input" in line
    existing = tmp_path / "e.mkv"
    existing.write_text("x")
    assert "--overwrite" in _one_error_line(invoke("fix-drops", src, existing), EXIT_OUTPUT)
    assert invoke("fix-drops", src, existing, "-y", "-q", "--codec", "ffv1").exit_code == 0
    assert "codec" in _one_error_line(invoke("fix-drops", src, tmp_path / "o.mkv", "--codec", "theora9"),
                                      EXIT_USAGE)
    assert "subtitle" in _one_error_line(invoke("fix-drops", clips["subtitled"].path, tmp_path / "s.mp4"),
                                         EXIT_OUTPUT)
    assert "odd size" in _one_error_line(invoke("fix-drops", clips["odd"].path, tmp_path / "odd.mp4"), EXIT_OUTPUT)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.mkv"]
    # the same odd-sized video is fine losslessly
    assert invoke("fix-drops", clips["odd"].path, tmp_path / "odd.mkv", "--codec", "ffv1", "-q").exit_code == 0
    with av.open(str(tmp_path / "odd.mkv")) as c:
        assert [(f.width, f.height) for f in c.decode(video=0)] == [(97, 65)] * 6


def test_usage_errors(clips, tmp_path):
    src = clips["clean"].path
    assert "factor" in _one_error_line(invoke("upsample", src, tmp_path / "u.mkv", "--factor", "1"), EXIT_USAGE)
    assert "either" in _one_error_line(invoke("upsample", src, tmp_path / "u.mkv", "--factor", "2", "--fps", "50"),
                                       EXIT_USAGE)
    assert "max_run" in _one_error_line(invoke("detect", src, "--max-run", "0"), EXIT_USAGE)
    assert "crf" in _one_error_line(invoke("fix-drops", src, tmp_path / "u.mkv", "--crf", "99"), EXIT_USAGE)
    assert invoke("fix-drops", src, tmp_path / "u.mkv", "--device", "tpu").exit_code == EXIT_USAGE
    assert list(tmp_path.iterdir()) == []


def test_an_explicit_cuda_device_that_is_absent_fails_before_any_work(clips, tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("CUDA is present here")
    line = _one_error_line(invoke("fix-drops", clips["clean"].path, tmp_path / "o.mkv", "--device", "cuda"),
                           EXIT_USAGE)
    assert "cuda" in line.lower()
    assert list(tmp_path.iterdir()) == []


def test_unexpected_errors_and_interrupts(clips, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(pipeline, "analyse", boom)  # what `retime detect` calls
    line = _one_error_line(invoke("detect", clips["clean"].path), EXIT_INTERNAL)
    assert "ZeroDivisionError" in line
    result = invoke("detect", clips["clean"].path, "--debug")
    assert result.exit_code == EXIT_INTERNAL and "Traceback" in result.stderr

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "analyse", interrupted)
    assert "interrupted" in _one_error_line(invoke("detect", clips["clean"].path), EXIT_INTERRUPTED)


def test_an_interpolator_failure_leaves_no_output(clips, tmp_path, monkeypatch):
    from conftest import FailingInterpolator

    monkeypatch.setattr(pipeline._model, "_default_interpolator",
                        lambda device, model=None: lambda: FailingInterpolator(after=1))
    out = tmp_path / "o.mp4"
    assert "injected failure" in _one_error_line(invoke("fix-drops", clips["lossy"].path, out), EXIT_INTERNAL)
    assert list(tmp_path.iterdir()) == []


def test_progress_bar_only_on_a_terminal(clips, tmp_path, monkeypatch):
    screen = io.StringIO()
    monkeypatch.setattr(cli._exit, "err", Console(file=screen, force_terminal=True, width=120))
    result = invoke("fix-drops", clips["lossless"].path, tmp_path / "o.mkv", "--codec", "ffv1")
    assert result.exit_code == 0
    assert "frames" in screen.getvalue() and "writing" in screen.getvalue()
    screen = io.StringIO()
    monkeypatch.setattr(cli._exit, "err", Console(file=screen, force_terminal=False))
    invoke("fix-drops", clips["lossless"].path, tmp_path / "p.mkv", "--codec", "ffv1")
    assert "writing" not in screen.getvalue()


# --- the real entry point ---------------------------------------------------------------------------------------


def _script(*args) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("retime")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "retime"]
    return subprocess.run(command + [str(a) for a in args], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, COLUMNS="200"))


def test_console_script(clips, tmp_path):
    done = _script("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"retime {__version__}"
    done = _script("detect", clips["not_video"].path)
    assert done.returncode == EXIT_INPUT and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("retime: error: ")
    done = _script("detect", clips["lossless"].path, "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["frames"] == N_FRAMES and done.stderr == ""
    done = subprocess.run([sys.executable, "-m", "retime", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Exit codes" in done.stdout


# --- real clips (slow) ------------------------------------------------------------------------------------------

CLIPS = Path(__file__).resolve().parents[1] / "assets" / "clips"


@pytest.mark.slow
@pytest.mark.skipif(not (CLIPS / "bigbuckbunny.mp4").exists(), reason="assets not fetched")
def test_bigbuckbunny_real_duplicates():
    result = invoke("detect", CLIPS / "bigbuckbunny.mp4", "--json")
    assert result.exit_code == 0
    found = [d["frame"] for d in json.loads(result.stdout)["duplicates"]]
    assert found == [7, 32, 57, 82, 107]  # the clip's real duplicates (25 fps from 24 fps film), nothing else


def test_model_options_reach_the_interpolator(clips, tmp_path, monkeypatch):
    """--weights, --scale, --refine and --precision are passed to the interpolator the pipeline builds."""
    seen = []
    monkeypatch.setattr(pipeline._model, "_default_interpolator",
                        lambda device, model=None: seen.append((device, model)) or BlendInterpolator)
    weights = tmp_path / "w.pkl"
    result = invoke("fix-drops", clips["lossless"].path, tmp_path / "o.mkv", "--codec", "ffv1", "--device", "cpu",
                    "--weights", weights, "--scale", "0.5", "--refine", "--precision", "float32")
    assert result.exit_code == 0, result.stderr
    device, model = seen[0]
    assert device == "cpu" and model.weights == weights and model.scale == 0.5 and model.refine is True
    assert model.precision == "float32"
    assert invoke("upsample", clips["lossless"].path, tmp_path / "u.mkv", "--precision", "half").exit_code == 2
    seen.clear()
    result = invoke("upsample", clips["lossless"].path, tmp_path / "q.mkv", "--codec", "ffv1", "--quality", "best",
                    "--model", "rife-4.2x", "--no-ensemble", "--scale", "auto")
    assert result.exit_code == 0, result.stderr
    _, model = seen[0]
    assert (model.quality, model.model, model.ensemble, model.scale) == ("best", "rife-4.2x", False, None)
    seen.clear()
    assert invoke("upsample", clips["lossless"].path, tmp_path / "d.mkv", "--codec", "ffv1").exit_code == 0
    _, model = seen[0]
    assert (model.quality, model.model, model.ensemble, model.scale) == ("balanced", None, None, None)


@pytest.mark.parametrize("command", ["fix-drops", "upsample"])
@pytest.mark.parametrize("bad", ["missing/r.json", "IN", "OUT", "."])
def test_a_bad_report_path_fails_before_any_video_is_written(clips, tmp_path, command, bad):
    # review: `fix-drops --report nodir/r.json IN OUT` used to encode OUT, then exit 4 with OUT left in place
    src, out = clips["lossless"].path, tmp_path / "o.mkv"
    report = {"IN": src, "OUT": out, ".": tmp_path}.get(bad, tmp_path / bad)
    before = Path(src).read_bytes()
    _one_error_line(invoke(command, src, out, "--codec", "ffv1", "--report", report), EXIT_OUTPUT)
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name != "."] == []
    assert Path(src).read_bytes() == before


@pytest.mark.parametrize("argv,message", [
    (["upsample", "--factor", "x", "a.mp4", "b.mp4"], "--factor"),
    (["fix-drops"], "Missing argument 'IN'"),
    (["--bogus"], "No such option: --bogus"),
    (["fix-drops", "--device", "tpu", "a.mp4", "b.mp4"], "--device"),
    (["upsample", "--quality", "max", "a.mp4", "b.mp4"], "--quality"),
    (["fix-drops", "--model", "rife-9", "a.mp4", "b.mp4"], "--model"),
])
def test_click_usage_errors_are_one_line_with_exit_2(argv, message, capsys):
    """The console script reports Click's own usage errors like every other error (not Click's 4-line block)."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == EXIT_USAGE
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("retime: error: ") and message in lines[0]


def test_bad_preset_scale_and_huge_factor_are_usage_errors_before_any_work(clips, tmp_path):
    out = tmp_path / "o.mp4"
    assert "--preset" in _one_error_line(invoke("fix-drops", "--preset", "foo", clips["lossy"].path, out), EXIT_USAGE)
    assert "1000 fps" in _one_error_line(invoke("upsample", "--factor", "100000", clips["lossy"].path, out),
                                         EXIT_USAGE)
    # RIFE's scale knob off a power of two used to fail inside the network (exit 1) after pass 1
    for command in ("fix-drops", "upsample"):
        assert "--scale" in _one_error_line(invoke(command, "--scale", "0.75", clips["lossy"].path, out), EXIT_USAGE)
        assert "--scale" in _one_error_line(invoke(command, "--scale", "fine", clips["lossy"].path, out), EXIT_USAGE)
    assert not out.exists()
