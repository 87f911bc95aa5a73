"""``--executor ray`` on a real Ray cluster started inside the test run (a head and one worker node on 127.0.0.1,
one CPU each): a folder and a chunked video give the same files as the local executor. The cluster is stopped
in a finalizer, also when the test fails."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import av
import pytest

from tests.conftest import DUPLICATES, damage, moving_frames, packets, true_frames, write_clip

ROOT = Path(__file__).resolve().parents[1]
RETIME = [sys.executable, "-m", "retime"]
COMMON = ["--codec", "ffv1", "--quality", "fast", "--device", "cpu", "--quiet"]


def _frames(path: Path) -> list[tuple[int, str]]:
    with av.open(str(path)) as container:
        return [(f.pts, hashlib.md5(b"".join(bytes(p) for p in f.planes)).hexdigest())
                for f in container.decode(video=0)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster(request) -> str:
    """``host:port`` of a two-node local Ray cluster whose workers import this checkout."""
    ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    assert ray is not None, "the ray CLI is missing: pip install -e '.[test]' installs retime[ray]"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "RAY_USAGE_STATS_ENABLED": "0"}
    request.addfinalizer(lambda: subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=120))
    port = _free_port()
    address = f"127.0.0.1:{port}"
    for args in (["--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "1",
                  "--include-dashboard", "false"], ["--address", address, "--num-cpus", "1"]):
        started = subprocess.run([ray, "start", *args, "--disable-usage-stats"], env=env, capture_output=True,
                                 text=True, timeout=180)
        assert started.returncode == 0, started.stdout + started.stderr
    return address


@pytest.mark.slow
def test_a_folder_and_a_chunked_video_on_ray_equal_the_local_executor(ray_cluster, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        write_clip(src / f"c{i}.mkv", damage(moving_frames(10, seed=i), [4]))
    on_ray = ["--executor", "ray", "--ray-address", ray_cluster]
    for run in ([str(src), str(tmp_path / "ray"), *on_ray], [str(src), str(tmp_path / "local"), "--jobs", "2"]):
        done = subprocess.run([*RETIME, "fix-drops", *run, *COMMON], cwd=ROOT, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
    for i in range(3):
        assert _frames(tmp_path / "ray" / f"c{i}.mkv") == _frames(tmp_path / "local" / f"c{i}.mkv")

    video = write_clip(tmp_path / "long.mkv", damage(true_frames(), DUPLICATES), audio=True).path
    chunked = subprocess.run([*RETIME, "fix-drops", str(video), str(tmp_path / "ray.mkv"), "--chunk-seconds", "0.4",
                              *on_ray, *COMMON, "--report", str(tmp_path / "ray.json")], cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
    assert chunked.returncode == 0, chunked.stderr
    local = subprocess.run([*RETIME, "fix-drops", str(video), str(tmp_path / "local.mkv"), "--chunk-seconds", "0.4",
                            "--jobs", "2", *COMMON], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert local.returncode == 0, local.stderr
    assert _frames(tmp_path / "ray.mkv") == _frames(tmp_path / "local.mkv")
    assert packets(tmp_path / "ray.mkv", "audio") == packets(video, "audio")
    assert '"count": 4' in (tmp_path / "ray.json").read_text()
