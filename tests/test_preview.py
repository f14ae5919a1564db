"""The rig test: its timeline, and `emosplat preview` end to end on a small avatar."""

import importlib.util
from pathlib import Path

import pytest

from emo_backend.cli import main
from emo_backend.files.video import probe_video
from emo_backend.head.expressions import ACTION_UNITS
from emo_backend.preview import JAW, NECK, rig_test_timeline


def test_timeline_turns_opens_blinks_and_shows_every_basis():
    t = rig_test_timeline(ACTION_UNITS, fps=25)
    frames = t.expression.shape[0]
    assert frames / 25 >= 6.0 and t.pose.shape == (frames, 5, 3) and len(t.labels) == frames
    assert t.pose[:, NECK, 1].max() > 0.5 and t.pose[:, NECK, 1].min() < -0.5  # turns both ways (radians)
    assert t.pose[:, JAW, 0].max() > 0.25
    for k, name in enumerate(ACTION_UNITS):
        shown = [i for i, label in enumerate(t.labels) if label.endswith(f": {name}")]
        assert shown and t.expression[shown, k].max() > 0.99, name
    assert t.expression[0].abs().max() == 0 and t.expression[-1].abs().max() < 1e-6  # starts and ends neutral


@pytest.fixture(scope="module")
def small_avatar(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("avatar_test_head", Path(__file__).parent / "avatar" / "avatar_test_head.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from emo_backend.avatar.bundle import save_avatar
    from emo_backend.avatar.init import init_avatar_from_head

    head = module.synthetic_head(num_expressions=4, seed=0, subdivisions=2)
    return save_avatar(init_avatar_from_head(head, 800, seed=0), tmp_path_factory.mktemp("a") / "avatar")


def test_preview_command_writes_the_video_and_refuses_to_overwrite(small_avatar, tmp_path, capsys):
    out = tmp_path / "preview.mp4"
    assert main(["preview", "--avatar", str(small_avatar), "--out", str(out), "--size", "32"]) == 0
    info = probe_video(out)
    assert info["width"] == 32 and info["fps"] == 25.0 and info["frames"] / 25 >= 6.0
    assert "wrote" in capsys.readouterr().out
    assert main(["preview", "--avatar", str(small_avatar), "--out", str(out), "--size", "32"]) == 2
    assert "--overwrite" in capsys.readouterr().err
