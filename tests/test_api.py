"""The public Python API: ``retime.fix_drops``, ``retime.upsample``, ``retime.analyse`` and ``retime.Interpolator``
are the very functions the CLI calls, loaded on first use, and they work as the README's "Python API" shows."""

from __future__ import annotations

import av
import pytest

import retime
import retime.pipeline
from retime.errors import InputError
from tests.conftest import DUPLICATES, REPAIRABLE


def test_public_names_are_the_pipeline_and_engine_objects():
    import retime.interpolate

    assert retime.fix_drops is retime.pipeline.fix_drops
    assert retime.upsample is retime.pipeline.upsample
    assert retime.analyse is retime.pipeline.analyse
    assert retime.Interpolator is retime.interpolate.Interpolator
    assert set(retime.__all__) <= set(dir(retime))
    with pytest.raises(AttributeError):
        retime.no_such_name  # noqa: B018


def test_fix_drops_and_analyse_through_the_public_api(clips, blend, tmp_path):
    source = clips["lossless"]
    analysis = retime.analyse(source.path)
    assert [d["frame"] for d in analysis.to_dict()["duplicates"]] == DUPLICATES
    out = tmp_path / "fixed.mkv"
    result = retime.fix_drops(source.path, out, interpolator=blend, encode=retime.EncodeSettings(codec="ffv1"))
    assert result.output == out and result.synthesized == len(REPAIRABLE)
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == analysis.n_frames
    with pytest.raises(InputError):
        retime.analyse(tmp_path / "missing.mp4")
