"""The shot: spec validation, rendering to RGBA PNG + depth EXR, skipping finished frames, placement."""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from emo_backend import shot
from emo_backend.files.images import read_png

DATA = Path(__file__).resolve().parent / "data"


def minimal_spec(**changes) -> dict:
    spec = json.loads((DATA / "shot_minimal.json").read_text())
    spec.update(changes)
    return spec


def read_depth(path: Path) -> np.ndarray:
    from emo_backend.files.images import read_exr_depth

    return read_exr_depth(path)


@pytest.fixture(scope="module")
def avatar_path(tmp_path_factory) -> str:
    """A real (untrained-initialisation) avatar on the avatar tests' small synthetic head, with the FACS bases."""
    spec = importlib.util.spec_from_file_location("avatar_test_head", DATA.parent / "avatar" / "avatar_test_head.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from emo_backend.avatar.bundle import save_avatar
    from emo_backend.avatar.init import init_avatar_from_head
    from emo_backend.head.expressions import ACTION_UNITS

    head = module.synthetic_head(num_expressions=len(ACTION_UNITS), seed=0, subdivisions=2)
    avatar = init_avatar_from_head(head, 1500, seed=0)
    return str(save_avatar(avatar, tmp_path_factory.mktemp("avatar") / "synthetic", overwrite=True))


# ---------------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "change, field",
    [
        ({"version": 2}, "'version'"),
        ({"fps": 0}, "'fps'"),
        ({"frame_range": [5, 2]}, "'frame_range'"),
        ({"resolution": [96]}, "'resolution'"),
        ({"emotion": {"weights": [[1, 0, 0, 0, 0, 0, 0, 0]] * 2, "intensity": 0.5}}, "'emotion.weights'"),
        ({"emotion": {"weights": [0] * 8, "intensity": 0.5}}, "'emotion.weights'"),
        ({"emotion": {"weights": [1, 0, 0, 0, 0, 0, 0, 0], "intensity": 1.5}}, "'emotion.intensity'"),
        ({"blink": [0, 2, 0]}, "'blink'"),
        ({"camera": {"K": [[0, 0, 48], [0, 200, 48], [0, 0, 1]], "viewmat": np.eye(4).tolist()}}, "'camera.K'"),
        ({"camera": {"K": np.eye(3).tolist(), "viewmat": (2 * np.eye(4)).tolist()}}, "'camera.viewmat'"),
        ({"avatar_matrix": np.diag([1.0, 2.0, 1.0, 1.0]).tolist()}, "'avatar_matrix'"),
        ({"avatar_matrix": np.diag([-1.0, 1.0, 1.0, 1.0]).tolist()}, "'avatar_matrix'"),
        ({"output": {"folder": "x", "stem": "../up"}}, "'output.stem'"),
        ({"output": {"folder": "x", "format": "jpg"}}, "'output.format'"),
        ({"backend": "vulkan"}, "'backend'"),
        ({"device": "cpu", "backend": "gsplat"}, "'backend'"),
        ({"audio": "missing.wav"}, "'audio'"),
    ],
)
def test_bad_fields_are_named(change, field, tmp_path):
    with pytest.raises(shot.ShotSpecError, match=field):
        shot.parse_shot_spec(minimal_spec(**change), base_dir=tmp_path)


def test_missing_field_is_named():
    spec = minimal_spec()
    del spec["camera"]
    with pytest.raises(shot.ShotSpecError, match="'camera'.*missing"):
        shot.parse_shot_spec(spec)


def test_single_values_hold_for_the_whole_shot_and_round_trip(tmp_path):
    spec = shot.parse_shot_spec(minimal_spec(emotion={"weights": [0, 0, 0, 0, 0, 1, 0, 0], "intensity": 0.5},
                                             blink="auto"), base_dir=tmp_path)
    assert spec.weights.shape == (3, 8) and spec.intensity.tolist() == [0.5] * 3 and spec.blink is None
    assert spec.K.shape == (3, 3, 3) and spec.avatar_matrix.shape == (3, 4, 4)
    assert spec.output_dir == tmp_path / "frames"  # relative to the spec's folder
    assert spec.image_path(2).name == "avatar_0002.png" and spec.depth_path(2).name == "avatar_depth_0002.exr"
    again = shot.parse_shot_spec(json.loads(json.dumps(shot.shot_spec_to_json(spec))))
    for name in ("weights", "intensity", "K", "viewmat", "avatar_matrix"):
        np.testing.assert_array_equal(getattr(again, name), getattr(spec, name))


def test_load_shot_spec_names_the_file(tmp_path):
    path = tmp_path / "shot.json"
    path.write_text("{not json")
    with pytest.raises(shot.EmoSplatError, match="shot.json"):
        shot.load_shot_spec(path)


# ---------------------------------------------------------------------------------------------- placement


def test_place_gaussians_is_a_similarity_transform():
    gen = torch.Generator().manual_seed(0)
    means = torch.randn(20, 3, generator=gen)
    quats = torch.nn.functional.normalize(torch.randn(20, 4, generator=gen), dim=-1)
    scales = torch.rand(20, 3, generator=gen) + 0.1
    angle = 0.7
    rot = torch.tensor([[math.cos(angle), 0, math.sin(angle)], [0, 1, 0], [-math.sin(angle), 0, math.cos(angle)]])
    matrix = torch.eye(4)
    matrix[:3, :3] = 2.0 * rot
    matrix[:3, 3] = torch.tensor([0.1, -0.2, 0.3])
    m2, q2, s2 = shot.place_gaussians(means, quats, scales, matrix)
    from emo_backend.avatar.rotations import quat_to_matrix

    def covariance(q, s):
        r = quat_to_matrix(q)
        return r @ torch.diag_embed(s**2) @ r.transpose(-1, -2)

    torch.testing.assert_close(m2, means @ (2.0 * rot).T + matrix[:3, 3])
    torch.testing.assert_close(covariance(q2, s2), 4.0 * rot @ covariance(quats, scales) @ rot.T, atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------------------------------------- rendering


def test_render_writes_rgba_and_depth_then_skips_and_rerenders_only_changes(avatar_path, tmp_path):
    spec = shot.parse_shot_spec(minimal_spec(avatar=avatar_path), base_dir=tmp_path)
    seen = []
    result = shot.render_shot(spec, progress=lambda done, total, frame: seen.append((done, total, frame)))
    assert result.rendered == [1, 2, 3] and seen == [(1, 3, 1), (2, 3, 2), (3, 3, 3)]
    rgba = read_png(spec.image_path(1))
    assert rgba.shape == (96, 96, 4) and rgba.dtype == np.uint8
    assert rgba[0, 0, 3] == 0 and rgba[48, 48, 3] > 200  # empty corner, covered centre
    assert (rgba[..., :3][rgba[..., 3] == 0] == 0).all()  # nothing where nothing is covered
    depth = read_depth(spec.depth_path(1))
    assert depth.shape == (96, 96) and np.isinf(depth[0, 0])
    # Camera 0.6 m in front of a 0.1 m-radius head: the nearest surface lies ~0.5 m away.
    assert 0.45 < depth[48, 48] < 0.56

    again = shot.render_shot(spec)
    assert again.rendered == [] and again.skipped == [1, 2, 3]
    changed = minimal_spec(avatar=avatar_path)
    changed["emotion"]["weights"][1] = [0, 1, 0, 0, 0, 0, 0, 0]
    result = shot.render_shot(shot.parse_shot_spec(changed, base_dir=tmp_path))
    assert result.rendered == [2] and result.skipped == [1, 3]

    # Deterministic: a fresh render of the same spec gives the same bytes.
    fresh = shot.parse_shot_spec(minimal_spec(avatar=avatar_path, output={"folder": "again", "stem": "avatar"}),
                                 base_dir=tmp_path)
    shot.render_shot(fresh, only_frames=[1])
    assert fresh.image_path(1).read_bytes() == spec.image_path(1).read_bytes()


def test_avatar_matrix_moves_and_scales_the_head(avatar_path, tmp_path):
    base = dict(frame_range=[1, 1], avatar=avatar_path, blink=0.0,
                emotion={"weights": [1, 0, 0, 0, 0, 0, 0, 0], "intensity": 0.0})
    moved = np.eye(4)
    moved[0, 3] = 0.05  # 5 cm to the avatar's +X: right in this camera, by fx * 0.05 / 0.6 ~ 16.7 px
    scaled = np.diag([1.5, 1.5, 1.5, 1.0])

    def render(matrix, folder):
        spec = shot.parse_shot_spec(minimal_spec(**base, avatar_matrix=matrix.tolist(),
                                                 output={"folder": folder}), base_dir=tmp_path)
        shot.render_shot(spec)
        alpha = read_png(spec.image_path(1))[..., 3].astype(np.float64) / 255
        cols = np.arange(96)[None, :]
        return (alpha * cols).sum() / alpha.sum(), alpha.sum(), read_depth(spec.depth_path(1))

    cx0, area0, depth0 = render(np.eye(4), "identity")
    cx1, _, _ = render(moved, "moved")
    _, area2, depth2 = render(scaled, "scaled")
    assert cx1 - cx0 == pytest.approx(200 * 0.05 / 0.6, abs=2.0)
    assert area2 > 1.8 * area0  # 1.5x the size: ~2.25x the area, less where it leaves the frame
    assert np.nanmin(depth2) < np.nanmin(depth0) - 0.03  # the bigger head's front is nearer the camera


def test_cancel_stops_between_frames_and_keeps_finished_ones(avatar_path, tmp_path):
    spec = shot.parse_shot_spec(minimal_spec(avatar=avatar_path), base_dir=tmp_path)
    calls = []
    result = shot.render_shot(spec, cancel=lambda: calls.append(1) or len(calls) > 1)
    assert result.cancelled and result.frames == [1] and spec.image_path(1).is_file()
    assert not spec.image_path(2).exists()
    assert shot.render_shot(spec).rendered == [2, 3]  # the rerun continues


def test_render_command_renders_a_spec_file(avatar_path, tmp_path, capsys):
    from emo_backend.commands import render as render_command

    (tmp_path / "shot.json").write_text(json.dumps(minimal_spec(avatar=avatar_path)))
    parser = argparse.ArgumentParser()
    render_command.add_arguments(parser)
    args = parser.parse_args(["--shot", str(tmp_path / "shot.json"), "--out", str(tmp_path / "cli"),
                              "--frames", "2-3"])
    assert render_command.run(args) == 0
    assert sorted(p.name for p in (tmp_path / "cli").glob("*.png")) == ["avatar_0002.png", "avatar_0003.png"]
    assert "wrote 2 frames" in capsys.readouterr().out
    bad = parser.parse_args(["--shot", str(tmp_path / "shot.json"), "--frames", "9-12"])
    with pytest.raises(shot.EmoSplatError, match="--frames"):
        render_command.run(bad)


def test_auto_blink_closes_the_eyes_somewhere_in_a_long_shot():
    spec = shot.parse_shot_spec(minimal_spec(frame_range=[0, 249], blink="auto",
                                             emotion={"weights": [1, 0, 0, 0, 0, 0, 0, 0], "intensity": 0.0}))
    from emo_backend.head.expressions import ACTION_UNITS, au_indices

    expression, pose = shot.frame_controls(spec, len(ACTION_UNITS))
    blink = expression[:, au_indices("AU45")]
    assert blink.max() > 0.99 and blink.min() == 0.0  # 10 s at 25 fps: several full blinks, open in between
    again, _ = shot.frame_controls(copy.deepcopy(spec), len(ACTION_UNITS))
    torch.testing.assert_close(expression, again)
    assert pose.shape == (250, 5, 3) and pose[:, 2, 0].abs().max() == 0  # neutral: the jaw stays shut


def test_render_without_a_spec_writes_frames_and_a_video_with_audio(avatar_path, tmp_path, capsys):
    import av
    import soundfile

    from emo_backend.commands import render as render_command

    rate = 16000
    t = np.arange(int(0.2 * rate)) / rate
    soundfile.write(tmp_path / "speech.wav", (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), rate)
    parser = argparse.ArgumentParser()
    render_command.add_arguments(parser)
    args = parser.parse_args(["--audio", str(tmp_path / "speech.wav"), "--emotion", "happy@0.8", "--out",
                              str(tmp_path / "frames"), "--avatar", avatar_path, "--size", "48", "--backend", "cpu",
                              "--video", str(tmp_path / "shot.mp4")])
    assert render_command.run(args) == 0
    assert len(list((tmp_path / "frames").glob("avatar_0*.png"))) == 5  # 0.2 s at 25 fps
    alpha = read_png(tmp_path / "frames" / "avatar_0000.png")[..., 3]
    assert alpha[24, 24] > 200 and alpha[0, 0] == 0  # the front camera frames the head
    with av.open(str(tmp_path / "shot.mp4")) as container:
        assert {s.type for s in container.streams} == {"video", "audio"}
        assert sum(1 for _ in container.decode(video=0)) == 5
    with pytest.raises(shot.EmoSplatError, match="--out"):
        render_command.run(parser.parse_args(["--emotion", "sad"]))


@pytest.mark.cuda
def test_gsplat_on_cuda_matches_the_cpu_renderer(avatar_path, tmp_path):
    """The same shot through gsplat (CUDA) and the numba CPU renderer: the same pixels and depth."""
    out = {}
    for backend, device in (("cpu", "cpu"), ("gsplat", "cuda")):
        spec = shot.parse_shot_spec(minimal_spec(avatar=avatar_path, backend=backend, device=device,
                                                 output={"folder": backend}), base_dir=tmp_path)
        result = shot.render_shot(spec, only_frames=[2])
        assert result.backend == backend
        out[backend] = (read_png(spec.image_path(2)).astype(np.float64), read_depth(spec.depth_path(2)))
    (rgba_cpu, depth_cpu), (rgba_gpu, depth_gpu) = out["cpu"], out["gsplat"]
    assert np.abs(rgba_cpu - rgba_gpu).mean() < 1.0  # mean difference under one 8-bit level
    both = np.isfinite(depth_cpu) & np.isfinite(depth_gpu) & (rgba_cpu[..., 3] > 250)
    np.testing.assert_allclose(depth_gpu[both], depth_cpu[both], atol=2e-3)


# ---------------------------------------------------------------------------------------------- A2ET + stage 2


def test_a2et_and_stage2_drive_the_face_when_installed(avatar_path, tmp_path, monkeypatch):
    """With A2ET weights installed and audio in the spec, speech moves the face; an avatar's stage 2 adds to it."""
    import shutil

    import soundfile

    from emo_backend.audio.features import logmel_dim
    from emo_backend.avatar.bundle import load_avatar
    from emo_backend.motion.a2et import A2ET, A2ETConfig
    from emo_backend.motion.egd import EGD, EGDConfig
    from emo_backend.motion.weights import save_module

    names = list(load_avatar(avatar_path).head.expr_names)
    torch.manual_seed(0)
    a2et = A2ET(A2ETConfig(audio_dim=logmel_dim(), num_expressions=len(names), d_model=16, num_layers=1, num_heads=2))
    torch.nn.init.normal_(a2et.head.weight, std=0.3)  # a trained network is not silent; an untrained one is
    assets = tmp_path / "assets"
    save_module(a2et, assets / "models" / "a2et", "a2et", a2et.cfg.to_dict(), {"expression_names": names})
    monkeypatch.setenv("EMOSPLAT_ASSETS", str(assets))
    rate = 16000
    t = np.arange(rate // 5) / rate
    soundfile.write(tmp_path / "speech.wav", (0.4 * np.sin(2 * np.pi * 220 * t) * (t > 0.05)).astype(np.float32), rate)

    def render(folder: str, **changes):
        spec = shot.parse_shot_spec(minimal_spec(avatar=str(changes.pop("avatar", avatar_path)), audio="speech.wav",
                                                 output={"folder": folder}, **changes), base_dir=tmp_path)
        shot.render_shot(spec)
        return [read_png(spec.image_path(f)).astype(int) for f in spec.frames]

    spec = shot.parse_shot_spec(minimal_spec(avatar=avatar_path, audio="speech.wav"), base_dir=tmp_path)
    drive = shot.shot_drive(spec, load_avatar(avatar_path), Path(avatar_path))
    assert drive.source == "a2et" and drive.egd is None and drive.features.shape[0] == spec.num_frames
    recipe = render("recipe", motion="recipe")
    speech = render("speech")
    assert any(np.abs(a - b).max() > 10 for a, b in zip(recipe, speech))

    avatar_copy = tmp_path / "with_stage2"
    shutil.copytree(avatar_path, avatar_copy)
    egd = EGD(EGDConfig(audio_dim=logmel_dim()))
    torch.nn.init.normal_(egd.head.weight, std=0.5)
    save_module(egd, avatar_copy / "stage2", "egd", egd.cfg.to_dict())
    with_stage2 = render("stage2", avatar=avatar_copy)
    assert any(np.abs(a - b).max() > 10 for a, b in zip(speech, with_stage2))

    with pytest.raises(shot.ShotSpecError, match="'motion'"):
        shot.parse_shot_spec(minimal_spec(motion="a2et"), base_dir=tmp_path)  # no audio to follow
