"""`emosplat eval` and `emosplat train` end to end on the tiny synthetic subject."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "train"))
from train_fixtures import make_dataset, target_avatar, tiny_head  # noqa: E402

from emo_backend.errors import EmoSplatError  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from emo_backend.avatar.bundle import save_avatar
    from emo_backend.avatar.init import init_avatar_from_head

    root = tmp_path_factory.mktemp("eval")
    avatar = init_avatar_from_head(tiny_head(), 120, seed=0)
    truth = make_dataset(root / "data", avatar, size=24, frames=3, masks=True, test_frames=3)
    save_avatar(avatar, root / "init_avatar", half=False)
    save_avatar(target_avatar(avatar), root / "true_avatar", half=False)
    return root, truth


def _cli(module, argv):
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return module.run(parser.parse_args(argv))


def test_eval_ranks_the_true_avatar_first(setup, tmp_path):
    from emo_backend.eval.run import SKIPPED_LANDMARKS, SKIPPED_LPIPS, evaluate_avatar

    root, _ = setup
    good = evaluate_avatar(root / "true_avatar", root / "data", tmp_path / "good.json", backend="torch",
                           video=tmp_path / "sbs.mp4")
    bad = evaluate_avatar(root / "init_avatar", root / "data", tmp_path / "bad.json", backend="torch")
    assert good["split"] == "test" and good["frames"] == 3
    assert good["summary"]["psnr"] > bad["summary"]["psnr"] + 3.0, (good["summary"], bad["summary"])
    assert good["summary"]["ssim"] > bad["summary"]["ssim"]
    assert good["summary"]["lpips"] == SKIPPED_LPIPS and good["summary"]["landmarks"] == SKIPPED_LANDMARKS
    on_disk = json.loads((tmp_path / "good.json").read_text())
    assert on_disk["summary"]["psnr"] == pytest.approx(good["summary"]["psnr"])
    assert good["video_frames"] == 3 and (tmp_path / "sbs.mp4").stat().st_size > 0


def test_eval_with_predicted_motion(setup, tmp_path):
    from emo_backend.eval.run import evaluate_avatar

    root, truth = setup
    t = truth["test"]
    exact = tmp_path / "exact"
    exact.mkdir()
    np.savez(exact / "clip_test.npz", expression=t["expression"].numpy(), pose=t["pose"].numpy())
    report = evaluate_avatar(root / "true_avatar", root / "data", tmp_path / "m.json", backend="torch", motion=exact)
    assert report["driven_by"] == "predicted motion"
    assert report["summary"]["lmd_face"] == pytest.approx(0.0, abs=1e-4)
    assert report["summary"]["lmv_mouth"] == pytest.approx(0.0, abs=1e-4)

    off = tmp_path / "off"
    off.mkdir()
    pose = t["pose"].numpy().copy()
    pose[:, 2, 0] += np.array([0.0, 0.2, 0.4])  # the jaw opens more and more
    np.savez(off / "clip_test.npz", expression=t["expression"].numpy(), pose=pose)
    worse = evaluate_avatar(root / "true_avatar", root / "data", tmp_path / "w.json", backend="torch", motion=off)
    assert worse["summary"]["lmd_face"] > 0.05 and worse["summary"]["lmv_face"] > 0.05
    assert worse["summary"]["psnr"] < report["summary"]["psnr"]

    np.savez(off / "clip_test.npz", expression=t["expression"].numpy()[:2], pose=pose)
    with pytest.raises(EmoSplatError, match="expression"):
        evaluate_avatar(root / "true_avatar", root / "data", tmp_path / "x.json", backend="torch", motion=off)


def test_eval_and_train_commands(setup, tmp_path, capsys):
    from emo_backend.commands import eval as eval_cmd
    from emo_backend.commands import train as train_cmd

    root, _ = setup
    out = tmp_path / "report.json"
    args = ["--avatar", str(root / "true_avatar"), "--data", str(root / "data"), "--out", str(out),
            "--backend", "torch", "--split", "train"]
    assert _cli(eval_cmd, args) == 0
    assert json.loads(out.read_text())["split"] == "train" and "PSNR" in capsys.readouterr().out
    with pytest.raises(EmoSplatError, match="--overwrite"):
        _cli(eval_cmd, args)
    with pytest.raises(EmoSplatError, match="LPIPS needs both"):
        _cli(eval_cmd, [*args, "--overwrite", "--lpips-heads", "x.pth"])

    with pytest.raises(EmoSplatError, match="stage2 needs --avatar"):
        _cli(train_cmd, ["stage2", "--data", str(root / "data"), "--out", str(tmp_path / "r")])
    with pytest.raises(EmoSplatError, match="dataset.json"):
        _cli(train_cmd, ["stage1", "--data", str(tmp_path), "--out", str(tmp_path / "r")])
    assert _cli(train_cmd, ["stage1", "--data", str(root / "data"), "--out", str(tmp_path / "run"), "--iterations",
                            "2", "--backend", "torch", "--init-avatar", str(root / "init_avatar"),
                            "--no-progress"]) == 0
    assert (tmp_path / "run" / "avatar" / "avatar.json").is_file()
    assert "stage 1 done" in capsys.readouterr().out
