import math

import torch

from emo_backend.avatar.binding import (
    PART_INDEX,
    bound_positions,
    deformation_gradients,
    face_normals,
    gaussian_skin_weights,
    interpolate,
    triangle_frames,
)
from emo_backend.avatar.blendshapes import evaluate
from emo_backend.head.lbs import axis_angle_to_matrix


def test_triangle_frames_are_right_handed_orthonormal_with_face_normal(head):
    frames = triangle_frames(head.v_template, head.faces)
    eye = torch.eye(3).expand_as(frames)
    assert torch.allclose(frames.transpose(-1, -2) @ frames, eye, atol=1e-5)
    assert torch.allclose(torch.det(frames), torch.ones(frames.shape[0]), atol=1e-5)
    assert torch.allclose(frames[..., 2], face_normals(head.v_template, head.faces), atol=1e-6)
    # Sphere faces are wound outwards: the normal points away from the centre.
    sphere = head.faces[: head.regions["lower_teeth"].min()]
    centres = head.v_template[sphere].mean(1)
    assert ((face_normals(head.v_template, sphere) * centres).sum(-1) > 0).all()


def test_neutral_evaluation_puts_gaussians_on_the_surface_plus_offset(avatar):
    gen = torch.Generator().manual_seed(1)
    offsets = torch.randn(avatar.num_gaussians, 3, generator=gen) * 1e-3
    moved = avatar.with_tensors(offsets=offsets)
    g, posed = evaluate(moved, torch.zeros(1, moved.num_expressions), torch.zeros(1, 5, 3))
    v = posed.vertices[0]
    tri = v[moved.head.faces[moved.face_ids]]  # [N, 3, 3]
    anchor = (tri * moved.bary[..., None]).sum(1)
    e1 = torch.nn.functional.normalize(tri[:, 1] - tri[:, 0], dim=-1)
    n = torch.nn.functional.normalize(torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), dim=-1)
    b = torch.linalg.cross(n, e1)
    expected = anchor + offsets[:, :1] * e1 + offsets[:, 1:2] * b + offsets[:, 2:] * n
    assert torch.allclose(g.means[0], expected, atol=1e-6)
    # Zero offset: exactly on the mesh.
    g0, _ = evaluate(avatar, torch.zeros(1, avatar.num_expressions), torch.zeros(1, 5, 3))
    assert torch.allclose(g0.means[0], interpolate(v, avatar.head.faces, avatar.face_ids, avatar.bary), atol=1e-7)


def test_bound_positions_batch_matches_single(head):
    face_ids = torch.tensor([0, 5, 17])
    bary = torch.tensor([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.1, 0.1, 0.8]])
    offsets = torch.tensor([[0.0, 0.0, 0.01], [0.002, 0.0, 0.0], [0.0, -0.003, 0.001]])
    verts = torch.stack([head.v_template, head.v_template * 1.1])
    both = bound_positions(verts, head.faces, face_ids, bary, offsets)
    assert torch.allclose(both[1], bound_positions(verts[1], head.faces, face_ids, bary, offsets))
    # The normal offset lies along the face normal.
    normal = face_normals(head.v_template, head.faces)[0]
    point = interpolate(head.v_template, head.faces, face_ids[:1], bary[:1])[0]
    assert torch.allclose(both[0, 0] - point, 0.01 * normal, atol=1e-7)


def test_deformation_gradient_of_rigid_motion_and_scale(head):
    rot = axis_angle_to_matrix(torch.tensor([0.3, -0.5, 0.2]))
    moved = head.v_template @ rot.T + torch.tensor([0.1, 0.2, -0.3])
    grads = deformation_gradients(head.v_template, moved, head.faces)
    assert torch.allclose(grads, rot.expand_as(grads), atol=1e-4)
    # Uniform scale: the triangle's plane stretches by s, the (unit) normal does not.
    s = 1.5
    grads = deformation_gradients(head.v_template.double(), head.v_template.double() * s, head.faces)
    n = face_normals(head.v_template.double(), head.faces)
    expected = s * torch.eye(3, dtype=torch.float64) + (1 - s) * n[:, :, None] * n[:, None, :]
    assert torch.allclose(grads, expected, atol=1e-9)


def test_rigid_parts_take_one_joint_and_skin_rows_sum_to_one(avatar):
    w = avatar.skin_weights
    assert torch.allclose(w.sum(-1), torch.ones(len(w)), atol=1e-6)
    for part in ("lower_teeth", "upper_teeth"):
        rows = w[avatar.parts == PART_INDEX[part]]
        assert len(rows) > 0
        assert ((rows == 1).sum(-1) == 1).all()
    lower = w[avatar.parts == PART_INDEX["lower_teeth"]]
    assert (lower.argmax(-1) == 2).all()  # the jaw


def test_skin_weights_interpolate_vertex_weights(head):
    face_ids = torch.tensor([3, 4])
    bary = torch.tensor([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]])
    parts = torch.zeros(2, dtype=torch.int64)
    w = gaussian_skin_weights(head, face_ids, bary, parts)
    expected = (head.lbs_weights[head.faces[face_ids]] * bary[..., None]).sum(1)
    assert torch.allclose(w, expected, atol=1e-6)
    assert math.isclose(float(w.sum()), 2.0, rel_tol=1e-6)


def test_degenerate_triangles_do_not_break_init_or_evaluate(head):
    from dataclasses import replace

    from emo_backend.avatar.init import init_avatar_from_head

    # Collapse one skin triangle to a point (as some scanned meshes have), in the rest and every expression.
    faces = head.faces.clone()
    faces[7] = faces[7, 0]
    broken = replace(head, faces=faces)
    grads = deformation_gradients(broken.v_template, broken.v_template * 1.2, faces)
    assert torch.isfinite(grads).all() and torch.equal(grads[7], torch.eye(3))
    avatar = init_avatar_from_head(broken, 400, seed=0)
    pose = torch.zeros(1, 5, 3)
    pose[0, 2, 0] = 0.3
    g, _ = evaluate(avatar, torch.ones(1, avatar.num_expressions), pose)
    for t in (g.means, g.quats, g.log_scales, g.colors):
        assert torch.isfinite(t).all()
