"""Metrics with known answers, and the report writers (JSON, side-by-side video)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "train"))
from train_fixtures import tiny_head  # noqa: E402

from emo_backend.eval.metrics import landmark_metrics, psnr, ssim_per_image  # noqa: E402
from emo_backend.eval.report import error_heatmap, side_by_side, write_report, write_side_by_side_video  # noqa: E402
from emo_backend.head.lbs import landmarks  # noqa: E402
from emo_backend.head.model import LANDMARK_GROUPS  # noqa: E402
from emo_backend.render.camera import intrinsics_from_fov, orbit_viewmat  # noqa: E402
from emo_backend.train.losses import ssim  # noqa: E402


def test_psnr_and_ssim_known_values():
    gt = torch.full((2, 8, 8, 3), 0.5)
    assert psnr(gt + 0.1, gt).tolist() == pytest.approx([20.0, 20.0], abs=1e-4)
    mask = torch.zeros(2, 8, 8, 1)
    mask[:, :4] = 1
    pred = gt.clone()
    pred[:, :4] += 0.01  # inside the mask: 40 dB
    pred[:, 4:] += 0.3   # outside: ignored
    assert psnr(pred, gt, mask).tolist() == pytest.approx([40.0, 40.0], abs=1e-3)
    x = torch.rand(8, 8, 3, generator=torch.Generator().manual_seed(0))
    y = (x * 0.8 + 0.1).clamp(0, 1)
    assert float(ssim_per_image(x, y)) == pytest.approx(float(ssim(x, y)), abs=1e-6)  # one SSIM implementation
    assert float(ssim_per_image(x, x)) == pytest.approx(1.0, abs=1e-6)


def test_landmark_distance_and_velocity_in_pixels():
    head = tiny_head()
    size, distance, dx = 64, 0.5, 0.004
    K = intrinsics_from_fov(30.0, size, size)
    view = orbit_viewmat(0.0, 0.0, distance)  # camera on +Z looking at the face: camera x = world x
    gt = head.v_template[None].repeat(4, 1, 1)
    shifted = gt + torch.tensor([dx, 0.0, 0.0])
    lm_z = landmarks(head, gt[:1])[0, :, 2]
    per_landmark = float(K[0, 0]) * dx / (distance - lm_z)  # pixel shift of each landmark
    mouth = list(LANDMARK_GROUPS["mouth"])

    same = landmark_metrics(head, gt, gt, view, K)
    assert all(v == pytest.approx(0.0, abs=1e-5) for v in same.values())
    const = landmark_metrics(head, shifted, gt, view, K)
    assert const["lmd_face"] == pytest.approx(float(per_landmark.mean()), rel=1e-4)
    assert const["lmd_mouth"] == pytest.approx(float(per_landmark[mouth].mean()), rel=1e-4)
    assert const["lmv_face"] == pytest.approx(0.0, abs=1e-4)  # a constant offset has the right motion
    drifting = gt + torch.arange(4.0)[:, None, None] * torch.tensor([dx, 0.0, 0.0])
    drift = landmark_metrics(head, drifting, gt, view.expand(4, 4, 4), K.expand(4, 3, 3))
    assert drift["lmv_face"] == pytest.approx(float(per_landmark.mean()), rel=1e-4)
    assert math.isnan(landmark_metrics(head, gt[:1], gt[:1], view, K)["lmv_face"])
    with pytest.raises(ValueError):
        landmark_metrics(head, gt[:2], gt, view, K)


def test_report_json_is_atomic_and_strict(tmp_path):
    path = write_report(tmp_path / "r" / "report.json", {"psnr": np.float32(21.5), "lmv": float("nan"),
                                                         "per": [np.float64(1.0), float("inf")]})
    data = json.loads(path.read_text())
    assert data == {"psnr": 21.5, "lmv": None, "per": [1.0, None]}
    assert sorted(p.name for p in path.parent.iterdir()) == ["report.json"]


def test_side_by_side_frames_and_video(tmp_path):
    from emo_backend.files.video import probe_video

    gt = np.full((15, 21, 3), 0.5, np.float32)
    pred = gt.copy()
    pred[:5] = 1.0
    frame = side_by_side(gt, pred)
    assert frame.shape == (16, 64, 3) and frame.dtype == np.uint8  # 3 panels, padded to even sizes
    assert np.array_equal(frame[:15, :21], np.full((15, 21, 3), 128))
    heat = error_heatmap(pred, gt)
    assert np.allclose(heat[10, 0], [0.0, 0.0, 0.02])      # no error: the ramp's dark end
    assert np.allclose(heat[0, 0], [0.99, 1.0, 0.64])      # error >= max_error: the bright end
    count = write_side_by_side_video(tmp_path / "sbs.mp4", [(gt, pred)] * 3, fps=25)
    info = probe_video(tmp_path / "sbs.mp4")
    assert count == 3 and info["frames"] == 3 and (info["width"], info["height"]) == (64, 16)
