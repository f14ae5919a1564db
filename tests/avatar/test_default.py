"""The shipped default avatar (assets/avatars/default) and its builder."""

import pytest
import torch

from emo_backend.avatar.binding import PART_INDEX, interpolate
from emo_backend.avatar.blendshapes import evaluate
from emo_backend.avatar.bundle import SOURCE_ASSETS, bundle_size_bytes, load_avatar, read_manifest, resolve_avatar_path
from emo_backend.errors import EmoSplatError
from emo_backend.head.expressions import ACTION_UNITS, au_indices

DEFAULT = SOURCE_ASSETS / "avatars" / "default"


def test_default_avatar_is_shipped_valid_and_small():
    assert resolve_avatar_path("default") == DEFAULT.resolve(), "build it: python -m emo_backend.avatar.default"
    manifest = read_manifest("default")
    assert manifest["head_model_id"].startswith("open-head")
    assert manifest["expr_names"] == list(ACTION_UNITS)
    assert 30_000 <= manifest["counts"]["gaussians"] <= 60_000
    assert bundle_size_bytes(DEFAULT) < 50e6  # trained deltas are dense: ~1.3M basis-Gaussian rows in float16
    avatar = load_avatar("default")
    for part in ("surface", "mouth_interior", "upper_teeth", "lower_teeth", "tongue", "eyeball"):
        assert (avatar.parts == PART_INDEX[part]).sum() > 200, part


def test_default_avatar_smiles_and_opens_its_jaw():
    avatar = load_avatar("default")
    e = avatar.num_expressions
    smile = torch.zeros(2, e)
    smile[1, au_indices("AU12")] = 1.0
    pose = torch.zeros(2, 5, 3)
    g, posed = evaluate(avatar, smile, pose)
    assert torch.isfinite(g.means).all() and torch.isfinite(g.log_scales).all()
    # Bound Gaussians stay near their triangles: a trained smile moves them off the mesh by millimetres, not more.
    anchors = interpolate(posed.vertices, avatar.head.faces, avatar.face_ids, avatar.bary)
    off = (g.means - anchors).norm(dim=-1)
    assert off.quantile(0.5) < 5e-3 and off.quantile(0.99) < 0.025 and off.max() < 0.06
    moved = (g.means[1] - g.means[0]).norm(dim=-1)
    assert moved.max() > 2e-3  # the lip corners move millimetres
    pose[1, 2, 0] = 0.3
    g, _ = evaluate(avatar, torch.zeros(2, e), pose)
    lower = avatar.parts == PART_INDEX["lower_teeth"]
    upper = avatar.parts == PART_INDEX["upper_teeth"]
    assert (g.means[1, lower, 1] - g.means[0, lower, 1]).mean() < -5e-3  # lower teeth drop
    assert (g.means[1, upper] - g.means[0, upper]).abs().max() < 1e-6  # upper teeth stay


def test_build_default_avatar_writes_a_loadable_bundle(tmp_path):
    from emo_backend.avatar.default import build_default_avatar

    head = load_avatar("default").head  # the open head, as shipped (skips the head build)
    path = build_default_avatar(tmp_path / "small.emosplat", num_gaussians=3000, head=head)
    avatar = load_avatar(path)
    assert avatar.num_gaussians == 3000 and avatar.head.model_id.startswith("open-head")
    assert (avatar.parts == PART_INDEX["lower_teeth"]).sum() > 0
    assert read_manifest(path)["license"]["head_model"].startswith("open-head")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(EmoSplatError, match="not an avatar bundle"):
        build_default_avatar(tmp_path / "other", num_gaussians=3000, head=head)


def test_eye_rotation_turns_only_that_eyeball():
    avatar = load_avatar("default")
    e = avatar.num_expressions
    pose = torch.zeros(2, 5, 3)
    pose[1, 3] = torch.tensor([0.0, 0.4, 0.0])  # left eye looks sideways
    g, posed = evaluate(avatar, torch.zeros(2, e), pose)
    left = (avatar.parts == PART_INDEX["eyeball"]) & (avatar.skin_weights[:, 3] == 1)
    right = (avatar.parts == PART_INDEX["eyeball"]) & (avatar.skin_weights[:, 4] == 1)
    assert left.sum() > 100 and right.sum() > 100
    eye = posed.transforms[1, 3]
    assert torch.allclose(g.means[1, left], g.means[0, left] @ eye[:3, :3].T + eye[:3, 3], atol=1e-6)
    assert (g.means[1, left] - g.means[0, left]).norm(dim=-1).max() > 3e-3
    assert (g.means[1, right] - g.means[0, right]).abs().max() < 1e-7
