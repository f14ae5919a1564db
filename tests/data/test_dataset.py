"""The tracked-clip dataset format: writing, loading, validation messages, frame sampling."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from emo_backend.data.dataset import (
    DatasetWriter, FrameDataset, check_dataset, collate_frames, iter_frames, load_dataset,
)
from emo_backend.data.schema import AWAITING_TRACKING
from emo_backend.errors import InvalidFileError
from emo_backend.head.expressions import ACTION_UNITS
from emo_backend.render.camera import intrinsics_from_fov, orbit_viewmat

W, H, E = 24, 16, len(ACTION_UNITS)


def make_tracking(num_frames: int, seed: int = 0, per_frame_camera: bool = True) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    views = np.stack([orbit_viewmat(5.0 * i, 0.0, 1.0).numpy() for i in range(num_frames)])
    K = intrinsics_from_fov(20.0, W, H).numpy()
    return {
        "expression": rng.uniform(0, 1, (num_frames, E)).astype(np.float32),
        "pose": rng.normal(0, 0.05, (num_frames, 5, 3)).astype(np.float32),
        "translation": rng.normal(0, 0.01, (num_frames, 3)).astype(np.float32),
        "identity": rng.normal(0, 1, (10,)).astype(np.float32),
        "K": np.broadcast_to(K, (num_frames, 3, 3)).copy() if per_frame_camera else K,
        "viewmat": views if per_frame_camera else views[0],
        "blink": rng.uniform(0, 1, (num_frames, 2)).astype(np.float32),
    }


def make_frames(num_frames: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(num_frames)]


def write_dataset(root, clips=(("a", 5, "train"), ("b", 3, "test")), awaiting=()):
    with DatasetWriter(root, head_model="open-head-v1", expression_names=ACTION_UNITS, fps=25.0) as w:
        for n, (clip_id, frames, split) in enumerate(clips):
            w.add_clip(
                clip_id, identity="actor1", emotion="happy", intensity=2 / 3, frames=make_frames(frames, n),
                masks=[np.full((H, W), 200, np.uint8)] * frames,
                audio=(np.sin(np.linspace(0, 100, 16000 * frames // 25)).astype(np.float32), 16000),
                tracking=None if clip_id in awaiting else make_tracking(frames, n, per_frame_camera=n % 2 == 0),
                split=split, text="hello there",
            )
    return root


def test_round_trip(tmp_path):
    root = write_dataset(tmp_path / "ds")
    ds = load_dataset(root)
    assert ds.info.resolution == (W, H)
    assert ds.clip_ids("train") == ["a"] and ds.clip_ids("test") == ["b"]
    frames = make_frames(5, 0)
    assert np.array_equal(ds.load_frame("a", 3), frames[3])
    mask = ds.load_mask("a", 0)
    assert mask.shape == (H, W) and abs(mask.mean() - 200 / 255) < 1e-6
    t = ds.load_tracking("b")  # written with one camera for the clip: broadcast to every frame
    assert t.K.shape == (3, 3, 3) and t.viewmat.shape == (3, 4, 4)
    np.testing.assert_allclose(t.expression, make_tracking(3, 1)["expression"])
    samples, rate = ds.load_audio("a")
    assert rate == 16000 and len(samples) == 16000 * 5 // 25
    assert check_dataset(root).ok


def test_iter_frames_gives_torch_records(tmp_path):
    ds = load_dataset(write_dataset(tmp_path / "ds"))
    records = list(iter_frames(ds, "train"))
    assert [r.frame_index for r in records] == list(range(5))
    r = records[2]
    assert r.image.shape == (H, W, 3) and r.image.dtype == torch.float32 and 0 <= r.image.min() <= r.image.max() <= 1
    assert r.expression.shape == (E,) and r.pose.shape == (5, 3) and r.viewmat.shape == (4, 4)
    assert r.emotion == 5 and abs(r.intensity - 2 / 3) < 1e-9 and abs(r.time_s - 2 / 25) < 1e-9
    shuffled = [(r.clip_id, r.frame_index) for r in iter_frames(ds, "train", shuffle=True, seed=3, load_images=False)]
    assert sorted(shuffled) == [("a", i) for i in range(5)] and shuffled != sorted(shuffled)


def test_frame_dataset_batches_with_dataloader(tmp_path):
    ds = load_dataset(write_dataset(tmp_path / "ds"))
    frames = FrameDataset(ds, "train")
    loader = torch.utils.data.DataLoader(frames, batch_size=2, shuffle=False, collate_fn=collate_frames)
    batch = next(iter(loader))
    assert batch["image"].shape == (2, H, W, 3) and batch["viewmat"].shape == (2, 4, 4)
    assert batch["mask"].shape == (2, H, W) and batch["blink"].shape == (2, 2) and batch["landmarks2d"] is None
    assert batch["clip_id"] == ["a", "a"] and batch["frame_index"].tolist() == [0, 1]
    assert torch.equal(batch["expression"][1], torch.from_numpy(ds.load_tracking("a").expression[1]))
    assert len(frames) == 5 and batch["emotion"].tolist() == [5, 5]


def test_awaiting_tracking_is_reported_clearly(tmp_path):
    root = write_dataset(tmp_path / "ds", awaiting=("b",))
    ds = load_dataset(root)
    raw = json.loads((root / "dataset.json").read_text())
    assert raw["awaiting_tracking"] == ["b"] and ds.clip("b").tracking == AWAITING_TRACKING
    with pytest.raises(InvalidFileError, match=r"clip 'b' is awaiting tracking.*training needs tracking"):
        list(iter_frames(ds, "test"))
    with pytest.raises(InvalidFileError, match=r"clip 'b' is awaiting tracking"):
        FrameDataset(ds, "test")
    report = check_dataset(root)
    assert report.ok and report.awaiting_tracking == ["b"] and report.tracked_clips == 1


def _corrupt_tracking(root, clip_id, **changes):
    path = root / "tracking" / f"{clip_id}.npz"
    with np.load(path) as npz:
        arrays = dict(npz)
    for key, value in changes.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    np.savez(path, **arrays)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"expression": None}, r"clip 'a'.*missing field 'expression'"),
        ({"pose": np.zeros((5, 4, 3), np.float32)}, r"clip 'a' field 'pose'.*shape \[5, 4, 3\]"),
        ({"expression": np.zeros((4, E), np.float32)}, rf"field 'expression'.*shape \[4, {E}\]"),
        ("nan_frame_3", r"clip 'a' frame 3 field 'translation'.*NaN"),
        ("bad_view_1", r"clip 'a' frame 1 field 'viewmat'.*rigid"),
        ({"extra": np.zeros(3)}, r"unknown field\(s\) \['extra'\]"),
        ({"K": np.zeros((3, 3), np.float32)}, r"frame 0 field 'K'"),
    ],
)
def test_bad_tracking_names_clip_frame_and_field(tmp_path, change, message):
    root = write_dataset(tmp_path / "ds")
    t = make_tracking(5, 0)
    if change == "nan_frame_3":
        t["translation"][3, 1] = np.nan
        change = {"translation": t["translation"]}
    elif change == "bad_view_1":
        t["viewmat"][1, :3, :3] *= 2.0
        change = {"viewmat": t["viewmat"]}
    _corrupt_tracking(root, "a", **change)
    with pytest.raises(InvalidFileError, match=message):
        load_dataset(root).load_tracking("a")
    assert any("clip 'a'" in p for p in check_dataset(root).problems)


def test_pickled_tracking_is_refused(tmp_path):
    root = write_dataset(tmp_path / "ds")
    np.savez(root / "tracking" / "a.npz", **(make_tracking(5) | {"expression": np.array([{"x": 1}], dtype=object)}))
    with pytest.raises(InvalidFileError, match="pickle"):
        load_dataset(root).load_tracking("a")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.update(format="other"), "format"),
        (lambda d: d.update(version=7), "version 7"),
        (lambda d: d["clips"][0].update(emotion="bored"), r"clip 'a'.emotion: 'bored' is not one of neutral"),
        (lambda d: d["clips"][0].update(intensity=1.5), r"clip 'a'.intensity: must be in \[0, 1\]"),
        (lambda d: d["clips"][1].update(identity="nobody"), r"clip 'b'.identity"),
        (lambda d: d["splits"].update(test=["a"]), r"clip 'a' is also in split 'train'"),
        (lambda d: d["splits"].update(test=[]), r"in no split"),
        (lambda d: d["clips"][0].update(id="../evil"), r"clips\[0\].id: clip id '../evil'"),
        (lambda d: d.pop("fps"), r"missing field 'fps'"),
    ],
)
def test_bad_dataset_json_names_the_field(tmp_path, edit, message):
    root = write_dataset(tmp_path / "ds")
    data = json.loads((root / "dataset.json").read_text())
    edit(data)
    (root / "dataset.json").write_text(json.dumps(data))
    with pytest.raises(InvalidFileError, match=message):
        load_dataset(root)


def test_missing_and_wrong_size_frames_are_named(tmp_path):
    root = write_dataset(tmp_path / "ds")
    (root / "frames" / "a" / "0002.png").unlink()
    with pytest.raises(InvalidFileError, match=r"0002.png: clip 'a' frame 2 is missing"):
        load_dataset(root).load_frame("a", 2)
    from PIL import Image

    Image.new("RGB", (8, 8)).save(root / "frames" / "b" / "0001.png")
    problems = check_dataset(root).problems
    assert any("frame 2 is missing" in p for p in problems) and any("clip 'b' frame 1 is 8x8" in p for p in problems)


def test_writer_refuses_bad_clips_and_leaves_nothing_behind(tmp_path):
    root = tmp_path / "ds"
    with DatasetWriter(root, head_model="open-head-v1", expression_names=ACTION_UNITS, fps=25.0) as w:
        with pytest.raises(ValueError, match="expected \\[H, W, 3\\]"):  # a failed first clip fixes no resolution
            w.add_clip("gray", identity="x", emotion="sad", intensity=1.0,
                       frames=[np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8)])
        w.add_clip("ok", identity="x", emotion="sad", intensity=1.0, frames=make_frames(2), tracking=make_tracking(2))
        bad = make_tracking(3)
        with pytest.raises(InvalidFileError, match="field 'expression'"):
            w.add_clip("bad", identity="x", emotion="sad", intensity=1.0, frames=make_frames(2), tracking=bad)

        def frames_then_crash():
            yield make_frames(1)[0]
            raise RuntimeError("decoder died")

        with pytest.raises(RuntimeError):
            w.add_clip("crash", identity="x", emotion="sad", intensity=1.0, frames=frames_then_crash())
        with pytest.raises(ValueError, match="size 8x8 differs"):
            w.add_clip("small", identity="x", emotion="sad", intensity=1.0, frames=[np.zeros((8, 8, 3), np.uint8)])
        with pytest.raises(ValueError, match="emotion"):
            w.add_clip("e", identity="x", emotion="bored", intensity=1.0, frames=make_frames(1))
    ds = load_dataset(root)
    assert list(ds.clips) == ["ok"]
    assert sorted(p.name for p in (root / "frames").iterdir()) == ["ok"]
    assert not (root / ".incoming").exists() and not (root / "tracking" / "bad.npz").exists()
    with pytest.raises(InvalidFileError, match="already holds a dataset"):
        DatasetWriter(root, head_model="open-head-v1", expression_names=ACTION_UNITS, fps=25.0)
    with DatasetWriter(root, head_model="open-head-v1", expression_names=ACTION_UNITS, fps=25.0, append=True) as w:
        w.add_clip("more", identity="y", emotion="fear", intensity=0.0, frames=make_frames(2), split="test")
    ds = load_dataset(root)
    assert ds.clip_ids("test") == ["more"] and ds.info.identities == ["x", "y"]
    assert ds.clip("more").tracking == AWAITING_TRACKING
