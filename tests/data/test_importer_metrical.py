"""metrical-tracker checkpoints -> tracked clip, on fixtures written in the tracker's own layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.spatial.transform import Rotation

from emo_backend.data.dataset import DatasetWriter, load_dataset
from emo_backend.data.importers.metrical import import_metrical, metrical_expression_names
from emo_backend.data.rotations import matrix_to_rotation_6d, rotation_6d_to_matrix
from emo_backend.errors import InvalidFileError

H, W, F = 20, 28, 4


def six_d(rotvec) -> np.ndarray:  # [1, 6], PyTorch3D convention (first two rows)
    return matrix_to_rotation_6d(Rotation.from_rotvec(rotvec).as_matrix())[None].astype(np.float32)


def write_tracker_output(root, frames=F, start=0):
    rng = np.random.default_rng(0)
    (root / "checkpoint").mkdir(parents=True)
    (root / "input").mkdir()
    truth = []
    for k in range(frames):
        fid = start + k
        jaw = np.array([0.05 * k, 0.0, 0.01])
        left, right = np.array([0.0, 0.1, 0.0]), np.array([0.0, -0.1 * k, 0.02])
        head = Rotation.from_rotvec([0.0, 0.05 * k, 0.0]).as_matrix()
        payload = {
            "flame": {
                "exp": rng.normal(size=(1, 100)).astype(np.float32),
                "shape": np.linspace(-1, 1, 300, dtype=np.float32)[None],
                "tex": np.zeros((1, 140), np.float32),
                "sh": np.zeros((1, 9, 3), np.float32),
                "eyes": np.concatenate([six_d(left), six_d(right)], 1),
                "eyelids": np.array([[0.1 * k, 0.9]], np.float32),
                "jaw": six_d(jaw),
            },
            "camera": {"R": np.eye(3)[None].astype(np.float32), "t": np.zeros((1, 3), np.float32)},
            "opencv": {
                "R": head[None].astype(np.float32),
                "t": np.array([[0.0, 0.01, 1.0]], np.float32),
                "K": np.array([[[50.0, 0, W / 2], [0, 50.0, H / 2], [0, 0, 1]]], np.float32),
            },
            "img_size": np.array([H, W]),
            "frame_id": fid,
            "global_step": 100,
        }
        torch.save(payload, root / "checkpoint" / f"{fid:05d}.frame")
        Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(root / "input" / f"{fid:05d}.png")
        truth.append({"jaw": jaw, "left": left, "right": right, "head": head, "exp": payload["flame"]["exp"][0]})
    return truth


def test_6d_round_trip_follows_pytorch3d_rows():
    m = Rotation.from_rotvec([0.3, -0.2, 0.5]).as_matrix()
    d6 = matrix_to_rotation_6d(m)
    np.testing.assert_allclose(d6, m[:2].reshape(6))
    np.testing.assert_allclose(rotation_6d_to_matrix(d6), m, atol=1e-12)
    np.testing.assert_allclose(rotation_6d_to_matrix(d6 * 3.0), m, atol=1e-12)  # scale-free (Gram-Schmidt)


def test_import_metrical_checkpoints(tmp_path):
    src = tmp_path / "actor"
    truth = write_tracker_output(src, start=1)
    names = metrical_expression_names(src)
    assert len(names) == 100 and names[0] == "exp000"
    with DatasetWriter(tmp_path / "ds", head_model="flame2020", expression_names=names, fps=25) as w:
        clip = import_metrical(src, w, emotion="angry", intensity=1.0)
    ds = load_dataset(tmp_path / "ds")
    assert clip.id == "actor" and ds.info.resolution == (W, H) and clip.num_frames == F
    t = ds.load_tracking("actor")
    for k, ref in enumerate(truth):
        np.testing.assert_allclose(t.pose[k, 2], ref["jaw"], atol=1e-5)
        np.testing.assert_allclose(t.pose[k, 3], ref["left"], atol=1e-5)
        np.testing.assert_allclose(t.pose[k, 4], ref["right"], atol=1e-5)
        np.testing.assert_allclose(t.pose[k, 0], 0.0)  # the head's pose lives in the camera
        np.testing.assert_allclose(t.viewmat[k, :3, :3], ref["head"], atol=1e-6)
        np.testing.assert_allclose(t.viewmat[k, :3, 3], [0.0, 0.01, 1.0], atol=1e-7)
        np.testing.assert_allclose(t.expression[k], ref["exp"], atol=1e-6)
    np.testing.assert_allclose(t.blink[:, 0], 0.1 * np.arange(F), atol=1e-6)
    assert t.identity.shape == (300,) and t.K[0, 0, 0] == 50.0
    img = np.asarray(Image.open(src / "input" / "00002.png"))
    assert np.array_equal(ds.load_frame("actor", 1), img)


def test_metrical_errors_are_clear(tmp_path):
    src = tmp_path / "actor"
    write_tracker_output(src)
    (src / "checkpoint" / "00002.frame").unlink()
    with DatasetWriter(tmp_path / "ds", head_model="flame2020", expression_names=[f"e{i}" for i in range(100)], fps=25) as w:
        with pytest.raises(InvalidFileError, match=r"not consecutive \(missing before 00003.frame\)"):
            import_metrical(src, w)
        (src / "checkpoint" / "00002.frame").write_bytes(b"not a checkpoint")
        with pytest.raises(InvalidFileError, match=r"00002.frame: not a readable metrical-tracker checkpoint"):
            import_metrical(src, w)


def test_checkpoint_with_arbitrary_objects_is_refused(tmp_path):
    src = tmp_path / "actor"
    write_tracker_output(src, frames=1)
    torch.save({"flame": {"exp": Rotation.identity()}, "opencv": {}}, src / "checkpoint" / "00000.frame")
    with DatasetWriter(tmp_path / "ds", head_model="flame2020", expression_names=["e"], fps=25) as w:
        with pytest.raises(InvalidFileError, match="only plain arrays are accepted"):
            import_metrical(src, w)


def test_wrong_image_size_is_named(tmp_path):
    src = tmp_path / "actor"
    write_tracker_output(src, frames=2)
    Image.new("RGB", (10, 10)).save(src / "input" / "00001.png")
    with DatasetWriter(tmp_path / "ds", head_model="flame2020", expression_names=[f"e{i}" for i in range(100)], fps=25) as w:
        with pytest.raises(InvalidFileError, match=r"00001.png: image is 10x10 but the tracker worked at 28x20"):
            import_metrical(src, w)
    assert not (tmp_path / "ds" / "frames" / "actor").exists()
