"""MEAD folder layout -> awaiting-tracking clips with emotion and intensity labels (tiny generated media)."""

from __future__ import annotations

import json
from fractions import Fraction

import av
import numpy as np
import pytest

from emo_backend.data.dataset import DatasetWriter, iter_frames, load_dataset
from emo_backend.data.importers.mead import find_mead_clips, import_mead, mead_fps
from emo_backend.errors import InvalidFileError

FPS, SIZE, FRAMES, RATE = 30, 64, 8, 16000


def write_mp4(path, colour_seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(colour_seed)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=FPS)
        stream.width = stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        for i in range(FRAMES):
            img = np.zeros((SIZE, SIZE, 3), np.uint8)
            img[:] = rng.integers(40, 215, 3)
            img[:, : 8 * (i + 1)] = 255  # a bar that grows: frame order is visible
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def write_m4a(path, freq):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(RATE * FRAMES / FPS)) / RATE
    samples = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)[None]
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=RATE)
        stream.layout = "mono"
        frame_size = 1024
        for start in range(0, samples.shape[1], frame_size):
            chunk = np.ascontiguousarray(samples[:, start : start + frame_size])
            frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            frame.sample_rate = RATE
            frame.pts = start
            frame.time_base = Fraction(1, RATE)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def make_mead(root):
    layout = [("M003", "happy", 3, "010"), ("M003", "happy", 1, "001"), ("M003", "neutral", 1, "002"),
              ("W009", "contempt", 2, "003")]
    for n, (actor, emotion, level, number) in enumerate(layout):
        write_mp4(root / actor / "video" / "front" / emotion / f"level_{level}" / f"{number}.mp4", n)
        write_m4a(root / actor / "audio" / emotion / f"level_{level}" / f"{number}.m4a", 200 + 50 * n)
    write_mp4(root / "M003" / "video" / "left_30" / "happy" / "level_1" / "001.mp4", 9)
    return layout


def test_import_mead_layout(tmp_path):
    make_mead(tmp_path / "mead")
    clips = find_mead_clips(tmp_path / "mead")
    assert len(clips) == 4 and mead_fps(clips) == FPS
    with DatasetWriter(tmp_path / "ds", head_model="flame2023", expression_names=["e0"], fps=mead_fps(clips)) as w:
        added = import_mead(tmp_path / "mead", w, size=(32, 32))
    ds = load_dataset(tmp_path / "ds")
    by_id = {c.id: c for c in added}
    c = by_id["M003_front_happy_l3_010"]
    assert c.emotion == "happy" and c.intensity == 1.0 and c.num_frames == FRAMES and c.tracking == "awaiting-tracking"
    assert by_id["W009_front_contempt_l2_003"].intensity == pytest.approx(2 / 3)
    assert by_id["M003_front_happy_l1_001"].intensity == pytest.approx(1 / 3)
    assert by_id["M003_front_neutral_l1_002"].intensity == 0.0  # neutral is the origin of the emotion space
    assert ds.clip_ids("test") == ["M003_front_happy_l3_010"]  # sentence 010: held out
    assert ds.info.identities == ["M003", "W009"] and ds.info.resolution == (32, 32)
    raw = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert sorted(raw["awaiting_tracking"]) == sorted(by_id)
    # Frames decoded in order: the white bar grows by 8 px (4 px at half size) per frame.
    widths = [(ds.load_frame(c.id, i)[16, :, :].min(1) > 230).sum() for i in range(FRAMES)]
    assert all(abs(w - 4 * (i + 1)) <= 1 for i, w in enumerate(widths)), widths
    samples, rate = ds.load_audio(c.id)
    assert rate == RATE and abs(len(samples) / RATE - FRAMES / FPS) < 0.1 and 0.15 < np.abs(samples).max() < 0.5
    with pytest.raises(InvalidFileError, match="awaiting tracking"):
        next(iter_frames(ds, "train"))


def test_mead_layout_errors(tmp_path):
    make_mead(tmp_path / "mead")
    (tmp_path / "mead" / "M003" / "video" / "front" / "bored" / "level_1").mkdir(parents=True)
    with pytest.raises(InvalidFileError, match=r"bored: unknown emotion folder"):
        find_mead_clips(tmp_path / "mead")
    (tmp_path / "mead" / "M003" / "video" / "front" / "bored" / "level_1").rmdir()
    (tmp_path / "mead" / "M003" / "video" / "front" / "bored").rmdir()
    with pytest.raises(InvalidFileError, match=r"view 'down' not found"):
        find_mead_clips(tmp_path / "mead" / "W009", views=("down",))
    (tmp_path / "mead" / "W009" / "audio" / "contempt" / "level_2" / "003.m4a").unlink()
    with DatasetWriter(tmp_path / "ds", head_model="flame2023", expression_names=["e0"], fps=FPS) as w:
        with pytest.raises(InvalidFileError, match=r"003.mp4: no matching audio file"):
            import_mead(tmp_path / "mead" / "W009", w)
    with DatasetWriter(tmp_path / "ds2", head_model="flame2023", expression_names=["e0"], fps=25) as w:
        with pytest.raises(InvalidFileError, match=r"30 fps, but the dataset is 25 fps"):
            import_mead(tmp_path / "mead" / "M003", w)
