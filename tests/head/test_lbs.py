import math

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from emo_backend.head.lbs import axis_angle_to_matrix, landmarks, lbs
from emo_backend.head.model import HeadModel


def tiny_head(num_expr: int = 2) -> HeadModel:
    """Four vertices, two faces; vertex 3 belongs to the jaw."""
    g = torch.Generator().manual_seed(0)
    v = torch.tensor([[0.0, 0.1, 0.0], [0.05, 0.0, 0.0], [-0.05, 0.0, 0.0], [0.0, -0.08, 0.03]])
    weights = torch.zeros(4, 5)
    weights[:3, 1] = 1.0
    weights[3, 2] = 1.0
    regressor = torch.zeros(5, 4)
    regressor[:, 0] = 1.0  # all joints at vertex 0 except the jaw
    regressor[2] = torch.tensor([0.0, 0.5, 0.5, 0.0])
    return HeadModel(
        model_id="tiny",
        v_template=v,
        faces=torch.tensor([[0, 2, 1], [1, 2, 3]]),
        shapedirs=torch.randn(4, 3, 1, generator=g) * 0.01,
        exprdirs=torch.randn(4, 3, num_expr, generator=g) * 0.01,
        expr_names=tuple(f"e{i}" for i in range(num_expr)),
        j_regressor=regressor,
        parents=torch.tensor([-1, 0, 1, 1, 1]),
        lbs_weights=weights,
        landmark_faces=torch.tensor([0, 1]),
        landmark_bary=torch.tensor([[1 / 3, 1 / 3, 1 / 3], [0.0, 0.0, 1.0]]),
    )


def test_axis_angle_matches_scipy():
    aa = torch.tensor([[0.3, -0.2, 0.9], [1e-9, 0.0, 0.0], [0.0, 0.0, 0.0], [math.pi * 0.99, 0.0, 0.0]], dtype=torch.float64)
    expected = Rotation.from_rotvec(aa.numpy()).as_matrix()
    np.testing.assert_allclose(axis_angle_to_matrix(aa).numpy(), expected, atol=1e-12)


def test_zero_pose_returns_blended_shape():
    head = tiny_head()
    expr = torch.tensor([[1.0, -0.5]])
    out = lbs(head, expr, torch.zeros(1, 5, 3))
    expected = head.v_template + head.exprdirs @ expr[0]
    torch.testing.assert_close(out.vertices[0], expected)
    torch.testing.assert_close(out.v_shaped[0], expected)


def test_jaw_rotation_moves_only_jaw_vertices_about_the_jaw_joint():
    head = tiny_head()
    pose = torch.zeros(1, 5, 3)
    pose[0, 2, 0] = 0.4
    out = lbs(head, torch.zeros(1, 2), pose)
    torch.testing.assert_close(out.vertices[0, :3], head.v_template[:3])
    jaw = head.j_regressor[2] @ head.v_template
    rotated = axis_angle_to_matrix(pose[0, 2]) @ (head.v_template[3] - jaw) + jaw
    torch.testing.assert_close(out.vertices[0, 3], rotated)
    torch.testing.assert_close(out.joints[0, 2], jaw)


def test_root_rotation_and_translation_move_everything_rigidly():
    head = tiny_head()
    pose = torch.zeros(2, 5, 3)
    pose[1, 0] = torch.tensor([0.1, 0.7, -0.2])
    trans = torch.tensor([[0.0, 0.0, 0.0], [0.1, 0.2, 0.3]])
    out = lbs(head, torch.zeros(2, 2), pose, translation=trans)
    d0 = torch.cdist(out.vertices[0], out.vertices[0])
    d1 = torch.cdist(out.vertices[1], out.vertices[1])
    torch.testing.assert_close(d0, d1)
    # Skinning transforms applied to rest vertices reproduce the posed vertices.
    skin = out.transforms[1, 1]
    moved = head.v_template[:3] @ skin[:3, :3].T + skin[:3, 3]
    torch.testing.assert_close(moved, out.vertices[1, :3])


def test_landmarks_are_barycentric_points():
    head = tiny_head()
    lm = landmarks(head, head.v_template[None])
    torch.testing.assert_close(lm[0, 0], head.v_template[[0, 2, 1]].mean(0))
    torch.testing.assert_close(lm[0, 1], head.v_template[3])
