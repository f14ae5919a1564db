"""The parts inside and beside the skin: eyeballs, eye-socket linings, mouth cavity, teeth, tongue, ears.

The eye-socket linings and the mouth cavity are bags stitched to the slits of
the skin (their first ring *is* the slit), so nothing behind the lips or lids
shows a hole. Eyeballs, teeth, tongue and ears are separate closed meshes.
"""

from __future__ import annotations

import numpy as np

from emo_backend.head.open_head.anatomy import ANATOMY as A
from emo_backend.head.open_head.meshparts import uv_sphere

EYE_RINGS = 20
EYE_SEGMENTS = 20


def eye_centre(side: str) -> np.ndarray:
    sign = 1.0 if side == "left" else -1.0
    return np.array([sign * A.eye_x, A.eye_y, A.eye_z])


def eyeball(side: str) -> tuple[np.ndarray, np.ndarray]:
    """A sphere looking down +Z, rings packed towards the front so the iris and pupil get vertices."""
    polar = np.pi * (np.arange(1, EYE_RINGS + 1) / (EYE_RINGS + 1)) ** 1.35
    verts, faces = uv_sphere(polar, EYE_SEGMENTS)
    alpha = np.arccos(np.clip(verts[:, 2], -1, 1))
    cornea_edge = np.arcsin(A.iris_radius / A.eye_radius) * 1.1
    bulge = 0.0007 * np.cos(np.clip(alpha / cornea_edge, 0, 1) * np.pi / 2) ** 2  # the cornea's dome
    return eye_centre(side) + verts * (A.eye_radius + bulge)[:, None], faces


def bag(
    loop: np.ndarray,        # [n, 3] positions of the slit loop (ring 0, already in the mesh)
    rings: list[np.ndarray],  # each [n, 3] positions of the next ring inwards
    tip: np.ndarray,          # [3] the closing point at the bottom of the bag
    loop_ids: np.ndarray,     # [n] mesh ids of ring 0
    first_id: int,            # id the first new vertex will get
) -> tuple[np.ndarray, np.ndarray]:
    """New vertices (rings then tip) and faces of a bag hanging inwards from a closed loop.

    The loop runs so that the skin lies to its left seen from outside; the bag's
    faces then face into the cavity's open side (towards the viewer looking in).
    """
    n = len(loop_ids)
    ids = [np.asarray(loop_ids)] + [first_id + k * n + np.arange(n) for k in range(len(rings))]
    tip_id = first_id + len(rings) * n
    tris = []
    for a_ring, b_ring in zip(ids[:-1], ids[1:]):
        for j in range(n):
            j1 = (j + 1) % n
            a, b, c, d = a_ring[j], a_ring[j1], b_ring[j], b_ring[j1]
            tris += [(a, b, c), (b, d, c)]
    for j in range(n):
        tris.append((ids[-1][j], ids[-1][(j + 1) % n], tip_id))
    verts = np.concatenate(rings + [tip[None]])
    return verts, np.asarray(tris, dtype=np.int64)


def eye_socket_rings(loop: np.ndarray, side: str) -> tuple[list[np.ndarray], np.ndarray]:
    """Lid margins tucked onto the eyeball, then deep inside it (hidden)."""
    c = eye_centre(side)
    rel = loop - c
    unit = rel / np.linalg.norm(rel, axis=1, keepdims=True)
    margin = c + unit * (A.eye_radius + 0.0004)
    deep = c + unit * (A.eye_radius * 0.55)
    return [margin, deep], c - np.array([0.0, 0.0, 0.3 * A.eye_radius])


def mouth_rings(loop: np.ndarray, loop_side: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """The inner lips, the vestibule in front of the teeth, then the cavity back to the throat.

    loop [n, 3] runs around the mouth slit; loop_side [n] is +1 on the upper lip, -1 on the lower, 0 at corners.
    """
    x0 = loop[:, 0]
    corner_x = np.max(np.abs(x0))
    a = np.clip(x0 / corner_x, -1, 1)
    psi_sin = loop_side * np.sqrt(1 - a * a)  # elliptic angle around the opening: sin(psi)
    psi_cos = a
    order = np.argsort(np.abs(x0))

    def z_at(x: np.ndarray) -> np.ndarray:  # depth of the lip line at |x|
        return np.interp(np.abs(x), np.abs(x0)[order], loop[order, 2])

    # (half width, half height, depth behind the lip line, how much the ring follows the lip line's curve)
    profile = [(0.0225, 0.0035, 0.0045, 1.0), (0.0255, 0.0150, 0.0075, 1.0), (0.031, 0.021, 0.020, 0.6),
               (0.029, 0.019, 0.040, 0.25), (0.021, 0.013, 0.058, 0.0)]
    rings = []
    z_mid = z_at(np.zeros(1))[0]
    for half_w, half_h, depth, follow in profile:
        x = half_w * psi_cos
        y = A.mouth_y + half_h * psi_sin
        z_line = z_at(np.clip(x, -corner_x, corner_x))
        z = follow * z_line + (1 - follow) * z_mid - depth
        rings.append(np.stack([x, y, z], -1))
    tip = np.array([0.0, A.mouth_y, z_mid - 0.068])
    return rings, tip


# Teeth: (width along the arch, crown height, thickness) from the midline outwards, one side.
UPPER_TEETH = [(0.0086, 0.0105, 0.0070), (0.0066, 0.0090, 0.0065), (0.0076, 0.0100, 0.0080),
               (0.0070, 0.0080, 0.0090), (0.0066, 0.0076, 0.0090), (0.0100, 0.0070, 0.0105), (0.0092, 0.0066, 0.0100)]
LOWER_TEETH = [(0.0054, 0.0090, 0.0060), (0.0060, 0.0088, 0.0062), (0.0068, 0.0095, 0.0075),
               (0.0070, 0.0080, 0.0080), (0.0072, 0.0076, 0.0085), (0.0110, 0.0070, 0.0100), (0.0104, 0.0066, 0.0095)]


def arch_point(s: np.ndarray, front_z: float, half_width: float, depth: float) -> tuple[np.ndarray, np.ndarray]:
    """Dental arch as a half ellipse: parameter s in [-1, 1] -> (points [N, 3] at y=0, outward normals [N, 3])."""
    t = s * np.pi / 2
    x = half_width * np.sin(t)
    z = front_z - depth * (1 - np.cos(t))
    nx, nz = np.sin(t) / half_width, np.cos(t) / depth  # gradient of the ellipse
    n = np.stack([nx, np.zeros_like(nx), nz], -1)
    return np.stack([x, np.zeros_like(x), z], -1), n / np.linalg.norm(n, axis=1, keepdims=True)


def _arch_param(widths: list[float], half_width: float, depth: float) -> np.ndarray:
    """Centres (in the arch parameter) of teeth of the given widths laid from the midline outwards."""
    s = np.linspace(0, 1, 2001)
    pts, _ = arch_point(s, 0.0, half_width, depth)
    arc = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    edges = np.concatenate([[0], np.cumsum(widths)])
    centres = 0.5 * (edges[1:] + edges[:-1])
    return np.interp(centres, arc, s)


def tooth(
    centre: np.ndarray, normal: np.ndarray, width: float, height: float, thick: float, down: bool, front: bool
) -> np.ndarray:
    """12 corners of a tooth: two hexagonal rings (biting edge, then the gum end), outer face on the arch.

    Incisors and canines (`front`) taper to a thin biting edge; the crown grows up (upper teeth) or down.
    """
    tangent = np.cross([0.0, 1.0, 0.0], normal)
    tangent /= np.linalg.norm(tangent)
    grow = -1.0 if down else 1.0
    # Cross-section (across the arch, into the mouth), a rounded hexagon.
    hexagon = np.array([(-0.5, -0.18), (-0.32, 0.0), (0.32, 0.0), (0.5, -0.18), (0.36, -1.0), (-0.36, -1.0)])
    corners = []
    for h, w_scale, t_scale in ((0.0, 0.93, 0.35 if front else 0.8), (height, 1.0, 1.0)):
        for a, b in hexagon:
            p = centre + tangent * (a * width * 0.99 * w_scale) + normal * (b * thick * t_scale)
            corners.append(p + np.array([0.0, grow * h, 0.0]))
    return np.asarray(corners)


def _tooth_faces() -> np.ndarray:
    edge, root = np.arange(6), 6 + np.arange(6)
    tris = [(edge[0], edge[k], edge[k + 1]) for k in range(1, 5)]      # biting edge
    tris += [(root[0], root[k + 1], root[k]) for k in range(1, 5)]     # gum end
    for k in range(6):
        k1 = (k + 1) % 6
        tris += [(edge[k], root[k], root[k1]), (edge[k], root[k1], edge[k1])]
    return np.asarray(tris, dtype=np.int64)


_TOOTH_FACES = _tooth_faces()
TOOTH_VERTS = 12


def teeth_row(upper: bool) -> tuple[np.ndarray, np.ndarray]:
    """One dental arch of 14 teeth. Returns (verts [14 * 12, 3], faces)."""
    table = UPPER_TEETH if upper else LOWER_TEETH
    front_z = A.mouth_z - (0.0085 if upper else 0.0105)
    half_w, depth = (0.0265, 0.038) if upper else (0.0240, 0.036)
    edge_y = A.mouth_y - 0.0032 if upper else A.mouth_y - 0.0012
    s_half = _arch_param([w for w, _, _ in table], half_w, depth)
    verts, faces = [], []
    for sign in (-1.0, 1.0):
        for k, ((width, height, thick), s) in enumerate(zip(table, s_half)):
            pts, nrm = arch_point(np.array([sign * s]), front_z, half_w, depth)
            centre = pts[0] + np.array([0.0, edge_y, 0.0])
            corners = tooth(centre, nrm[0], width, height, thick, down=not upper, front=k < 3)
            f = _TOOTH_FACES[:, ::-1] if upper else _TOOTH_FACES  # growing down mirrors the tooth
            faces.append(f + len(verts) * TOOTH_VERTS)
            verts.append(corners)
    return np.concatenate(verts), np.concatenate(faces)


def tongue() -> tuple[np.ndarray, np.ndarray]:
    """A flattened, front-rounded ellipsoid lying on the floor of the mouth behind the lower teeth."""
    polar = np.pi * np.arange(1, 11) / 11
    verts, faces = uv_sphere(polar, 16)
    x, y, z = verts[:, 0], verts[:, 1], verts[:, 2]
    # Flat top (a bit of a midline groove), rounder bottom; wider at the back.
    y = np.where(y > 0, 0.55 * y - 0.08 * np.exp(-(x / 0.25) ** 2) * (y > 0.3), y)
    x = x * (1.0 - 0.18 * np.clip(z, 0, 1))
    pts = np.stack([x * 0.0205, y * 0.0085, z * 0.026], -1)
    pts = pts + np.array([0.0, A.mouth_y - 0.0105, A.mouth_z - 0.0395])
    # The tip dips down and forward behind the lower incisors.
    front = np.clip(z, 0, 1) ** 2
    pts[:, 1] -= 0.002 * front
    return pts, faces


def ear(side: str) -> tuple[np.ndarray, np.ndarray]:
    """A simple ear: a thick flattened shell with a rim (helix), a bowl (concha) and a lobe."""
    polar = np.pi * np.arange(1, 13) / 13
    verts, faces = uv_sphere(polar, 20)  # unit sphere around +Z; +Z will point away from the head
    x, y, z = verts[:, 0], verts[:, 1], verts[:, 2]
    r = np.sqrt(x * x + y * y)
    # Outer side (z > 0): a bowl (concha) inside a thick rim (helix); the back side is flatter.
    bowl = np.exp(-((r / 0.62) ** 2)) * (z > 0)
    z = np.where(z > 0, z * (0.34 - 0.26 * bowl), z * 0.22)
    # Outline: a rounded (superelliptic) oval, taller than wide, the lobe narrower at the bottom.
    fullness = np.where(r > 1e-9, (np.abs(x) ** 3 + np.abs(y) ** 3 + 1e-12) ** (-1 / 3) * r, 1.0)
    x, y = x * fullness, y * fullness
    width = 0.0165 * (1.0 - 0.35 * np.clip(-y, 0, 1) ** 2)
    local = np.stack([x * width, y * 0.031, z * 0.016], -1)
    # Lean the top back and turn the ear's face forwards-outwards.
    tilt, yaw = -0.22, A.ear_yaw
    ct, st = np.cos(tilt), np.sin(tilt)
    local = local @ np.array([[1, 0, 0], [0, ct, -st], [0, st, ct]]).T
    # Map local (x: along the head front->back, y: up, z: away from head) to avatar space.
    sign = 1.0 if side == "left" else -1.0
    cy, sy = np.cos(yaw), np.sin(yaw)
    away = np.array([sign * cy, 0.0, sy])      # outward, turned towards the front
    back = np.cross([0.0, 1.0, 0.0], away) * sign  # points towards -Z for both ears
    pts = local[:, 0:1] * back + local[:, 1:2] * np.array([0.0, 1.0, 0.0]) + local[:, 2:3] * away
    pts = pts + np.array([sign * A.ear_x, A.ear_y, A.ear_z])
    if side == "right":  # the mirrored frame flips the winding
        faces = faces[:, ::-1]
    return pts, faces
