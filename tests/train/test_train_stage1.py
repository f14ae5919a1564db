"""Stage-1 fitting end to end on a tiny synthetic subject: it learns, it resumes exactly, it fails clearly."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from train_fixtures import make_dataset, tiny_head  # noqa: E402

from emo_backend.errors import EmoSplatError  # noqa: E402

SIZE = 24
GAUSSIANS = 120


@pytest.fixture(scope="module")
def avatar():
    from emo_backend.avatar.init import init_avatar_from_head

    return init_avatar_from_head(tiny_head(), GAUSSIANS, seed=0)


@pytest.fixture(scope="module")
def masked_data(tmp_path_factory, avatar):
    root = tmp_path_factory.mktemp("masked") / "data"
    make_dataset(root, avatar, size=SIZE, frames=6, masks=True, test_frames=2)
    return root


@pytest.fixture(scope="module")
def unmasked_data(tmp_path_factory, avatar):
    root = tmp_path_factory.mktemp("unmasked") / "data"
    make_dataset(root, avatar, size=SIZE, frames=4, masks=False)
    return root


def _config(**kw):
    from emo_backend.train.stage1 import Stage1Config

    base = dict(densify_from=6, densify_every=8, densify_until=20, checkpoint_every=5, eval_frames=6,
                progress=False)
    return Stage1Config(**{**base, **kw})


def test_stage1_learns_the_subject(tmp_path, masked_data, avatar):
    from emo_backend.avatar.bundle import load_avatar
    from emo_backend.data.dataset import load_dataset
    from emo_backend.train.stage1 import TrainingFrames, evaluate_frames, train_stage1

    frames = TrainingFrames(load_dataset(masked_data))
    before = evaluate_frames(avatar, frames, torch.zeros(3), 6, "torch", torch.device("cpu"))
    # One densification (at 10) early enough for the split Gaussians to settle before the end.
    metrics = train_stage1(masked_data, tmp_path / "run", iterations=30, backend="torch", seed=0,
                           config=_config(densify_every=10, densify_until=12), init_avatar=avatar)
    losses = [h["loss"] for h in metrics["history"]]
    assert len(losses) == 30 and all(math.isfinite(x) for x in losses)
    assert sum(losses[-8:]) / 8 < sum(losses[:8]) / 8, losses
    assert metrics["train"]["l1"] < 0.8 * before["l1"], (before, metrics["train"])
    assert metrics["train"]["psnr"] > before["psnr"] + 1.0, (before, metrics["train"])
    assert metrics["test"]["frames"] == 2 and math.isfinite(metrics["test"]["psnr"])
    assert metrics["gaussians"] != GAUSSIANS  # density control ran (clone/split/prune)

    trained = load_avatar(tmp_path / "run" / "avatar")
    assert trained.num_gaussians == metrics["gaussians"]
    assert trained.training["stage"] == 1
    assert not torch.equal(trained.delta_colors, torch.zeros_like(trained.delta_colors))  # ΔB_k were trained
    on_disk = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert on_disk["train"]["psnr"] == pytest.approx(metrics["train"]["psnr"])
    assert (tmp_path / "run" / "checkpoints" / "latest.safetensors").is_file()


def test_resume_matches_an_uninterrupted_run(tmp_path, unmasked_data, avatar):
    from emo_backend.avatar.bundle import load_avatar
    from emo_backend.train.checkpoint import load_checkpoint
    from emo_backend.train.stage1 import train_stage1

    cfg = _config(densify_from=3, densify_every=4, densify_until=10, checkpoint_every=3)
    straight = train_stage1(unmasked_data, tmp_path / "a", iterations=12, backend="torch", seed=3, config=cfg,
                            init_avatar=avatar)
    stopped = train_stage1(unmasked_data, tmp_path / "b", iterations=12, backend="torch", seed=3, config=cfg,
                           init_avatar=avatar, stop_after=7)
    assert stopped["stopped_at"] == 7 and not (tmp_path / "b" / "avatar").exists()
    assert load_checkpoint(tmp_path / "b" / "checkpoints" / "latest.safetensors").step == 7
    resumed = train_stage1(unmasked_data, tmp_path / "b", resume=True, config=_config(progress=False))

    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "latest.safetensors")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "latest.safetensors")
    assert a.step == b.step == 12
    for name, t in a.params.items():
        assert t.shape == b.params[name].shape, name
        torch.testing.assert_close(b.params[name], t, rtol=0, atol=1e-6, msg=name)
    assert resumed["final_loss"] == pytest.approx(straight["final_loss"], abs=1e-6)
    assert resumed["gaussians"] == straight["gaussians"]
    torch.testing.assert_close(load_avatar(tmp_path / "b" / "avatar").colors,
                               load_avatar(tmp_path / "a" / "avatar").colors, rtol=0, atol=1e-6)
    # Without masks the background comes from the frames' borders (make_dataset's (0.2, 0.3, 0.4)).
    assert straight["background"] == pytest.approx([0.2, 0.3, 0.4], abs=0.01)


def test_clear_errors(tmp_path, unmasked_data, avatar):
    from emo_backend.train.stage1 import train_stage1

    with pytest.raises(EmoSplatError, match="no checkpoint"):
        train_stage1(unmasked_data, tmp_path / "none", iterations=2, backend="torch", resume=True)
    with pytest.raises(EmoSplatError, match="no gradients"):
        train_stage1(unmasked_data, tmp_path / "cpu", iterations=2, backend="cpu", init_avatar=avatar)
    with pytest.raises(EmoSplatError, match="starting avatar"):
        train_stage1(unmasked_data, tmp_path / "nohead", iterations=2, backend="torch")
    with pytest.raises(EmoSplatError, match="lpips_backbone"):
        train_stage1(unmasked_data, tmp_path / "lpips", iterations=1, backend="torch",
                     config=_config(lpips_weight=0.1), init_avatar=avatar)
    train_stage1(unmasked_data, tmp_path / "run", iterations=1, backend="torch", config=_config(), init_avatar=avatar)
    with pytest.raises(EmoSplatError, match="--resume"):
        train_stage1(unmasked_data, tmp_path / "run", iterations=1, backend="torch", init_avatar=avatar)
