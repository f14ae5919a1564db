import torch

from emo_backend.avatar.binding import PART_INDEX, interpolate
from emo_backend.avatar.blendshapes import blend, evaluate
from emo_backend.avatar.gaussians import activate
from emo_backend.avatar.rotations import axis_angle_to_quat, quat_multiply, quat_to_matrix
from emo_backend.head.lbs import axis_angle_to_matrix, lbs


def test_unit_expression_moves_means_onto_that_expression_mesh(avatar):
    e = avatar.num_expressions
    expression = torch.eye(e)  # frame k has ψ_k = 1
    g, posed = evaluate(avatar, expression, torch.zeros(e, 5, 3))
    target = interpolate(posed.vertices, avatar.head.faces, avatar.face_ids, avatar.bary)
    assert (g.means - target).abs().max() < 1e-5
    for k in range(e):  # and the bases really move something
        assert (g.means[k] - g.means[(k + 1) % e]).abs().max() > 1e-3


def test_rotation_delta_is_exact_at_unit_expression(avatar):
    e = avatar.num_expressions
    g = blend(avatar, torch.eye(e))
    for k in range(e):
        expected = quat_multiply(axis_angle_to_quat(avatar.delta_rotations[k]), avatar.quats)
        assert torch.allclose(g.quats[k], expected, atol=1e-6)
    neutral = blend(avatar, torch.zeros(1, e))
    assert torch.allclose(neutral.quats[0], avatar.quats, atol=1e-7)
    assert torch.allclose(neutral.log_scales[0], avatar.log_scales)


def test_jaw_rotation_moves_lower_teeth_rigidly_with_the_jaw(avatar):
    e = avatar.num_expressions
    pose = torch.zeros(1, 5, 3)
    pose[0, 2] = torch.tensor([0.35, 0.0, 0.0])  # open the jaw
    translation = torch.tensor([[0.01, -0.02, 0.03]])
    neutral, _ = evaluate(avatar, torch.zeros(1, e), torch.zeros(1, 5, 3))
    opened, posed = evaluate(avatar, torch.zeros(1, e), pose, translation)
    jaw = posed.transforms[0, 2]  # rest -> posed, translation included
    lower = avatar.parts == PART_INDEX["lower_teeth"]
    upper = avatar.parts == PART_INDEX["upper_teeth"]
    expected = neutral.means[0, lower] @ jaw[:3, :3].T + jaw[:3, 3]
    assert torch.allclose(opened.means[0, lower], expected, atol=1e-6)
    # Orientation follows the jaw too.
    r = quat_to_matrix(opened.quats[0, lower])
    assert torch.allclose(r, jaw[:3, :3] @ quat_to_matrix(neutral.quats[0, lower]), atol=1e-5)
    # Upper teeth do not follow the jaw: they only translate with the head.
    assert torch.allclose(opened.means[0, upper], neutral.means[0, upper] + translation, atol=1e-6)
    # The teeth actually moved apart.
    gap_before = neutral.means[0, upper, 1].mean() - neutral.means[0, lower, 1].mean()
    gap_after = opened.means[0, upper, 1].mean() - opened.means[0, lower, 1].mean()
    assert gap_after > gap_before + 0.005


def test_global_rotation_rotates_every_gaussian(avatar):
    e = avatar.num_expressions
    pose = torch.zeros(1, 5, 3)
    pose[0, 0] = torch.tensor([0.1, 0.7, -0.2])
    rot = axis_angle_to_matrix(pose[0, 0])
    neutral, _ = evaluate(avatar, torch.zeros(1, e), torch.zeros(1, 5, 3))
    posed_g, posed = evaluate(avatar, torch.zeros(1, e), pose)
    root = posed.joints[0, 0]
    expected = (neutral.means[0] - root) @ rot.T + root
    assert torch.allclose(posed_g.means[0], expected, atol=1e-6)
    assert torch.allclose(quat_to_matrix(posed_g.quats[0]), rot @ quat_to_matrix(neutral.quats[0]), atol=1e-5)


def test_mesh_from_evaluate_is_the_head_models_lbs(avatar):
    gen = torch.Generator().manual_seed(3)
    expression = torch.randn(4, avatar.num_expressions, generator=gen)
    pose = torch.randn(4, 5, 3, generator=gen) * 0.1
    _, posed = evaluate(avatar, expression, pose)
    assert torch.allclose(posed.vertices, lbs(avatar.head, expression, pose).vertices)


def test_batch_frames_are_independent(avatar):
    gen = torch.Generator().manual_seed(4)
    expression = torch.randn(3, avatar.num_expressions, generator=gen)
    pose = torch.randn(3, 5, 3, generator=gen) * 0.2
    batch, _ = evaluate(avatar, expression, pose)
    single, _ = evaluate(avatar, expression[1:2], pose[1:2])
    for name in ("means", "quats", "log_scales", "opacity_logits", "colors"):
        assert torch.allclose(getattr(batch, name)[1], getattr(single, name)[0], atol=1e-6), name
    assert batch.means.shape == (3, avatar.num_gaussians, 3)
    assert activate(batch.frame(0)).quats.norm(dim=-1).sub(1).abs().max() < 1e-5


def test_gradients_flow_to_neutral_gaussians_and_deltas(avatar):
    params = {k: v.clone().requires_grad_(True) for k, v in avatar.optimisable().items()}
    # Non-zero colour/opacity deltas so their gradient paths are exercised too.
    trainable = avatar.with_tensors(**params)
    expression = torch.rand(2, avatar.num_expressions, generator=torch.Generator().manual_seed(5))
    pose = torch.zeros(2, 5, 3)
    pose[:, 2, 0] = 0.2
    g, _ = evaluate(trainable, expression, pose)
    a = activate(g)
    loss = (a.means.square().sum() + a.quats.sum() + a.scales.sum() + a.opacities.sum() + a.colors.sum())
    loss.backward()
    for name, p in params.items():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_zero_offset_gaussians_stay_on_the_posed_mesh(avatar):
    gen = torch.Generator().manual_seed(6)
    expression = torch.randn(3, avatar.num_expressions, generator=gen)
    pose = torch.randn(3, 5, 3, generator=gen) * 0.3
    g, posed = evaluate(avatar, expression, pose, torch.randn(3, 3, generator=gen) * 0.01)
    target = interpolate(posed.vertices, avatar.head.faces, avatar.face_ids, avatar.bary)
    assert (g.means - target).abs().max() < 1e-5


def test_anchored_skinning_equals_plain_lbs_where_triangles_move_rigidly(avatar):
    from emo_backend.avatar.blendshapes import skin_gaussians

    e = avatar.num_expressions
    pose = torch.zeros(1, 5, 3)
    pose[0, 2, 0] = 0.3
    blended = blend(avatar, torch.zeros(1, e))
    posed = lbs(avatar.head, torch.zeros(1, e), pose)
    plain = skin_gaussians(blended, avatar.skin_weights, posed.transforms)
    anchored, _ = evaluate(avatar, torch.zeros(1, e), pose)
    rigid = avatar.parts == PART_INDEX["lower_teeth"]
    assert torch.allclose(plain.means[0, rigid], anchored.means[0, rigid], atol=1e-6)
    # Where a triangle spans jaw and skull, plain LBS leaves the mesh; the anchored form does not.
    target = interpolate(posed.vertices, avatar.head.faces, avatar.face_ids, avatar.bary)[0]
    assert (plain.means[0] - target).norm(dim=-1).max() > 1e-4
    assert (anchored.means[0] - target).norm(dim=-1).max() < 1e-5


def test_pose_stretch_is_zero_for_rigid_motion_and_opens_where_skin_stretches(avatar):
    e = avatar.num_expressions
    neutral, _ = evaluate(avatar, torch.zeros(1, e), torch.zeros(1, 5, 3))
    turned = torch.zeros(1, 5, 3)
    turned[0, 0] = torch.tensor([0.2, 0.8, 0.1])
    g, _ = evaluate(avatar, torch.zeros(1, e), turned)
    assert (g.log_scales - neutral.log_scales).abs().max() < 1e-4
    opened = torch.zeros(1, 5, 3)
    opened[0, 2, 0] = 0.4
    g, _ = evaluate(avatar, torch.zeros(1, e), opened)
    stretch = g.log_scales - neutral.log_scales
    assert stretch[..., :2].max() > 0.05  # skin between jaw and skull stretches
    assert stretch[..., 2].abs().max() < 1e-4  # thickness is kept
    teeth = avatar.parts == PART_INDEX["lower_teeth"]
    assert stretch[0, teeth].abs().max() < 1e-4  # rigid parts do not stretch
    plain, _ = evaluate(avatar, torch.zeros(1, e), opened, pose_stretch=False)
    assert torch.equal(plain.log_scales, blend(avatar, torch.zeros(1, e)).log_scales)
