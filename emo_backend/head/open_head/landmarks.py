"""The 68-point iBUG landmarks on the open head, as (face id, barycentric) pairs.

Eye and inner-lip points sit exactly on the lid and lip edges (the slit
loops); outer-lip, brow and nose points are projected onto the face from the
front; jaw-line points are the skin points nearest to an anatomical contour.
Right (points 0-8, 17-21, 36-41, 48-50, ...) is the subject's right, -X.
"""

from __future__ import annotations

import numpy as np

from emo_backend.head.open_head.anatomy import ANATOMY as A
from emo_backend.head.open_head.anatomy import brow_line, lower_lip_border, upper_lip_border
from emo_backend.head.open_head.assemble import Assembly


def _bary2d(p: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """Barycentric coordinates of 2D point p [2] in triangles tri [F, 3, 2] -> [F, 3]."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    v0, v1, v2 = b - a, c - a, p[None] - a
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    den = np.where(np.abs(den) < 1e-14, 1e-14, den)
    l1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
    l2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
    return np.stack([1 - l1 - l2, l1, l2], -1)


class _Snapper:
    def __init__(self, asm: Assembly):
        self.v, self.f = asm.vertices, asm.faces
        self.skin_faces = asm.part_faces("skin")
        tri = self.v[self.f[self.skin_faces]]
        normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        self.front_faces = self.skin_faces[normal[:, 2] > 0]

    def front(self, x: float, y: float) -> tuple[int, np.ndarray]:
        """The frontmost skin point seen along -Z at (x, y)."""
        tri = self.v[self.f[self.front_faces]]
        bary = _bary2d(np.array([x, y]), tri[..., :2])
        inside = (bary >= -1e-9).all(1)
        if not inside.any():
            raise ValueError(f"no skin in front at ({x}, {y})")
        z = (bary * tri[..., 2]).sum(1)
        k = np.flatnonzero(inside)[np.argmax(z[inside])]
        return int(self.front_faces[k]), np.clip(bary[k], 0, 1) / np.clip(bary[k], 0, 1).sum()

    def nearest(self, point: np.ndarray) -> tuple[int, np.ndarray]:
        """The skin point nearest to a 3D point (projection onto the nearest faces' planes)."""
        tri = self.v[self.f[self.skin_faces]]
        centre = tri.mean(1)
        cand = np.argsort(np.linalg.norm(centre - point, axis=1))[:40]
        best, best_d = None, np.inf
        for k in cand:
            t = tri[k]
            n = np.cross(t[1] - t[0], t[2] - t[0])
            n /= np.linalg.norm(n)
            q = point - n * ((point - t[0]) @ n)
            # Barycentric in the plane, clipped to the triangle.
            m = np.stack([t[1] - t[0], t[2] - t[0]], 1)
            l12 = np.linalg.lstsq(m, q - t[0], rcond=None)[0]
            bary = np.clip(np.array([1 - l12.sum(), l12[0], l12[1]]), 0, 1)
            bary /= bary.sum()
            d = np.linalg.norm(bary @ t - point)
            if d < best_d:
                best, best_d = (int(self.skin_faces[k]), bary), d
        return best

    def at_vertex(self, vid: int, faces: np.ndarray) -> tuple[int, np.ndarray]:
        """A vertex as (one of its faces among `faces`, one-hot barycentric); the lowest face id, for determinism."""
        for fid in faces:
            tri = list(self.f[fid])
            if vid in tri:
                bary = np.zeros(3)
                bary[tri.index(vid)] = 1.0
                return int(fid), bary
        raise ValueError(f"vertex {vid} is on none of the faces")

    def on_edge(self, a: int, b: int, t: float, faces: np.ndarray) -> tuple[int, np.ndarray]:
        """A point at fraction t from vertex a to vertex b on a face (among `faces`) holding both."""
        for fid in faces:
            tri = list(self.f[fid])
            if a in tri and b in tri:
                bary = np.zeros(3)
                bary[tri.index(a)] = 1 - t
                bary[tri.index(b)] = t
                return int(fid), bary
        raise ValueError(f"no face holds the edge {a}-{b}")

    def along(self, chain: np.ndarray, frac: float, faces: np.ndarray) -> tuple[int, np.ndarray]:
        """A point at arc-length fraction frac along a vertex chain."""
        pts = self.v[chain]
        seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
        cum = np.concatenate([[0], np.cumsum(seg)]) / seg.sum()
        k = int(np.clip(np.searchsorted(cum, frac) - 1, 0, len(seg) - 1))
        t = (frac - cum[k]) / max(cum[k + 1] - cum[k], 1e-12)
        return self.on_edge(int(chain[k]), int(chain[k + 1]), float(np.clip(t, 0, 1)), faces)


def _lid_chains(asm: Assembly, side: str) -> tuple[np.ndarray, np.ndarray]:
    """(upper, lower) lid edges as vertex chains from the inner to the outer corner."""
    loop, lside = asm.eye_loops[side], asm.eye_loop_side[side]
    corners = loop[lside == 0]  # inner corner first (loop starts there)
    up, lo = loop[lside > 0], loop[lside < 0][::-1]
    return np.concatenate([[corners[0]], up, [corners[1]]]), np.concatenate([[corners[0]], lo, [corners[1]]])


def build_landmarks(asm: Assembly) -> tuple[np.ndarray, np.ndarray]:
    """-> (faces [68] int64, bary [68, 3])."""
    snap = _Snapper(asm)
    skin_faces = snap.skin_faces
    out: list[tuple[int, np.ndarray]] = [None] * 68  # type: ignore[list-item]

    # Jaw line 0-16: the face's outline seen from the front (right ear -> chin -> left ear): in each
    # direction from the middle of the lower face, the skin vertex furthest out.
    anchors_k = np.array([0, 2, 4, 6, 8])
    anchors = np.array([[-0.0705, 0.008], [-0.0685, -0.028], [-0.060, -0.064], [-0.040, -0.094], [0.0, -0.114]])
    centre = np.array([0.0, -0.035])
    skin_v = np.unique(asm.faces[skin_faces])
    facing = asm.vertices[skin_v, 2] > 0.05 - 0.8 * np.abs(asm.vertices[skin_v, 0])  # the face, not under the chin
    skin_v = skin_v[facing]
    rel = asm.vertices[skin_v, :2] - centre
    ang_v, rad_v = np.arctan2(rel[:, 0], -rel[:, 1]), np.linalg.norm(rel, axis=1)
    for k in range(17):
        kk = k if k <= 8 else 16 - k
        target = np.array([np.interp(kk, anchors_k, anchors[:, 0]), np.interp(kk, anchors_k, anchors[:, 1])])
        if k > 8:
            target[0] = -target[0]
        ang = np.arctan2(target[0] - centre[0], -(target[1] - centre[1]))
        window = np.abs(ang_v - ang) < np.radians(2.5)
        vid = int(skin_v[window][np.argmax(rad_v[window])])
        out[k] = snap.at_vertex(vid, skin_faces)

    # Brows 17-21 (right, outer -> inner) and 22-26 (left, inner -> outer).
    for k, t in enumerate(np.linspace(0, 1, 5)):
        x = 0.0145 + 0.037 * t
        y, _ = brow_line(np.array([x]))
        out[22 + k] = snap.front(x, float(y[0]))
        out[21 - k] = snap.front(-x, float(y[0]))

    # Nose: bridge 27-30, base 31-35.
    for k, y in enumerate((0.019, 0.0045, -0.0105, A.nose_tip_y)):
        out[27 + k] = snap.front(0.0, y)
    for k, x in enumerate((-0.0125, -0.0065, 0.0, 0.0065, 0.0125)):
        out[31 + k] = snap.front(x, -0.0355 - 0.0025 * (1 - abs(x) / 0.0125))

    # Eyes: 36-41 right (outer corner, upper outer, upper inner, inner corner, lower inner, lower outer),
    # 42-47 left (inner corner, upper inner, upper outer, outer corner, lower outer, lower inner).
    for side, base in (("right", 36), ("left", 42)):
        up, lo = _lid_chains(asm, side)
        inner, outer = snap.along(up, 0.0, skin_faces), snap.along(up, 1.0, skin_faces)
        u1, u2 = snap.along(up, 1 / 3, skin_faces), snap.along(up, 2 / 3, skin_faces)
        l1, l2 = snap.along(lo, 1 / 3, skin_faces), snap.along(lo, 2 / 3, skin_faces)
        if side == "right":
            out[36:42] = [outer, u2, u1, inner, l1, l2]
        else:
            out[42:48] = [inner, u1, u2, outer, l2, l1]

    # Mouth: outer lip 48-59, inner lip 60-67.
    skin = asm.skin
    row, (c_r, c_l) = skin.mouth_row, skin.mouth_cols
    cx = 0.5 * (asm.vertices[skin.grid[row, c_l], 0] - asm.vertices[skin.grid[row, c_r], 0])
    upper_chain = skin.grid[row, c_r : c_l + 1]
    lower_chain = np.concatenate([[skin.grid[row, c_r]], skin.mouth_lower, [skin.grid[row, c_l]]])
    ub = lambda x: float(upper_lip_border(np.array([x]), cx)[0])  # noqa: E731
    lb = lambda x: float(lower_lip_border(np.array([x]), cx)[0])  # noqa: E731
    out[48] = snap.front(-(cx + 0.0012), A.mouth_y)
    out[54] = snap.front(cx + 0.0012, A.mouth_y)
    for k, x in zip((49, 50, 51, 52, 53), (-0.6 * cx, -0.0055, 0.0, 0.0055, 0.6 * cx)):
        out[k] = snap.front(x, ub(x) - 0.0004)
    for k, x in zip((55, 56, 57, 58, 59), (0.6 * cx, 0.25 * cx, 0.0, -0.25 * cx, -0.6 * cx)):
        out[k] = snap.front(x, lb(x) + 0.0004)
    out[60] = snap.along(upper_chain, 0.0, skin_faces)
    out[64] = snap.along(upper_chain, 1.0, skin_faces)
    for k, frac in zip((61, 62, 63), (0.25, 0.5, 0.75)):
        out[k] = snap.along(upper_chain, frac, skin_faces)
    for k, frac in zip((65, 66, 67), (0.75, 0.5, 0.25)):
        out[k] = snap.along(lower_chain, frac, skin_faces)

    faces = np.array([f for f, _ in out], dtype=np.int64)
    bary = np.stack([b for _, b in out])
    return faces, bary
