"""Joints, joint regressor and skinning weights of the open head.

Joints (FLAME's order): root at the base of the neck stub, neck at the top of
the neck (the head turns about it), jaw at the jaw hinge just in front of the
ears, and the two eyeball centres. A jaw rotation about +X opens the mouth
when positive (the chin goes down), as in FLAME; ~0.3 rad is a wide-open mouth.
"""

from __future__ import annotations

import numpy as np

from emo_backend.head.open_head.anatomy import ANATOMY as A
from emo_backend.head.open_head.assemble import Assembly
from emo_backend.head.open_head.features import eye_centre
from emo_backend.head.open_head.fields import smoothstep as _smoothstep

PARENTS = np.array([-1, 0, 1, 1, 1], dtype=np.int64)


def rest_joints() -> np.ndarray:
    """[5, 3] rest positions of root, neck, jaw, left eye, right eye."""
    return np.array([
        [0.0, A.root_joint_y, -0.024],
        [0.0, A.neck_joint_y, A.neck_joint_z],
        [0.0, A.jaw_joint_y, A.jaw_joint_z],
        eye_centre("left"),
        eye_centre("right"),
    ])


def exact_average(points: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Non-negative weights [n] summing to 1, near uniform, whose weighted mean of points [n, 3] is target.

    So a joint is a fixed blend of vertices that lands on its anatomical spot on
    the template and moves with the shape for other identities. Vertices that
    would need a negative weight are dropped and the rest re-solved.
    """
    n = len(points)
    keep = np.ones(n, dtype=bool)
    w = np.zeros(n)
    for _ in range(50):
        idx = np.flatnonzero(keep)
        a = np.concatenate([points[idx].T, np.ones((1, len(idx)))])  # [4, k]
        b = np.concatenate([target, [1.0]])
        u = np.full(len(idx), 1.0 / len(idx))
        sol = u + a.T @ np.linalg.solve(a @ a.T, b - a @ u)
        w[:] = 0.0
        w[idx] = sol
        if sol.min() >= 0:
            break
        keep[idx[sol < 0]] = False
    if w.min() < 0 or not np.allclose(w @ points, target, atol=1e-6):
        raise ValueError("cannot place the joint inside the hull of its vertices")
    return w


def joint_regressor(asm: Assembly) -> np.ndarray:
    """[5, V] rows of vertex weights for each joint."""
    v = asm.vertices
    skin = asm.part_vertices("skin")
    joints = rest_joints()
    reg = np.zeros((5, len(v)))

    def shell(target: np.ndarray, inner: float, outer: float, candidates: np.ndarray) -> np.ndarray:
        d = np.linalg.norm(v[candidates] - target, axis=1)
        return candidates[(d > inner) & (d < outer)]

    # Root and neck: skin rings around the neck; jaw: skin over both jaw hinges.
    root_ids = skin[v[skin, 1] < A.root_joint_y + 0.03]
    neck_ids = shell(joints[1], 0.055, 0.070, skin)
    hinge = np.array([0.066, A.jaw_joint_y, A.jaw_joint_z + 0.004])
    rel = np.stack([np.abs(v[skin, 0]) - hinge[0], v[skin, 1] - hinge[1], v[skin, 2] - hinge[2]], -1)
    jaw_ids = skin[np.linalg.norm(rel, axis=1) < 0.016]
    for j, ids in enumerate((root_ids, neck_ids, jaw_ids)):
        reg[j, ids] = exact_average(v[ids], joints[j])
    for j, side in ((3, "left"), (4, "right")):
        ids = asm.part_vertices(f"{side}_eyeball")
        reg[j, ids] = exact_average(v[ids], joints[j])
    return reg


def jaw_weight_skin(asm: Assembly) -> np.ndarray:
    """Jaw weight [V] of skin-like vertices: the lower lip and chin follow the jaw, the upper lip does not."""
    v = asm.vertices
    x, y, z = v[:, 0], v[:, 1], v[:, 2]
    skin = asm.skin
    corners = skin.grid[skin.mouth_row, list(skin.mouth_cols)]
    corner_x = 0.5 * (v[corners[1], 0] - v[corners[0], 0])
    # Away from the lips: below a line from the mouth corners back to the hinge, softly.
    boundary = np.interp(z, [-0.02, 0.02, 0.055, 0.08], [-0.025, -0.040, A.mouth_y - 0.002, A.mouth_y])
    field = _smoothstep(0.008, -0.012, y - boundary)
    # Under the jaw the soft tissue lags behind the bone; behind the hinge nothing moves.
    border = np.interp(z, [-0.01, 0.03, 0.07], [-0.075, -0.095, -0.113])
    field *= _smoothstep(-0.030, -0.005, y - border)
    field *= _smoothstep(-0.025, 0.0, z)
    # At the lips: split exactly at the slit (the two copies of a slit vertex sit on different sides).
    side = np.zeros(len(v))
    side[: len(skin.side)] = skin.side
    below = np.where(side != 0, side < 0, y < A.mouth_y)
    split = np.where(below, 1.0, 0.0)
    vertical = _smoothstep(0.022, 0.010, np.abs(y - A.mouth_y))  # only near the slit
    h = _smoothstep(corner_x - 0.008, corner_x + 0.006, np.abs(x)) * 0.999
    near = vertical * (1 - h) * (z > 0.04)
    w = near * split + (1 - near) * field
    for c in skin.mouth_cols:
        w[skin.grid[skin.mouth_row, c]] = 0.5
    return w


def lbs_weights(asm: Assembly) -> np.ndarray:
    """[V, 5] skinning weights; rows sum to 1."""
    v = asm.vertices
    n = len(v)
    w = np.zeros((n, 5))
    root = _smoothstep(-0.115, -0.175, v[:, 1])
    jaw = jaw_weight_skin(asm) * (1 - root)
    # Mouth cavity: the lining next to the lips moves like the lip it hangs from; deeper, the lower half
    # follows the jaw and the upper half the skull.
    loop_side = asm.mouth_loop_side
    jaw[asm.mouth_rings[0]] = np.where(loop_side > 0, 0.0, np.where(loop_side < 0, 1.0, 0.5))
    for ring in asm.mouth_rings[1:-1]:
        rel_y = v[ring, 1] - A.mouth_y
        jaw[ring] = _smoothstep(0.35, -0.35, rel_y / max(np.abs(rel_y).max(), 1e-6))
    jaw[asm.mouth_rings[-1]] = 0.3
    for name in ("upper_teeth", "left_eyeball", "right_eyeball", "left_ear", "right_ear",
                 "left_eye_socket", "right_eye_socket"):
        jaw[asm.part_vertices(name)] = 0.0
    for name in ("lower_teeth", "tongue"):
        jaw[asm.part_vertices(name)] = 1.0
    w[:, 2] = jaw
    w[:, 0] = root * (1 - jaw)
    w[:, 1] = 1 - w[:, 0] - w[:, 2]
    for j, side_name in ((3, "left"), (4, "right")):
        ids = asm.part_vertices(f"{side_name}_eyeball")
        w[ids] = 0.0
        w[ids, j] = 1.0
    return w
