"""Expression bases of the open head: one displacement field [V, 3] per FACS action unit.

Coefficient 1.0 is the unit at full intensity (FACS "E"). Fields are smooth
functions of the rest position, split at the lips and lids by which side of
the slit a vertex is on, so the two copies of a slit vertex can move apart.
Eyelids move by rotating about the eyeball centre, so a closing lid slides
over the eye instead of cutting through it. The mouth lining follows the lip
it hangs from; eyeballs, teeth, tongue and ears never move with expressions.
L is the subject's left (+X).
"""

from __future__ import annotations

import numpy as np

from emo_backend.head.expressions import ACTION_UNITS
from emo_backend.head.open_head.anatomy import ANATOMY as A
from emo_backend.head.open_head.assemble import Assembly
from emo_backend.head.open_head.features import eye_centre
from emo_backend.head.open_head.fields import smoothstep as _smoothstep, gauss as _gauss, fold_x as _fold_x

MOUTH_LINING_FOLLOW = (1.0, 0.7, 0.3, 0.1, 0.0, 0.0)  # per cavity ring (inner lips first) and the tip


class _Ctx:
    """What the fields need to know about the assembled mesh."""

    def __init__(self, asm: Assembly):
        self.asm = asm
        v = asm.vertices
        self.p = v
        self.x, self.y, self.z = v[:, 0], v[:, 1], v[:, 2]
        skin = asm.skin
        n_skin = len(skin.side)
        self.slit_side = np.zeros(len(v), dtype=int)
        self.slit_side[:n_skin] = skin.side
        near_mouth = np.abs(self.y - A.mouth_y) < 0.03
        self.upper = np.where(self.slit_side != 0, self.slit_side > 0, self.y >= A.mouth_y) & near_mouth
        self.lower = np.where(self.slit_side != 0, self.slit_side < 0, self.y < A.mouth_y) & near_mouth
        row = skin.mouth_row
        self.corner = {"left": v[skin.grid[row, skin.mouth_cols[1]]], "right": v[skin.grid[row, skin.mouth_cols[0]]]}
        self.corner_x = 0.5 * (self.corner["left"][0] - self.corner["right"][0])
        self.lip_x = np.clip(1 - (self.x / self.corner_x) ** 2, 0, 1)            # 1 mid-mouth, 0 at corners
        self.mouth_span = _smoothstep(self.corner_x + 0.014, self.corner_x, np.abs(self.x)) * (self.z > 0.045)
        self.upper_lip = _smoothstep(0.017, 0.006, self.y - A.mouth_y) * self.upper * self.mouth_span
        self.lower_lip = _smoothstep(0.021, 0.008, A.mouth_y - self.y) * self.lower * self.mouth_span
        movable = np.zeros(len(v), dtype=bool)
        for name in ("skin", "mouth_cavity", "left_eye_socket", "right_eye_socket"):
            movable[asm.part_vertices(name)] = True
        self.movable = movable

    def side_mask(self, side: str) -> np.ndarray:
        s = _smoothstep(-0.008, 0.008, self.x)
        return s if side == "left" else 1 - s

    # Eyelids -------------------------------------------------------------------------------------------
    def lid_rotation(self, side: str, upper: float, lower: float) -> np.ndarray:
        """Displacement that rotates the lids about the eyeball centre.

        The upper lid edge travels down by `upper` and the lower one up by `lower`, both as fractions of
        the open fissure (negative opens the lid further). A blink is upper 0.8 + lower 0.2.
        """
        asm = self.asm
        c = eye_centre(side)
        loop, lside = asm.eye_loops[side], asm.eye_loop_side[side]
        p = self.p
        ang = lambda q: np.arctan2(q[..., 1] - c[1], q[..., 2] - c[2])  # noqa: E731
        up_ids, lo_ids = loop[lside >= 0], loop[lside <= 0]
        up_ids = up_ids[np.argsort(p[up_ids, 0])]
        lo_ids = lo_ids[np.argsort(p[lo_ids, 0])]
        xs_u, xs_l = p[up_ids, 0], p[lo_ids, 0]
        a_u = ang(p[up_ids])
        a_l = np.interp(xs_u, xs_l, ang(p[lo_ids]))
        d_up = -upper * (a_u - a_l)                       # per upper-edge vertex
        d_lo_at_u = lower * (a_u - a_l)
        edge_y_u = p[up_ids, 1]
        edge_y_l = p[lo_ids, 1]
        x = self.x
        in_eye = (np.abs(x - c[0]) < 0.03) & (np.abs(self.y - c[1]) < 0.028) & (self.z > c[2] - 0.012) & self.movable
        lid_side = np.zeros(len(p), dtype=int)  # which lid the copies of this eye's slit belong to
        lid_side[loop] = lside
        is_up = np.where(lid_side != 0, lid_side > 0, self.y >= np.interp(x, xs_u, edge_y_u))
        is_lo = np.where(lid_side != 0, lid_side < 0, self.y <= np.interp(x, xs_l, edge_y_l))
        # Corners belong to both lids: they stay.
        w_up = 1 - _smoothstep(0.0, 0.010, self.y - np.interp(x, xs_u, edge_y_u))
        w_lo = 1 - _smoothstep(0.0, 0.008, np.interp(x, xs_l, edge_y_l) - self.y)
        delta = np.where(is_up, np.interp(x, xs_u, d_up) * w_up, 0.0)
        delta = np.where(is_lo & ~is_up, np.interp(x, xs_u, d_lo_at_u) * w_lo, delta)
        delta = np.where(in_eye, delta, 0.0)
        # The socket lining rotates with the loop vertex it hangs from.
        for ring in asm.eye_rings[side][:-1]:
            delta[ring] = delta[loop]
        rel = p - c
        r = np.hypot(rel[:, 1], rel[:, 2])
        a = np.arctan2(rel[:, 1], rel[:, 2]) + delta
        out = np.zeros_like(p)
        out[:, 1] = c[1] + r * np.sin(a) - p[:, 1]
        out[:, 2] = c[2] + r * np.cos(a) - p[:, 2]
        return out

    def finish(self, d: np.ndarray) -> np.ndarray:
        """Make the mouth lining follow the lips and keep rigid parts still."""
        asm = self.asm
        for ring, follow in zip(asm.mouth_rings[:-1], MOUTH_LINING_FOLLOW):
            d[ring] = d[asm.mouth_loop] * follow
        d[asm.mouth_rings[-1]] = 0.0
        d[~self.movable] = 0.0
        return d


def _brow(ctx: _Ctx, centre, lift: float, inward: float = 0.0) -> np.ndarray:
    """Move a brow patch: full over the brow and forehead above, fading quickly towards the eye."""
    dy = ctx.y - centre[1]
    ry = np.where(dy > 0, 0.030, 0.013)
    g = np.exp(-(((ctx.x - centre[0]) / 0.021) ** 2) - (dy / ry) ** 2) * (ctx.z > 0.03)
    d = np.zeros_like(ctx.p)
    d[:, 1] = lift * g
    d[:, 0] = -np.sign(ctx.x) * inward * g
    return d


def _corner(ctx: _Ctx, side: str, vec, radius: float) -> np.ndarray:
    """Move a mouth corner (and the lips and cheek around it) by vec (given for the left side)."""
    c = ctx.corner[side]
    s = 1.0 if side == "left" else -1.0
    g = _gauss(ctx.p, c, (radius, radius, radius * 1.3)) * (ctx.z > 0.03)
    # Along the lips the pull fades towards the middle, on the pulled half only.
    along = np.clip(s * ctx.x / ctx.corner_x, 0, 1) ** 1.5 * np.clip(ctx.upper_lip + ctx.lower_lip, 0, 1)
    w = g + (1 - g) * along * 0.8
    return w[:, None] * np.array([s * vec[0], vec[1], vec[2]])[None]


def _lips(ctx: _Ctx, up_vec, low_vec, slit_free: bool = False) -> np.ndarray:
    """Move the upper and lower lip bodies. slit_free: zero at the slit so pressed lips never cross."""
    wu, wl = ctx.upper_lip.copy(), ctx.lower_lip.copy()
    if slit_free:
        wu *= np.sin(np.pi * np.clip((ctx.y - A.mouth_y) / 0.012, 0, 1))
        wl *= np.sin(np.pi * np.clip((A.mouth_y - ctx.y) / 0.014, 0, 1))
    return wu[:, None] * np.asarray(up_vec)[None] + wl[:, None] * np.asarray(low_vec)[None]


def action_unit_field(ctx: _Ctx, name: str) -> np.ndarray:
    side = {"L": "left", "R": "right"}.get(name[-1])
    base = name.rstrip("LR")
    s = 1.0 if side == "left" else -1.0
    p, d = ctx.p, np.zeros_like(ctx.p)
    if base == "AU1":
        d = _brow(ctx, (s * 0.017, 0.036), 0.008)
    elif base == "AU2":
        d = _brow(ctx, (s * 0.041, 0.036), 0.008)
    elif base == "AU4":
        d = _brow(ctx, (0.024, 0.034), -0.005, inward=0.003) + _brow(ctx, (-0.024, 0.034), -0.005, inward=0.003)
        d[:, 2] += 0.0015 * _gauss(p, (0.0, 0.03, 0.09), (0.01, 0.012, 0.03))
    elif base == "AU5":
        d = ctx.lid_rotation(side, upper=-0.30, lower=0.0)
    elif base == "AU6":
        g = _gauss(p, (s * 0.040, -0.010, 0.072), (0.020, 0.017, 0.03)) * (p[:, 2] > 0.03)
        d[:, 1] = 0.004 * g
        d[:, 2] = 0.0015 * g
        d = d * ~(np.abs(p[:, 1] - A.eye_y) < 0.007)[:, None] + ctx.lid_rotation(side, upper=0.05, lower=0.25)
    elif base == "AU7":
        d = ctx.lid_rotation(side, upper=0.12, lower=0.35)
    elif base == "AU9":
        g = _gauss(_fold_x(p), (0.012, -0.024, 0.095), (0.012, 0.015, 0.03))
        d[:, 1] = 0.003 * g - 0.0025 * _gauss(p, (0.0, 0.024, 0.09), (0.02, 0.012, 0.03))
        d = d + _lips(ctx, (0.0, 0.0015, 0.0), (0.0, 0.0, 0.0))
        d = d + _brow(ctx, (0.022, 0.034), -0.002) + _brow(ctx, (-0.022, 0.034), -0.002)
    elif base == "AU10":
        d = _lips(ctx, (0.0, 0.0045, 0.001), (0.0, 0.0, 0.0)) * (0.55 + 0.45 * ctx.lip_x)[:, None]
        d[:, 1] += 0.0015 * _gauss(_fold_x(p), (0.02, -0.035, 0.09), (0.012, 0.012, 0.03))
    elif base == "AU12":
        d = _corner(ctx, side, (0.0035, 0.0065, -0.0045), 0.013)
        cheek = _gauss(p, ctx.corner[side] + [s * 0.010, 0.014, -0.004], (0.016, 0.014, 0.03))  # the cheek lifts too
        d += 0.003 * cheek[:, None] * [[0.2 * s, 1.0, 0.4]]
    elif base == "AU14":
        d = _corner(ctx, side, (-0.0012, 0.0008, -0.0035), 0.009)
    elif base == "AU15":
        d = _corner(ctx, side, (0.001, -0.0055, -0.001), 0.012)
    elif base == "AU16":
        d = _lips(ctx, (0, 0, 0), (0.0, -0.0045, 0.0015)) * (0.5 + 0.5 * ctx.lip_x)[:, None]
    elif base == "AU17":
        g = _gauss(p, (0.0, -0.095, 0.085), (0.022, 0.016, 0.03))
        d[:, 1] = 0.004 * g
        d[:, 2] = 0.002 * g
        d = d + _lips(ctx, (0, 0, 0), (0.0, 0.0015, 0.0025))
    elif base == "AU18":
        lips = np.maximum(ctx.upper_lip, ctx.lower_lip)
        d[:, 0] = -0.38 * p[:, 0] * lips
        d[:, 2] = 0.0045 * lips * (0.4 + 0.6 * ctx.lip_x)
    elif base == "AU20":
        d = _corner(ctx, side, (0.0055, -0.0015, -0.0025), 0.014)
    elif base == "AU22":
        lips = np.maximum(ctx.upper_lip, ctx.lower_lip)
        d = _lips(ctx, (0.0, 0.0018, 0.0035), (0.0, -0.0025, 0.0035)) * (0.3 + 0.7 * ctx.lip_x)[:, None]
        d[:, 0] = -0.22 * p[:, 0] * lips
    elif base == "AU23":
        lips = np.maximum(ctx.upper_lip, ctx.lower_lip)
        d = _lips(ctx, (0.0, -0.0012, -0.0008), (0.0, 0.0012, -0.0008), slit_free=True)
        d[:, 0] = -0.13 * p[:, 0] * lips
    elif base == "AU24":
        d = _lips(ctx, (0.0, -0.0018, -0.0012), (0.0, 0.0018, -0.0010), slit_free=True)
    elif base == "AU25":
        shape = np.sqrt(ctx.lip_x)[:, None]
        d = _lips(ctx, (0.0, 0.0032, 0.0005), (0.0, -0.0045, 0.0008)) * shape
    elif base == "AU45":
        d = ctx.lid_rotation(side, upper=0.8, lower=0.2)
    else:
        raise KeyError(f"no displacement field for action unit {name!r}")
    if side is not None and base not in ("AU5", "AU7", "AU45"):
        d = d * ctx.side_mask(side)[:, None]
    return ctx.finish(d)


def expression_bases(asm: Assembly) -> np.ndarray:
    """[V, 3, E] displacement fields in ACTION_UNITS order."""
    ctx = _Ctx(asm)
    return np.stack([action_unit_field(ctx, name) for name in ACTION_UNITS], -1)
