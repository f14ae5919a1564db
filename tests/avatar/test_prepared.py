"""The inference fast path (`avatar.prepared`) gives `blendshapes.evaluate`'s Gaussians."""

from dataclasses import replace

import pytest
import torch

from emo_backend.avatar.blendshapes import evaluate
from emo_backend.avatar.prepared import evaluate_prepared, prepare_avatar
from emo_backend.motion.pipeline import skin_rotations

FIELDS = ("means", "quats", "log_scales", "opacity_logits", "colors")


def frames(avatar, batch=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    expression = torch.randn(batch, avatar.num_expressions, generator=g) * 0.7
    pose = torch.randn(batch, 5, 3, generator=g) * 0.25
    translation = torch.randn(batch, 3, generator=g) * 0.01
    return expression, pose, translation


def assert_same(avatar, pose_stretch=True, seed=0):
    """Both kernels of the fast path give evaluate's Gaussians, mesh and skin rotations."""
    expression, pose, translation = frames(avatar, seed=seed)
    ref, ref_posed = evaluate(avatar, expression, pose, translation, pose_stretch=pose_stretch)
    prepared = prepare_avatar(avatar)
    for kernel in ("torch", "numba"):
        fast, posed, rotation = evaluate_prepared(prepared, expression, pose, translation,
                                                  pose_stretch=pose_stretch, kernel=kernel)
        for name in FIELDS:
            torch.testing.assert_close(getattr(fast, name), getattr(ref, name).detach(), atol=1e-5, rtol=1e-5,
                                       msg=lambda m: f"{kernel} {name}: {m}")
        torch.testing.assert_close(posed.vertices, ref_posed.vertices, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(rotation, skin_rotations(avatar, posed), atol=1e-6, rtol=1e-5)
    return prepared


def test_delta_features_from_the_cached_corners(avatar):
    from emo_backend.avatar.prepared import delta_features_prepared
    from emo_backend.motion.egd import delta_mesh_features

    delta = torch.randn(2, avatar.head.num_vertices, 3, generator=torch.Generator().manual_seed(0))
    expected = delta_mesh_features(delta, avatar.head.faces, avatar.face_ids, avatar.bary)
    torch.testing.assert_close(delta_features_prepared(prepare_avatar(avatar), delta), expected)


@pytest.mark.parametrize("pose_stretch", [True, False])
def test_prepared_equals_evaluate(avatar, pose_stretch):
    assert_same(avatar, pose_stretch)


def test_dense_deltas_take_the_dense_matmul(avatar):
    g = torch.Generator().manual_seed(6)
    dense = avatar.with_tensors(delta_means=torch.randn(avatar.delta_means.shape, generator=g) * 1e-3)
    prepared = assert_same(dense)
    assert prepared.deltas.layout == torch.strided


def test_prepared_equals_evaluate_with_sparse_deltas_of_every_kind(avatar):
    # Deltas on a few Gaussians only, colour and opacity deltas too, rotation deltas on a different subset.
    g = torch.Generator().manual_seed(1)
    e, n = avatar.num_expressions, avatar.num_gaussians
    keep = torch.rand(e, n, 1, generator=g) < 0.1
    sparse = avatar.with_tensors(
        delta_means=avatar.delta_means * keep,
        delta_rotations=torch.randn(e, n, 3, generator=g) * 0.2 * (torch.rand(e, n, 1, generator=g) < 0.05),
        delta_colors=torch.randn(e, n, 3, generator=g) * 0.1 * keep,
        delta_opacity_logits=torch.randn(e, n, generator=g) * keep[..., 0],
    )
    prepared = assert_same(sparse)
    assert {"delta_means", "delta_rotations", "delta_colors", "delta_opacity_logits"} <= set(prepared.delta_slices)
    assert 0 < prepared.rotated.numel() < n


def test_prepared_equals_evaluate_without_deltas_and_with_pose_correctives(avatar):
    zero = {name: torch.zeros_like(getattr(avatar, name)) for name in
            ("delta_means", "delta_rotations", "delta_log_scales", "delta_colors", "delta_opacity_logits")}
    still = avatar.with_tensors(**zero)
    assert prepare_avatar(still).deltas is None
    assert_same(still)
    head = avatar.head
    joints = head.parents.shape[0]
    g = torch.Generator().manual_seed(2)
    posedirs = torch.randn(9 * (joints - 1), 3 * head.num_vertices, generator=g) * 1e-3
    corrective = replace(avatar, head=replace(head, posedirs=posedirs))
    prepared = assert_same(corrective, seed=3)
    assert prepared.stretch_ids.numel() > 0  # every non-rigid Gaussian can stretch with pose correctives


def test_prepared_equals_evaluate_on_the_default_avatar():
    from emo_backend.avatar.bundle import load_avatar
    from emo_backend.errors import InvalidFileError

    try:
        avatar = load_avatar("default")
    except InvalidFileError:
        pytest.skip("the default avatar is not installed")
    assert_same(avatar)
