"""What the synthetic actor shows that a linear blendshape model cannot: wrinkles, flush, corrective shapes.

Stage 2 of the avatar (the emotional Gaussian deformation) has to learn
these, so they are in every rendered frame and never in the tracking.

Surface effects (`EFFECTS`): each is a fixed pattern on the skin, a function
of the rest (template) position of a surface point, times a per-frame
activation computed from the frame's action-unit coefficients (or, for the
blood-flow effects, the clip's emotion). Patterns are evaluated at surface
points given by (face id, barycentric) so they stick to the skin as it moves.
A point's albedo becomes

    albedo * (1 + sum_c activation_c * pattern_c(point) * tint_c)

Groove patterns are positive on the crease and slightly negative on the
ridge beside it, so with a darkening tint a crease is a dark line with a
lighter edge (reads as relief under the fixed key light).

Corrective shapes (`CORRECTIVES`): rest-space displacement fields [V, 3]
times activations that are products or squares of coefficients (cheek bulge
~ AU6*AU12, lip roll ~ AU24^2, brow knit ~ AU1*AU4, cheek hollow ~ jaw^2),
added to the mesh before skinning. No linear combination of the expression
bases reproduces them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from emo_backend.head.expressions import AU_INDEX
from emo_backend.head.open_head.anatomy import ANATOMY as A
from emo_backend.head.open_head.anatomy import brow_line
from emo_backend.head.open_head.appearance import lip_mask, value_noise
from emo_backend.head.open_head.fields import smoothstep as _smoothstep

GROOVE = (-0.55, -0.62, -0.65)  # crease tint: darker, slightly warm
FLUSH = (0.02, -0.16, -0.14)    # blood: less green and blue
PALLOR = (-0.05, 0.02, 0.05)    # fear: less red
BLANCH = (0.10, 0.22, 0.20)     # pressed lips lose their red (towards skin colour)


def _lines(d: np.ndarray, width: float, ridge_offset: float) -> np.ndarray:
    """Groove profile across a crease at signed distance d: 1 on the crease, -0.35 on one ridge."""
    return np.exp(-((d / width) ** 2)) - 0.35 * np.exp(-(((d - ridge_offset) / (1.4 * width)) ** 2))


def _periodic_lines(s: np.ndarray, first: float, spacing: float, count: int, width: float) -> np.ndarray:
    out = np.zeros_like(s)
    for k in range(count):
        out += _lines(s - (first + k * spacing), width, -0.6 * spacing / 2)
    return out


def _side(x: np.ndarray, side: int) -> np.ndarray:
    """Soft split of the face at the midline: 1 on the subject's left (+X) for side=+1."""
    return _smoothstep(-0.004, 0.004, side * x)


def _front_skin(p: np.ndarray) -> np.ndarray:
    return _smoothstep(0.03, 0.05, p[:, 2])


def forehead(p: np.ndarray, side: int, medial: bool) -> np.ndarray:
    x, y = p[:, 0], p[:, 1]
    ax = np.abs(x)
    by, half = brow_line(x)
    s = y - (0.5 * by + 0.5 * 0.034)
    lines = _periodic_lines(s, 0.016, 0.0065, 4, 0.0010)
    breakup = 0.55 + 0.45 * value_noise(np.stack([x * 0.25, y * 3.0, p[:, 2] * 0.1], -1), 0.004, 91)
    band = _smoothstep(by + half + 0.004, by + half + 0.009, y) * _smoothstep(A.hairline_y - 0.002, A.hairline_y - 0.010, y)
    zone = _smoothstep(0.034, 0.014, ax) if medial else _smoothstep(0.014, 0.034, ax) * _smoothstep(0.062, 0.050, ax)
    return lines * breakup * band * zone * _side(x, side) * _front_skin(p)


def glabella(p: np.ndarray) -> np.ndarray:
    x, y = p[:, 0], p[:, 1]
    ax = np.abs(x)
    centre = 0.0055 + 0.08 * (y - 0.026)  # "11" lines, opening upwards
    vertical = _lines(ax - centre, 0.0009, -0.0022) * _smoothstep(0.021, 0.027, y) * _smoothstep(0.047, 0.040, y)
    nasion = _lines(y - 0.0195, 0.0009, 0.0018) * _smoothstep(0.013, 0.007, ax)
    return (vertical + 0.6 * nasion) * _front_skin(p)


def _curve_distance(x: np.ndarray, y: np.ndarray, ctrl: np.ndarray, samples: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """(signed distance, position along [0, 1]) from points to a quadratic Bezier in the XY plane.

    Positive on the side away from the midline (lateral)."""
    t = np.linspace(0.0, 1.0, samples)
    curve = ((1 - t)[:, None] ** 2) * ctrl[0] + (2 * (1 - t) * t)[:, None] * ctrl[1] + (t[:, None] ** 2) * ctrl[2]
    d2 = (x[:, None] - curve[None, :, 0]) ** 2 + (y[:, None] - curve[None, :, 1]) ** 2
    k = np.argmin(d2, axis=1)
    dist = np.sqrt(d2[np.arange(len(x)), k])
    sign = np.where(x > curve[k, 0], 1.0, -1.0)
    return sign * dist, t[k]


NASOLABIAL_CTRL = np.array([[0.0185, -0.022], [0.0300, -0.048], [0.0345, -0.072]])


def nasolabial(p: np.ndarray, side: int) -> np.ndarray:
    x, y = p[:, 0], p[:, 1]
    d, t = _curve_distance(np.abs(x), y, NASOLABIAL_CTRL)
    crease = np.exp(-((d / 0.0013) ** 2)) - 0.45 * np.exp(-(((d - 0.0045) / 0.0030) ** 2))
    along = _smoothstep(0.0, 0.12, t) * _smoothstep(1.0, 0.75, t)
    return crease * along * _side(x, side) * _front_skin(p)


def crows_feet(p: np.ndarray, side: int) -> np.ndarray:
    x, y = p[:, 0], p[:, 1]
    cx, cy = A.fissure_outer_x + 0.002, A.eye_y + 0.0005
    rx, ry = np.abs(x) - cx, y - cy
    r = np.hypot(rx, ry)
    angle = np.arctan2(ry, np.maximum(rx, 1e-6))
    out = np.zeros_like(x)
    for a0 in np.radians([-38.0, -16.0, 4.0, 24.0]):
        out += _lines((angle - a0) * r, 0.0007, 0.0015)
    fade = _smoothstep(0.002, 0.005, r) * _smoothstep(0.017, 0.011, r) * (rx > -0.001)
    return out * fade * _side(x, side) * _smoothstep(0.0, 0.02, p[:, 2])


def nose_wrinkles(p: np.ndarray) -> np.ndarray:
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    ax = np.abs(x)
    s = y + 0.45 * ax
    lines = _periodic_lines(s, -0.002, 0.0028, 5, 0.0007)
    breakup = 0.6 + 0.4 * value_noise(p * np.array([1.0, 4.0, 1.0]), 0.004, 92)
    zone = _smoothstep(0.018, 0.011, ax) * _smoothstep(-0.010, -0.004, y) * _smoothstep(0.020, 0.014, y)
    return lines * breakup * zone * _smoothstep(0.075, 0.085, z)


def cheek_flush(p: np.ndarray, side: int) -> np.ndarray:
    x, y = p[:, 0], p[:, 1]
    g = np.exp(-(((np.abs(x) - 0.042) / 0.015) ** 2 + ((y + 0.021) / 0.013) ** 2))
    return g * _side(x, side) * _front_skin(p)


def anger_flush(p: np.ndarray) -> np.ndarray:
    x, y = p[:, 0], p[:, 1]
    ax = np.abs(x)
    cheeks = np.exp(-(((ax - 0.045) / 0.02) ** 2 + ((y + 0.02) / 0.02) ** 2))
    brow = np.exp(-((x / 0.03) ** 2 + ((y - 0.045) / 0.02) ** 2))
    nose = np.exp(-((x / 0.012) ** 2 + ((y - A.nose_tip_y) / 0.02) ** 2))
    mottling = 0.8 + 0.2 * value_noise(p, 0.006, 93)
    base = 0.35 * _smoothstep(-0.16, -0.10, y)  # the whole face and the ears a little
    return np.clip(base + 0.9 * cheeks + 0.6 * brow + 0.6 * nose, 0, 1.2) * mottling


def pallor(p: np.ndarray) -> np.ndarray:
    return np.exp(-((p[:, 0] / 0.05) ** 2 + ((p[:, 1] + 0.01) / 0.05) ** 2))


def lips(p: np.ndarray) -> np.ndarray:
    return lip_mask(p)


@dataclass(frozen=True)
class Effect:
    name: str
    pattern: Callable[[np.ndarray], np.ndarray]   # rest points [N, 3] (skin) -> [N]
    tint: tuple[float, float, float]
    driver: str                                    # how the activation is computed (docs, tests)


def _au(expr: np.ndarray, name: str) -> float:
    return float(expr[AU_INDEX[name]])


EFFECTS: tuple[Effect, ...] = (
    Effect("forehead_medial_L", lambda p: forehead(p, +1, True), GROOVE, "AU1L"),
    Effect("forehead_medial_R", lambda p: forehead(p, -1, True), GROOVE, "AU1R"),
    Effect("forehead_lateral_L", lambda p: forehead(p, +1, False), GROOVE, "AU2L"),
    Effect("forehead_lateral_R", lambda p: forehead(p, -1, False), GROOVE, "AU2R"),
    Effect("glabella", glabella, GROOVE, "AU4 (+ AU9 at the nasion)"),
    Effect("nasolabial_L", lambda p: nasolabial(p, +1), GROOVE, "AU12L*(0.3+0.7*AU6L) + 0.4*AU9 + 0.3*AU10"),
    Effect("nasolabial_R", lambda p: nasolabial(p, -1), GROOVE, "AU12R*(0.3+0.7*AU6R) + 0.4*AU9 + 0.3*AU10"),
    Effect("crows_feet_L", lambda p: crows_feet(p, +1), GROOVE, "AU6L"),
    Effect("crows_feet_R", lambda p: crows_feet(p, -1), GROOVE, "AU6R"),
    Effect("nose_wrinkles", nose_wrinkles, GROOVE, "AU9"),
    Effect("cheek_flush_L", lambda p: cheek_flush(p, +1), FLUSH, "AU6L*AU12L"),
    Effect("cheek_flush_R", lambda p: cheek_flush(p, -1), FLUSH, "AU6R*AU12R"),
    Effect("anger_flush", anger_flush, FLUSH, "clip emotion: angry amount"),
    Effect("fear_pallor", pallor, PALLOR, "clip emotion: fear amount"),
    Effect("lip_blanch", lips, BLANCH, "AU24^2 + 0.5*AU23^2"),
)
EFFECT_NAMES = tuple(e.name for e in EFFECTS)
EFFECT_TINTS = np.array([e.tint for e in EFFECTS], dtype=np.float32)  # [C, 3]


def effect_patterns(points: np.ndarray, is_skin: np.ndarray) -> np.ndarray:
    """[N, C] pattern values at rest points [N, 3]; zero off the skin (eyes, teeth, mouth interior)."""
    out = np.zeros((len(points), len(EFFECTS)), dtype=np.float32)
    sel = np.flatnonzero(is_skin)
    if sel.size:
        p = points[sel].astype(np.float64)
        for c, effect in enumerate(EFFECTS):
            out[sel, c] = effect.pattern(p)
    return out


def effect_activations(
    expression: np.ndarray,   # [E] linear coefficients over ACTION_UNITS
    angry_amount: float = 0.0,  # the clip's emotion: weight of "angry" times intensity
    fear_amount: float = 0.0,
) -> np.ndarray:  # [C] float32
    """Per-frame activation of every effect (see each Effect's driver)."""
    e = np.asarray(expression, dtype=np.float64)
    au = lambda n: _au(e, n)  # noqa: E731
    act = {
        "forehead_medial_L": au("AU1L"), "forehead_medial_R": au("AU1R"),
        "forehead_lateral_L": au("AU2L"), "forehead_lateral_R": au("AU2R"),
        "glabella": min(1.0, au("AU4") + 0.3 * au("AU9")),
        "nasolabial_L": au("AU12L") * (0.3 + 0.7 * au("AU6L")) + 0.4 * au("AU9") + 0.3 * au("AU10"),
        "nasolabial_R": au("AU12R") * (0.3 + 0.7 * au("AU6R")) + 0.4 * au("AU9") + 0.3 * au("AU10"),
        "crows_feet_L": au("AU6L"), "crows_feet_R": au("AU6R"),
        "nose_wrinkles": au("AU9"),
        "cheek_flush_L": au("AU6L") * au("AU12L"), "cheek_flush_R": au("AU6R") * au("AU12R"),
        "anger_flush": angry_amount, "fear_pallor": fear_amount,
        "lip_blanch": au("AU24") ** 2 + 0.5 * au("AU23") ** 2,
    }
    return np.clip(np.array([act[n] for n in EFFECT_NAMES], dtype=np.float32), 0.0, 1.0)


# ------------------------------------------------------------------------------------------ corrective shapes

CORRECTIVE_NAMES: tuple[str, ...] = ("cheek_bulge_L", "cheek_bulge_R", "lip_roll", "brow_knit", "cheek_hollow")


def corrective_fields(
    rest: np.ndarray,      # [V, 3] template vertices
    normals: np.ndarray,   # [V, 3] template vertex normals (unit, outward)
    is_skin: np.ndarray,   # [V] bool: only skin moves
) -> np.ndarray:  # [K, V, 3] displacement at activation 1, CORRECTIVE_NAMES order
    x, y, z = rest[:, 0], rest[:, 1], rest[:, 2]
    up = np.array([0.0, 1.0, 0.0])
    fields = np.zeros((len(CORRECTIVE_NAMES), len(rest), 3))
    front = _smoothstep(0.03, 0.05, z)
    for k, side in ((0, +1), (1, -1)):
        g = np.exp(-(((x - side * 0.041) / 0.016) ** 2 + ((y + 0.019) / 0.014) ** 2)) * front
        fields[k] = g[:, None] * (0.0035 * normals + 0.0015 * up)
    g = np.exp(-((x / 0.026) ** 2 + ((y - A.mouth_y) / 0.011) ** 2)) * _smoothstep(A.mouth_z - 0.022, A.mouth_z - 0.012, z)
    fields[2, :, 2] = -0.0025 * g
    fields[2, :, 1] = -0.25 * (y - A.mouth_y) * g  # the lips roll in towards the slit
    g = np.exp(-((x / 0.013) ** 2 + ((y - 0.034) / 0.009) ** 2)) * front
    fields[3] = g[:, None] * (0.0015 * normals + 0.0012 * up)
    g = np.exp(-(((np.abs(x) - 0.050) / 0.014) ** 2 + ((y + 0.045) / 0.018) ** 2)) * _smoothstep(0.0, 0.03, z)
    fields[4] = -0.0022 * g[:, None] * normals
    fields[:, ~is_skin] = 0.0
    return fields.astype(np.float32)


def corrective_activations(expression: np.ndarray, jaw: float) -> np.ndarray:  # [K] float32
    """Non-linear activations of the corrective shapes for one frame."""
    e = np.asarray(expression, dtype=np.float64)
    au = lambda n: _au(e, n)  # noqa: E731
    brow_inner = 0.5 * (au("AU1L") + au("AU1R"))
    act = [
        au("AU6L") * au("AU12L"),
        au("AU6R") * au("AU12R"),
        au("AU24") ** 2 * (1.0 - au("AU25")),
        brow_inner * au("AU4"),
        min(1.0, (max(jaw, 0.0) / 0.3) ** 2),
    ]
    return np.clip(np.array(act, dtype=np.float32), 0.0, 1.0)
