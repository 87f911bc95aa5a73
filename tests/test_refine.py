"""The refinement stage (retime.refine): patch gathering, attention, identity at initialisation, loss, training
steps, checkpoints and data augmentation. Fast, CPU, no assets needed (the IFNet is random-initialised where used)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from retime.interpolate.ifnet import IFNet
from retime.refine import refine, second_flows
from retime_train.data import augment, load_triplet, mine_triplets
from retime.refine.model import Refiner, gather_patches
from retime_train.train import (TrainConfig, charbonnier, export_weights, load_checkpoint, save_checkpoint)
from retime.refine.weights import load_refiner


@pytest.fixture(autouse=True)
def _one_thread():
    """These tensors are tiny: one thread is faster, and on a busy 2-core machine a second one mostly waits."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _inputs(batch=2, height=24, width=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    frame, img0, img1 = (torch.rand(batch, 3, height, width, generator=g) for _ in range(3))
    flow0, flow1 = (torch.randn(batch, 2, height, width, generator=g) * 3 for _ in range(2))
    mask = torch.rand(batch, 1, height, width, generator=g)
    return frame, img0, img1, flow0, flow1, mask


def _ramp(height=5, width=6):
    """(1, 1, H, W) image whose value is 1 + its flat index, so a gathered value names its pixel (0 = padding)."""
    return (torch.arange(height * width, dtype=torch.float32) + 1).view(1, 1, height, width)


def _value(y, x, height=5, width=6):
    return 0.0 if not (0 <= y < height and 0 <= x < width) else float(y * width + x + 1)


# -- patch gathering ------------------------------------------------------------------------------------------------
def test_gather_3x3_is_centred_on_the_nearest_pixel():
    image, flow = _ramp(), torch.zeros(1, 2, 5, 6)
    flow[0, 0, 2, 3], flow[0, 1, 2, 3] = 0.4, -0.6  # pixel (y=2, x=3) → target (x=3.4, y=1.4): nearest (x=3, y=1)
    values, offsets = gather_patches(image, flow, 3)
    assert values.shape == (1, 1, 9, 5, 6) and offsets.shape == (1, 9, 2, 5, 6)
    expected = [_value(y, x) for y in (0, 1, 2) for x in (2, 3, 4)]
    assert values[0, 0, :, 2, 3].tolist() == expected
    # Offsets are the patch pixel's position minus the exact target (sub-pixel).
    assert torch.allclose(offsets[0, 4, :, 2, 3], torch.tensor([3 - 3.4, 1 - 1.4]))
    assert torch.allclose(offsets[0, 0, :, 2, 3], torch.tensor([2 - 3.4, 0 - 1.4]))


def test_gather_2x2_surrounds_the_target():
    image, flow = _ramp(), torch.zeros(1, 2, 5, 6)
    flow[0, 0, 1, 1], flow[0, 1, 1, 1] = 1.7, 0.2  # pixel (1, 1) → target (x=2.7, y=1.2): pixels x 2-3, y 1-2
    values, offsets = gather_patches(image, flow, 2)
    assert values.shape == (1, 1, 4, 5, 6)
    assert values[0, 0, :, 1, 1].tolist() == [_value(1, 2), _value(1, 3), _value(2, 2), _value(2, 3)]
    assert torch.allclose(offsets[0, :, :, 1, 1], torch.tensor([[-0.7, -0.2], [0.3, -0.2], [-0.7, 0.8], [0.3, 0.8]]))


def test_gather_zero_pads_outside_the_image():
    image, flow = _ramp(), torch.zeros(1, 2, 5, 6)
    flow[0, 0, 0, 0], flow[0, 1, 0, 0] = -0.2, 0.1  # pixel (0, 0): nearest is (0, 0); its left/top neighbours are out
    flow[0, 0, 4, 5] = 10.0  # target far outside on the right: the whole patch is padding
    values, _ = gather_patches(image, flow, 3)
    assert values[0, 0, :, 0, 0].tolist() == [0, 0, 0, 0, _value(0, 0), _value(0, 1), 0, _value(1, 0), _value(1, 1)]
    assert values[0, 0, :, 4, 5].abs().sum() == 0


def test_gather_with_zero_flow_matches_unfold():
    image = torch.rand(2, 3, 7, 9)
    values, _ = gather_patches(image, torch.zeros(2, 2, 7, 9), 3)
    unfolded = torch.nn.functional.unfold(image, 3, padding=1).view(2, 3, 9, 7, 9)
    assert torch.equal(values, unfolded)


def test_gather_checks_shapes():
    with pytest.raises(ValueError, match=r"image \(1, 3, 4, 4\) and flow \(1, 2, 4, 5\)"):
        gather_patches(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 4, 5), 3)


# -- the network ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("patch", [2, 3])
def test_shapes_dtypes_and_attention_sums_to_one(patch):
    model = Refiner(patch=patch)
    out = model(*_inputs())
    assert out.frame.shape == out.updated0.shape == out.updated1.shape == (2, 3, 24, 32)
    assert out.frame.dtype == torch.float32
    assert out.attention0.shape == (2, model.config.heads, patch * patch, 24, 32)
    assert torch.allclose(out.attention0.sum(2), torch.ones(()), atol=1e-5)
    assert torch.allclose(out.attention1.sum(2), torch.ones(()), atol=1e-5)
    assert (out.attention0 >= 0).all()


def test_untrained_stage_is_the_identity():
    frame, *rest = _inputs()
    assert torch.equal(Refiner()(frame, *rest).frame, frame)


def test_refiner_checks_shapes():
    frame, img0, img1, flow0, flow1, mask = _inputs()
    with pytest.raises(ValueError, match="flow0"):
        Refiner()(frame, img0, img1, flow0[:, :1], flow1, mask)


def test_small_and_under_5_mb():
    assert sum(p.numel() for p in Refiner().parameters()) * 4 < 5_000_000


def test_second_flows_and_refine_with_a_first_stage():
    """Both second-flow modes give (B, 2, H, W) flows (residual pads to IFNet's stride and crops back); the
    untrained stage returns the first stage's frame."""
    torch.manual_seed(0)
    ifnet, img0, img1 = IFNet().eval(), torch.rand(1, 3, 64, 128), torch.rand(1, 3, 64, 128)
    with torch.no_grad():
        first = ifnet(img0, img1, 0.5)
        r0, r1 = second_flows(ifnet, first, img0, img1, mode="reuse")
        g0, g1 = second_flows(ifnet, first, img0, img1, mode="residual")
        frame = refine(Refiner(), ifnet, first, img0, img1)
    assert torch.equal(r0, first.flow[:, 0:2]) and torch.equal(r1, first.flow[:, 2:4])
    assert g0.shape == g1.shape == (1, 2, 64, 128) and torch.isfinite(g0).all()
    assert torch.equal(frame, first.frame)  # identity at initialisation
    with pytest.raises(ValueError, match="unknown second-flow mode"):
        second_flows(ifnet, first, img0, img1, mode="t0")


# -- loss and training ----------------------------------------------------------------------------------------------
def test_charbonnier_on_a_known_input():
    prediction = torch.zeros(2, 1, 2, 2)
    target = torch.tensor([3.0, -4.0, 0.0, 1.0]).view(1, 1, 2, 2).expand(2, 1, 2, 2)
    # Per image: sqrt(9 + e²) + sqrt(16 + e²) + e + sqrt(1 + e²) ≈ 8 + 1e-6; the batch mean is the same.
    assert charbonnier(prediction, target).item() == pytest.approx(8.0 + 1e-6, abs=1e-6)
    assert charbonnier(target, target).item() == pytest.approx(4e-6, rel=1e-3)


def test_a_few_steps_reduce_the_loss():
    torch.manual_seed(0)
    frame, img0, img1, flow0, flow1, mask = _inputs(batch=1, height=12, width=12)
    truth = (frame * 0.8 + 0.1).detach()
    model = Refiner()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(20):
        loss = charbonnier(model(frame, img0, img1, flow0, flow1, mask).frame, truth)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


def test_checkpoint_round_trip_and_export(tmp_path):
    torch.manual_seed(0)
    model = Refiner()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss = charbonnier(model(*_inputs()).frame, torch.rand(2, 3, 24, 32))
    loss.backward()
    optimizer.step()
    config = TrainConfig(steps=7)
    save_checkpoint(tmp_path / "last.pt", model, optimizer, 5, config, [{"step": 5}])
    other = Refiner()
    other_opt = torch.optim.AdamW(other.parameters(), lr=1e-3)
    state = load_checkpoint(tmp_path / "last.pt", other, other_opt)
    assert state["step"] == 5 and state["config"]["steps"] == 7 and state["history"] == [{"step": 5}]
    for a, b in zip(model.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)
    assert other_opt.state_dict()["state"][0]["step"] == optimizer.state_dict()["state"][0]["step"]
    export_weights(tmp_path / "last.pt", tmp_path / "refiner.pth")
    loaded = load_refiner(tmp_path / "refiner.pth")
    inputs = _inputs()
    assert torch.equal(loaded(*inputs).frame, model(*inputs).frame)


# -- data -----------------------------------------------------------------------------------------------------------
def _write_triplets(root, count=2, size=(20, 24)):
    from skimage.io import imsave

    rng = np.random.default_rng(0)
    for i in range(count):
        folder = root / f"{i}"
        folder.mkdir(parents=True)
        base = rng.integers(0, 200, (*size, 3), dtype=np.uint8)
        for name, add in (("frame_00.png", 0), ("frame_01_gt.png", 20), ("frame_02.png", 40)):
            imsave(folder / name, base + add, check_contrast=False)


def test_mining_finds_image_triplets(tmp_path):
    _write_triplets(tmp_path / "data")
    (tmp_path / "data" / "junk").mkdir()
    (tmp_path / "data" / "junk" / "frame_00.png").write_bytes(b"")  # no partners: not a triplet
    triplets = mine_triplets([tmp_path / "data"])
    assert len(triplets) == 2
    img0, truth, img1 = load_triplet(triplets[0])
    assert img0.shape == (20, 24, 3) and img0.dtype == np.uint8
    assert (truth.astype(int) - img0).min() == 20 and (img1.astype(int) - img0).max() == 40


def test_augmentation_is_consistent_across_the_triplet(tmp_path):
    _write_triplets(tmp_path / "data", count=1)
    img0, truth, img1 = (torch.from_numpy(a).permute(2, 0, 1).float() for a in load_triplet(
        mine_triplets([tmp_path / "data"])[0]))
    flow = torch.zeros(2, 20, 24)
    flow[0], flow[1] = 1.5, -2.5
    sample = {"img0": img0, "truth": truth, "img1": img1, "flow0": flow, "flow1": -flow,
              "mask": torch.full((1, 20, 24), 0.25)}
    seen = set()
    for seed in range(16):
        out = augment(sample, np.random.default_rng(seed), crop=12)
        assert out["img0"].shape == (3, 12, 12)
        # Same crop and flips for the three frames: they still differ by a constant, and the middle is the middle.
        reversed_ = bool((out["img1"] - out["img0"] < 0).all())
        assert torch.equal(out["truth"] - (out["img1"] if reversed_ else out["img0"]), torch.full((3, 12, 12), 20.0))
        assert torch.equal((out["img0"] - out["img1"]).abs(), torch.full((3, 12, 12), 40.0))
        # Flows follow the flips (sign) and the reversal (swap); the mask turns into 1 - M on reversal.
        fx, fy = out["flow0"][0, 0, 0].item(), out["flow0"][1, 0, 0].item()
        assert abs(fx) == 1.5 and abs(fy) == 2.5
        assert torch.equal(out["flow1"], -out["flow0"])
        assert out["mask"][0, 0, 0].item() == (0.75 if reversed_ else 0.25)
        seen.add((reversed_, fx > 0, fy > 0))
    assert len(seen) >= 6  # the augmentations do vary


def test_train_end_to_end_resumes_and_has_a_cli_command(tmp_path):
    """``train`` on three tiny triplets with a random IFNet: caches, trains, checkpoints, resumes, exports."""
    from typer.testing import CliRunner

    from retime.cli import app, mount_commands

    mount_commands(app)
    from retime.errors import UsageError
    from retime_train.train import train

    _write_triplets(tmp_path / "data", count=3, size=(128, 136))
    torch.manual_seed(0)
    torch.save(IFNet().state_dict(), tmp_path / "ifnet.pt")
    config = TrainConfig(steps=2, batch=2, crop=32, cache_size=128, holdout_every=3, checkpoint_every=1)
    out = train([tmp_path / "data"], tmp_path / "run", config, weights=tmp_path / "ifnet.pt", progress=False)
    assert out.is_file() and len(list((tmp_path / "run" / "cache-s128-reuse").glob("*.pt"))) == 3
    longer = TrainConfig(**{**config.__dict__, "steps": 3})
    train([tmp_path / "data"], tmp_path / "run", longer, weights=tmp_path / "ifnet.pt", progress=False)
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert state["step"] == 3 and [h["step"] for h in state["history"]] == [1, 2, 3]
    with pytest.raises(UsageError, match="different configuration"):
        train([tmp_path / "data"], tmp_path / "run", TrainConfig(**{**config.__dict__, "crop": 16}),
              weights=tmp_path / "ifnet.pt", progress=False)
    result = CliRunner().invoke(app, ["train", "--help"])
    assert result.exit_code == 0 and "--patch" in result.output
    missing = CliRunner().invoke(app, ["train", str(tmp_path / "nope"), "--out", str(tmp_path / "run2")])
    assert missing.exit_code == 3 and "does not exist" in missing.output


def test_banded_processing_equals_one_pass(monkeypatch):
    """Large frames are refined in bands of rows (bounded memory); the result must not depend on the banding."""
    import retime.refine.model as model_module

    torch.manual_seed(0)
    model = Refiner()
    for p in model.parameters():  # leave the zero initialisation so that every path contributes
        torch.nn.init.normal_(p, std=0.1)
    inputs = _inputs(batch=1, height=20, width=16)
    whole = model(*inputs)
    monkeypatch.setattr(model_module, "TOKEN_BUDGET", 2 * 9 * 19 * 16 * 3)  # 3 rows per band
    banded = model(*inputs)
    assert torch.allclose(whole.updated0, banded.updated0, atol=1e-5)
    assert torch.allclose(whole.frame, banded.frame, rtol=1e-5, atol=1e-4)  # float32 summation order differs
    assert torch.allclose(whole.attention0, banded.attention0, atol=1e-6)
    assert model(*inputs, keep_attention=False).attention0.shape[3] == 0


def test_committed_weights_load_and_are_small():
    """The refinement weights ship in the package (no fetch): they load by their manifest entry, SHA-256 checked."""
    from retime.interpolate.weights import registry
    from retime.refine.weights import REFINER_ENTRY

    entry = registry()[REFINER_ENTRY]
    assert not entry.default and entry.path.stat().st_size < 5_000_000
    model = load_refiner()
    frame, *rest = _inputs(batch=1, height=16, width=16)
    with torch.no_grad():
        out = model(frame, *rest).frame
    assert out.shape == frame.shape and torch.isfinite(out).all()


def test_corrupt_refiner_weights_are_a_model_error(tmp_path):
    from retime.errors import ModelError

    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot read refinement weights"):
        load_refiner(tmp_path / "bad.pth")
    with pytest.raises(ModelError, match="not found"):
        load_refiner(tmp_path / "missing.pth")
