"""VHAP / GaussianAvatars export -> tracked clips; OpenGL camera-to-world -> OpenCV viewmat."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from emo_backend.data.dataset import DatasetWriter, load_dataset
from emo_backend.data.importers.vhap import import_vhap, vhap_expression_count
from emo_backend.errors import InvalidFileError
from emo_backend.render.camera import look_at, opengl_c2w_to_viewmat, orbit_viewmat, project_points

W, H = 32, 24


def opencv_to_opengl_c2w(viewmat: torch.Tensor) -> np.ndarray:
    c2w = torch.linalg.inv(viewmat.double()).numpy()
    c2w[:3, 1:3] *= -1
    return c2w


def test_opengl_camera_conversion_geometry():
    # An OpenGL camera at +5 Z looking at the origin is the identity rotation with centre (0, 0, 5).
    c2w = np.eye(4)
    c2w[2, 3] = 5.0
    viewmat = opengl_c2w_to_viewmat(c2w)
    K = torch.tensor([[100.0, 0, 50], [0, 100.0, 40], [0, 0, 1]])
    pix, z = project_points(torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]), viewmat, K)
    assert torch.allclose(z, torch.tensor([5.0, 5.0, 5.0]))           # in front: positive depth
    assert torch.allclose(pix[0], torch.tensor([50.0, 40.0]))         # centre of view
    assert pix[1, 1] < 40.0 and torch.isclose(pix[1, 0], torch.tensor(50.0))  # world up is image up
    assert pix[2, 0] > 50.0                                            # world +X is image right
    # Agrees with look_at for an arbitrary camera, batched too.
    views = torch.stack([look_at(torch.tensor([1.0, 2.0, 3.0]), torch.zeros(3), torch.tensor([0.0, 1.0, 0.0])),
                         orbit_viewmat(-40.0, 15.0, 0.8)])
    c2ws = np.stack([opencv_to_opengl_c2w(v) for v in views])
    assert torch.allclose(opengl_c2w_to_viewmat(c2ws), views, atol=1e-6)


def write_export(root, timesteps=3, cameras=(0, 1), sequence_file=False, expr_dim=50):
    rng = np.random.default_rng(1)
    (root / "images").mkdir(parents=True)
    (root / "fg_masks").mkdir()
    (root / "flame_param").mkdir()
    params = {
        "translation": rng.normal(0, 0.01, (timesteps, 3)), "rotation": rng.normal(0, 0.1, (timesteps, 3)),
        "neck_pose": rng.normal(0, 0.1, (timesteps, 3)), "jaw_pose": rng.normal(0, 0.1, (timesteps, 3)),
        "eyes_pose": rng.normal(0, 0.1, (timesteps, 6)), "expr": rng.normal(0, 1, (timesteps, expr_dim)),
        "shape": rng.normal(0, 1, (300,)), "static_offset": np.zeros((1, 10, 3)),
    }
    if sequence_file:
        np.savez(root / "flame_param" / "all.npz", **params)
    else:
        for t in range(timesteps):
            np.savez(root / "flame_param" / f"{t:05d}.npz",
                     **{k: (v if k == "shape" else v[t : t + 1]) for k, v in params.items()})
    views = {c: orbit_viewmat(30.0 * c - 15.0, 5.0, 1.1) for c in cameras}
    frames = []
    for t in reversed(range(timesteps)):  # out of order on purpose
        for c in cameras:
            name = f"{t:05d}_{c:02d}"
            Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(root / "images" / f"{name}.png")
            Image.fromarray(np.full((H, W), 255, np.uint8)).save(root / "fg_masks" / f"{name}.png")
            frames.append({
                "timestep_index": t, "camera_index": c, "file_path": f"images/{name}.png",
                "fg_mask_path": f"fg_masks/{name}.png", "transform_matrix": opencv_to_opengl_c2w(views[c]).tolist(),
                "fl_x": 40.0 + c, "fl_y": 41.0, "cx": W / 2, "cy": H / 2, "w": W, "h": H,
                "flame_param_path": "flame_param/all.npz" if sequence_file else f"flame_param/{t:05d}.npz",
            })
    (root / "transforms_train.json").write_text(json.dumps({"frames": frames}))
    test_frames = [dict(f) for f in frames if f["camera_index"] == cameras[0]]
    (root / "transforms_test.json").write_text(json.dumps({"frames": test_frames}))
    return params, views


@pytest.mark.parametrize("sequence_file", [False, True])
def test_import_vhap_export(tmp_path, sequence_file):
    src = tmp_path / "export"
    params, views = write_export(src, sequence_file=sequence_file)
    n_expr = vhap_expression_count(src)
    assert n_expr == 50
    with DatasetWriter(tmp_path / "ds", head_model="flame2023", expression_names=[f"exp{i:03d}" for i in range(n_expr)],
                       fps=25) as w:
        clips = import_vhap(src, w, identity="subj")
    assert [c.id for c in clips] == ["subj_train_cam00", "subj_train_cam01", "subj_test_cam00"]
    ds = load_dataset(tmp_path / "ds")
    assert ds.clip_ids("test") == ["subj_test_cam00"] and ds.clip("subj_train_cam01").has_masks
    t = ds.load_tracking("subj_train_cam01")
    assert torch.allclose(torch.from_numpy(t.viewmat[2]), views[1], atol=1e-5)
    np.testing.assert_allclose(t.K[0], [[41.0, 0, W / 2], [0, 41.0, H / 2], [0, 0, 1]])
    np.testing.assert_allclose(t.expression, params["expr"], atol=1e-6)  # sorted by timestep
    np.testing.assert_allclose(t.pose[:, 0], params["rotation"], atol=1e-6)
    np.testing.assert_allclose(t.pose[:, 2], params["jaw_pose"], atol=1e-6)
    np.testing.assert_allclose(t.pose[:, 4], params["eyes_pose"][:, 3:], atol=1e-6)
    np.testing.assert_allclose(t.translation, params["translation"], atol=1e-6)
    assert np.array_equal(ds.load_frame("subj_train_cam01", 0), np.asarray(Image.open(src / "images" / "00000_01.png")))


def test_vhap_errors_name_the_frame(tmp_path):
    src = tmp_path / "export"
    write_export(src)
    data = json.loads((src / "transforms_train.json").read_text())
    del data["frames"][1]["fl_x"]
    (src / "transforms_train.json").write_text(json.dumps(data))
    with DatasetWriter(tmp_path / "ds", head_model="flame2023", expression_names=[str(i) for i in range(50)], fps=25) as w:
        with pytest.raises(InvalidFileError, match=r"transforms_train.json frames\[1\]: missing or non-numeric 'fl_x'"):
            import_vhap(src, w)
    (src / "flame_param" / "00001.npz").unlink()
    data["frames"][1]["fl_x"] = 40.0
    (src / "transforms_train.json").write_text(json.dumps(data))
    with DatasetWriter(tmp_path / "ds2", head_model="flame2023", expression_names=[str(i) for i in range(50)], fps=25) as w:
        with pytest.raises(InvalidFileError, match=r"00001.npz: missing \(flame_param_path of .*frames\["):
            import_vhap(src, w)


def test_timestep_gaps_start_new_clips(tmp_path):
    src = tmp_path / "export"
    write_export(src, timesteps=5, cameras=(0,))
    data = json.loads((src / "transforms_train.json").read_text())
    data["frames"] = [f for f in data["frames"] if f["timestep_index"] != 2]
    (src / "transforms_train.json").write_text(json.dumps(data))
    (src / "transforms_test.json").unlink()
    with DatasetWriter(tmp_path / "ds", head_model="flame2023", expression_names=[str(i) for i in range(50)], fps=25) as w:
        clips = import_vhap(src, w, identity="s")
    assert [(c.id, c.num_frames) for c in clips] == [("s_train_cam00_t00000", 2), ("s_train_cam00_t00003", 2)]
