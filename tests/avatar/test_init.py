import math

import torch

from emo_backend.avatar.binding import PART_INDEX, face_normals, interpolate, triangle_frames
from emo_backend.avatar.init import allocate_counts, expression_deltas, init_avatar_from_head
from emo_backend.avatar.rotations import axis_angle_to_quat, matrix_to_quat, quat_to_matrix
from emo_backend.head.lbs import axis_angle_to_matrix
from emo_backend.head.model import HeadModel


def _plane_head(exprdirs: torch.Tensor) -> HeadModel:
    """Two triangles in the z = 0 plane, one joint set, the given expression bases [4, 3, E]."""
    v = torch.tensor([[0.0, 0.0, 0.0], [0.02, 0.0, 0.0], [0.02, 0.02, 0.0], [0.0, 0.02, 0.0]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    w = torch.zeros(4, 5)
    w[:, 0] = 1
    return HeadModel("plane", v, faces, torch.zeros(4, 3, 0), exprdirs, tuple(f"e{i}" for i in range(exprdirs.shape[-1])),
                     torch.full((5, 4), 0.25), torch.tensor([-1, 0, 1, 1, 1]), w, torch.zeros(1, dtype=torch.int64),
                     torch.tensor([[1.0, 0, 0]]))


def test_deformation_gradient_init_is_exact_for_rotation_and_scale():
    v = _plane_head(torch.zeros(4, 3, 1)).v_template
    rot = axis_angle_to_matrix(torch.tensor([0.4, -0.2, 0.9]))
    scale = 1.7
    dirs = torch.stack([v @ rot.T - v, v * scale - v], -1)  # basis 0 rotates, basis 1 scales the plane
    head = _plane_head(dirs)
    face_ids = torch.tensor([0, 1, 0])
    bary = torch.tensor([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1], [1 / 3, 1 / 3, 1 / 3]])
    offsets = torch.tensor([[0.0, 0.0, 0.004], [0.001, -0.002, 0.003], [0.002, 0.001, -0.001]])
    in_plane = axis_angle_to_quat(torch.tensor([[0.0, 0.0, 0.3], [0.0, 0.0, -1.0], [0.0, 0.0, 2.0]]))
    d = expression_deltas(head, face_ids, bary, offsets, in_plane)
    anchor = interpolate(v, head.faces, face_ids, bary)
    local = offsets
    offsets = (triangle_frames(v, head.faces)[face_ids] @ local[..., None])[..., 0]  # avatar-space offsets
    # Rotation: the whole Gaussian (anchor + offset) rotates rigidly; orientation by R; no scale change.
    assert torch.allclose(anchor + offsets + d["delta_means"][0], (anchor + offsets) @ rot.T, atol=1e-6)
    assert torch.allclose(quat_to_matrix(axis_angle_to_quat(d["delta_rotations"][0])), rot.expand(3, 3, 3),
                          atol=1e-5)
    assert d["delta_log_scales"][0].abs().max() < 1e-6
    # Scale: in-plane axes stretch by log(s), the normal axis (thickness) not; no rotation; the offset's
    # in-plane part scales, its normal part does not (unit normals in F).
    assert torch.allclose(d["delta_log_scales"][1, :, :2], torch.full((3, 2), math.log(scale)), atol=1e-6)
    assert d["delta_log_scales"][1, :, 2].abs().max() < 1e-6
    assert d["delta_rotations"][1].abs().max() < 1e-6
    expected = anchor * scale + torch.cat([offsets[:, :2] * scale, offsets[:, 2:]], -1)
    assert torch.allclose(anchor + offsets + d["delta_means"][1], expected, atol=1e-6)
    assert d["delta_colors"].abs().max() == 0 and d["delta_opacity_logits"].abs().max() == 0


def test_untouched_triangles_get_exactly_zero_deltas():
    dirs = torch.zeros(4, 3, 1)
    dirs[1, 2, 0] = 0.003  # only vertex 1 moves: face 1 (0, 2, 3) is untouched
    head = _plane_head(dirs)
    d = expression_deltas(head, torch.tensor([1, 0]), torch.tensor([[0.3, 0.3, 0.4]] * 2), torch.zeros(2, 3),
                          torch.tensor([[1.0, 0, 0, 0]] * 2))
    for name in ("delta_means", "delta_rotations", "delta_log_scales"):
        assert d[name][0, 0].abs().max() == 0, name
        assert d[name][0, 1].abs().max() > 0, name


def test_initial_gaussians_are_surface_discs_with_head_colours(head, avatar):
    n = avatar.num_gaussians
    assert n == 1500
    axes = quat_to_matrix(avatar.quats)
    normals = face_normals(avatar.head.v_template, avatar.head.faces)[avatar.face_ids]
    assert torch.allclose(axes[..., 2], normals, atol=1e-5)  # third axis = surface normal
    scales = avatar.log_scales.exp()
    assert torch.allclose(scales[:, 0], scales[:, 1]) and (scales[:, 2] < 0.2 * scales[:, 0]).all()
    assert (torch.sigmoid(avatar.opacity_logits) > 0.9).all()
    expected = interpolate(head.vertex_colors, head.faces, avatar.face_ids, avatar.bary)
    assert torch.allclose(avatar.colors, expected, atol=1e-6)
    # The identity is baked into the avatar's neutral mesh.
    shaped = head.v_template + torch.einsum("vcs,s->vc", head.shapedirs, avatar.identity)
    assert torch.allclose(avatar.head.v_template, shaped)
    assert avatar.head.shapedirs.shape[-1] == 0


def test_mouth_interior_gets_its_own_denser_gaussians(avatar):
    areas = {}
    from emo_backend.avatar.binding import face_areas, face_parts

    parts = face_parts(avatar.head)
    area = face_areas(avatar.head.v_template, avatar.head.faces)
    for name in ("surface", "lower_teeth", "upper_teeth", "tongue"):
        count = int((avatar.parts == PART_INDEX[name]).sum())
        areas[name] = count / float(area[parts == PART_INDEX[name]].sum())
        # Each part's Gaussians sit on that part's faces.
        assert (parts[avatar.face_ids[avatar.parts == PART_INDEX[name]]] == PART_INDEX[name]).all()
    assert areas["lower_teeth"] > 3 * areas["surface"] and areas["tongue"] > 1.5 * areas["surface"]


def test_allocation_hits_the_total_exactly():
    counts = allocate_counts({"surface": 1.0, "upper_teeth": 0.01, "tongue": 0.0}, {"upper_teeth": 4.0}, 1001)
    assert sum(counts.values()) == 1001 and "tongue" not in counts and counts["upper_teeth"] >= 32


def test_init_is_deterministic(head):
    a = init_avatar_from_head(head, 300, seed=3)
    b = init_avatar_from_head(head, 300, seed=3)
    assert torch.equal(a.face_ids, b.face_ids) and torch.equal(a.bary, b.bary)
    assert torch.equal(a.delta_means, b.delta_means)


def test_matrix_quaternion_round_trip():
    aa = torch.randn(200, 3, generator=torch.Generator().manual_seed(0)) * 1.5
    r = axis_angle_to_matrix(aa)
    assert torch.allclose(quat_to_matrix(matrix_to_quat(r)), r, atol=1e-5)
