"""retime.media: probe facts, streaming decode (and its refusal of damaged files), encoder choices, the writer's
stream copies and metadata, and the atomic output."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import HEIGHT, N_FRAMES, WIDTH, packets, video_facts
from retime.errors import InputError, OutputError, UsageError
from retime.media import EncodeSettings, VideoWriter, atomic_output, iter_frames, iter_luma, probe
from retime.media.decode import to_luma
from retime.media.encode import choose_encoder, choose_pix_fmt, temp_path_for

def _tag(metadata, key: str):
    """A metadata value whatever the case of its key (Matroska writes tags in capitals)."""
    return {k.lower(): v for k, v in metadata.items()}.get(key)


# --- probe ----------------------------------------------------------------------------------------------------


def test_probe_reads_the_facts(clips):
    info = probe(clips["lossless"].path)
    assert (info.width, info.height) == (WIDTH, HEIGHT)
    assert info.frame_rate == 25 and isinstance(info.frame_rate, Fraction)
    assert info.codec == "ffv1" and info.pix_fmt == "yuv420p" and info.bit_depth == 8
    assert info.start_pts == 0
    assert [s.type for s in info.other_streams] == ["audio"]
    assert _tag(info.metadata, "comment") == "made by tests/conftest.py"


def test_probe_colour_rotation_and_depth(clips):
    lossy = probe(clips["lossy"].path)
    assert (lossy.color_primaries, lossy.color_trc, lossy.colorspace, lossy.color_range) == (1, 1, 1, 1)
    assert lossy.frame_count == N_FRAMES
    assert probe(clips["rotated"].path).rotation == 90
    assert probe(clips["rotated"].path).display_matrix is not None
    ten = probe(clips["tenbit"].path)
    assert ten.pix_fmt == "yuv420p10le" and ten.bit_depth == 10


@pytest.mark.parametrize("name, words", [
    ("audio_only", "no video stream"),
    ("not_video", "not a video"),
])
def test_probe_refuses_what_is_not_a_video(clips, name, words):
    with pytest.raises(InputError, match=words):
        probe(clips[name].path)


def test_probe_refuses_missing_file_and_directory(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        probe(tmp_path / "nothing.mp4")
    with pytest.raises(InputError, match="directory"):
        probe(tmp_path)


# --- decode ---------------------------------------------------------------------------------------------------


def test_iter_luma_streams_grey_frames_with_their_timestamps(clips):
    clip = clips["lossless"]
    frames = list(iter_luma(clip.path))
    assert len(frames) == N_FRAMES
    assert all(f.luma.shape == (HEIGHT, WIDTH) and f.luma.dtype == np.uint8 for f in frames)
    assert [f.index for f in frames] == list(range(N_FRAMES))
    assert [f.time for f in frames] == [p * clip.time_base for p in clip.pts]


def test_iter_luma_reads_vfr_timestamps(clips):
    clip = clips["vfr"]
    assert [f.time for f in iter_luma(clip.path)] == [Fraction(int(p), 1000) for p in clip.pts]


@pytest.mark.parametrize("name", ["truncated", "truncated_mkv"])
def test_iter_luma_refuses_truncated_files(clips, name):
    with pytest.raises(InputError, match="truncated|corrupted"):
        for _ in iter_luma(clips[name].path):
            pass

@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuvj420p", "yuv422p", "yuv444p", "nv12", "nv21", "gray",
                                     "yuv410p", "yuv420p10le", "rgb24", "yuyv422"])
@pytest.mark.parametrize("colour_range", [0, 1, 2])
@pytest.mark.parametrize("colorspace", [2, 5, 1, 9])  # unspecified, BT.601, BT.709, BT.2020
@pytest.mark.parametrize("width", [90, 91])  # an even row is looked up two samples at a time, an odd one by one
def test_to_luma_equals_libswscales_grey_conversion(pix_fmt, colour_range, colorspace, width):
    # the table look-up of the luma plane must give exactly what libswscale's gray conversion gives, in every
    # range and under every matrix, with the plane's line padding (a width that is not a multiple of the alignment)
    rng = np.random.default_rng(colour_range)
    picture = rng.integers(0, 256, (38, width, 3), dtype=np.uint8)
    frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format=pix_fmt)
    frame.color_range = colour_range
    frame.colorspace = colorspace  # under BT.709/BT.2020 libswscale's grey depends on the chroma as well
    expected = frame.to_ndarray(format="gray", src_color_range=colour_range or None)
    luma = to_luma(frame)
    assert luma.shape == (38, width) and luma.dtype == np.uint8
    assert np.array_equal(luma, expected)


def test_to_luma_stretches_limited_range():
    frame = av.VideoFrame(64, 2, "yuv420p")
    for i, plane in enumerate(frame.planes):
        samples = np.full(plane.buffer_size, 128, np.uint8)
        if i == 0:
            samples.reshape(plane.height, plane.line_size)[:, :4] = [16, 235, 126, 0]
        plane.update(samples.tobytes())
    frame.color_range = 1  # MPEG (limited): black 16, white 235
    assert to_luma(frame)[0, :4].tolist() == [0, 255, 128, 0]
    frame.color_range = 2  # JPEG (full): the samples are the grey levels
    assert to_luma(frame)[0, :4].tolist() == [16, 235, 126, 0]



def test_iter_frames_keeps_native_pixels_and_gives_rgb(clips):
    clip = clips["lossless"]
    frames = list(iter_frames(clip.path))
    assert len(frames) == N_FRAMES
    assert frames[0].frame.format.name == "yuv420p"
    rgb = frames[3].rgb
    assert rgb.shape == (HEIGHT, WIDTH, 3) and rgb.dtype == np.uint8
    # the same picture as a direct RGB -> yuv420p -> RGB round trip (4:2:0 costs this texture's fine colour)
    direct = av.VideoFrame.from_ndarray(clip.frames[3], format="rgb24").reformat(format="yuv420p")
    assert np.array_equal(rgb, direct.to_ndarray(format="rgb24"))


# --- encoder choices ------------------------------------------------------------------------------------------


def test_choose_encoder():
    assert choose_encoder(None, "h264") == "libx264"
    assert choose_encoder(None, "mpeg4") == "libx264"
    assert choose_encoder(None, "hevc") == "libx265"
    assert choose_encoder("FFV1", "h264") == "ffv1"
    assert choose_encoder("h265", "h264") == "libx265"
    assert choose_encoder(None, "h264", "webm") == "libvpx-vp9"  # the container decides where it must
    assert choose_encoder("vp9", "h264") == "libvpx-vp9"
    # a mistyped name is a usage error (exit 2), not an output error: the README's batch loop stops on it
    with pytest.raises(UsageError, match="--codec must be one of h264, h265, ffv1, vp9, av1"):
        choose_encoder("vp9000", "h264")
    with pytest.raises(UsageError, match="--codec"):
        EncodeSettings(codec="theora9")


@pytest.mark.parametrize("encoder, given, chosen", [
    ("libx264", "yuv420p", "yuv420p"),
    ("libx264", "yuv420p10le", "yuv420p10le"),
    ("libx265", "yuv420p10le", "yuv420p10le"),
    ("ffv1", "yuv420p10le", "yuv420p10le"),
    ("ffv1", "yuvj420p", "yuv420p"),
    ("libx264", "yuv420p12le", "yuv420p10le"),  # never lose more bits than needed
    ("libx264", "rgb24", "yuv444p"),  # full chroma stays full chroma
])
def test_choose_pix_fmt(encoder, given, chosen):
    assert choose_pix_fmt(encoder, given) == chosen


# --- writer ---------------------------------------------------------------------------------------------------


def _remux(src: Path, dst: Path, codec: str | None = "ffv1", preset: str = "ultrafast") -> None:
    info = probe(src)
    with VideoWriter(dst, info, settings=EncodeSettings(codec=codec, preset=preset), time_base=info.time_base,
                     rate=info.frame_rate) as writer:
        for frame in iter_frames(src):
            writer.write(frame.frame, frame.pts, frame.duration)


@pytest.mark.parametrize("size, preset, lookahead", [
    ((1920, 1080), "medium", 40), ((2560, 1440), "medium", 22), ((3840, 2160), "medium", 10),
    ((3840, 2160), "slow", 10), ((3840, 2160), "veryfast", 10), ((2560, 1440), "faster", 20)])
def test_x264_lookahead_is_cut_only_above_1080p(size, preset, lookahead):
    from retime.media._codecs import X264_LOOKAHEAD, x264_lookahead

    chosen = x264_lookahead(*size, preset)
    assert (X264_LOOKAHEAD[preset] if chosen is None else chosen) == lookahead
    assert chosen is None or chosen < X264_LOOKAHEAD[preset]


def test_writer_gives_x264_the_shorter_lookahead_at_large_sizes(tmp_path):
    # x264 writes its settings into the stream (an SEI message): the option must reach the encoder
    src = tmp_path / "big.mkv"
    with av.open(str(src), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 2560, 1440, "yuv420p"
        for k in range(2):
            frame = av.VideoFrame(2560, 1440, "yuv420p")
            frame.pts = k
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    _remux(src, tmp_path / "big.mp4", codec="h264", preset="medium")
    written = (tmp_path / "big.mp4").read_bytes()
    assert b"rc_lookahead=22 " in written and b"rc=crf" in written


def test_writer_is_lossless_with_ffv1_and_copies_audio(clips, tmp_path):
    src = clips["lossless"].path
    dst = tmp_path / "copy.mkv"
    _remux(src, dst)
    a, b = video_facts(src), video_facts(dst)
    assert b["n"] == a["n"] and b["times"] == a["times"] and b["rate"] == a["rate"]
    assert all(np.array_equal(x, y) for x, y in zip(a["planes"], b["planes"]))
    assert packets(dst, "audio") == packets(src, "audio")
    assert _tag(b["metadata"], "comment") == "made by tests/conftest.py"
    assert _tag(b["video_metadata"], "title") == "retime test clip"


def test_writer_keeps_colour_tags_rotation_and_depth(clips, tmp_path):
    _remux(clips["lossy"].path, tmp_path / "c.mp4", codec=None)
    facts = video_facts(tmp_path / "c.mp4")
    assert facts["colour"] == (1, 1, 1, 1) and facts["codec"] == "h264"
    assert packets(tmp_path / "c.mp4", "audio") == packets(clips["lossy"].path, "audio")
    _remux(clips["rotated"].path, tmp_path / "r.mp4", codec=None)
    assert video_facts(tmp_path / "r.mp4")["rotation"] == 90
    _remux(clips["tenbit"].path, tmp_path / "t.mp4", codec=None)
    assert video_facts(tmp_path / "t.mp4")["pix_fmt"] == "yuv420p10le"
    _remux(clips["tenbit"].path, tmp_path / "t.mkv", codec="ffv1")
    ten_in, ten_out = video_facts(clips["tenbit"].path), video_facts(tmp_path / "t.mkv")
    assert ten_out["pix_fmt"] == "yuv420p10le"
    assert all(np.array_equal(x, y) for x, y in zip(ten_in["planes"], ten_out["planes"]))


def test_writer_copies_subtitles_or_refuses_to_drop_them(clips, tmp_path):
    src = clips["subtitled"].path
    _remux(src, tmp_path / "s.mkv")
    assert [t for t, _ in video_facts(tmp_path / "s.mkv")["streams"]] == ["video", "subtitle"]
    assert packets(tmp_path / "s.mkv", "subtitle") == packets(src, "subtitle")
    with pytest.raises(OutputError, match="subtitle stream"):
        _remux(src, tmp_path / "s.mp4", codec=None)


def test_writer_refuses_a_codec_the_container_cannot_hold(clips, tmp_path):
    info = probe(clips["clean"].path)
    with pytest.raises(OutputError, match="cannot hold"):
        VideoWriter(tmp_path / "x.webm", info, settings=EncodeSettings(codec="h264"), time_base=info.time_base,
                    rate=info.frame_rate)


# --- atomic output --------------------------------------------------------------------------------------------


def test_temp_path_is_hidden_beside_the_output_with_its_extension(tmp_path):
    tmp = temp_path_for(tmp_path / "film.mp4")
    assert tmp.parent == tmp_path and tmp.name.startswith(f".film.retime-{os.getpid()}-")
    assert tmp.name.endswith(".part.mp4")


def test_atomic_output_moves_into_place_only_on_success(tmp_path):
    out = tmp_path / "o.mkv"
    with atomic_output(out) as staged:
        staged.path.write_bytes(b"done")
    assert out.read_bytes() == b"done"
    assert list(tmp_path.iterdir()) == [out]

    out2 = tmp_path / "o2.mkv"
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(out2) as staged:
            staged.path.write_bytes(b"half")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == [out]


def test_atomic_output_refusals(tmp_path):
    existing = tmp_path / "a.mp4"
    existing.write_bytes(b"old")
    with pytest.raises(OutputError, match="already exists"):
        with atomic_output(existing):
            pass
    with atomic_output(existing, overwrite=True) as staged:
        staged.path.write_bytes(b"new")
    assert existing.read_bytes() == b"new"
    with pytest.raises(OutputError, match="is the input"):
        with atomic_output(tmp_path / "." / "a.mp4", input=existing, overwrite=True):
            pass
    link = tmp_path / "link.mp4"
    link.hardlink_to(existing)
    with pytest.raises(OutputError, match="is the input"):
        with atomic_output(link, input=existing, overwrite=True):
            pass
    with pytest.raises(OutputError, match="does not exist"):
        with atomic_output(tmp_path / "missing" / "x.mp4"):
            pass
    with pytest.raises(OutputError, match="extension"):
        with atomic_output(tmp_path / "noext"):
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "link.mp4"]
