"""Procedural albedo of the open head: skin, lips, brows, hair, eyes, mouth.

`albedo_at` evaluates colour at any point on the surface given by (face id,
barycentric): it is a pure function of the point's rest position and of the
part the face belongs to, so Gaussians sampled anywhere on the head get the
same colours as the vertices, only sharper (iris, pupil, brows, hairline).
Colours are sRGB in [0, 1].
"""

from __future__ import annotations

import re

import numpy as np
import torch
from torch import Tensor

from emo_backend.head.model import HeadModel
from emo_backend.head.open_head.anatomy import ANATOMY as A
from emo_backend.head.open_head.anatomy import brow_line, lower_lip_border, upper_lip_border
from emo_backend.head.open_head.geometry import lid_opening
from emo_backend.head.open_head.fields import smoothstep as _smoothstep

# The disjoint parts every face belongs to (also regions of the model), in material-id order.
PARTS: tuple[str, ...] = ("skin", "ears", "eye_sockets", "mouth_cavity", "left_eyeball", "right_eyeball",
                          "upper_teeth", "lower_teeth", "tongue")
PART_ID = {name: i for i, name in enumerate(PARTS)}

SKIN_TONES = np.array([[0.80, 0.60, 0.49], [0.88, 0.71, 0.60], [0.67, 0.47, 0.35], [0.50, 0.34, 0.24],
                       [0.36, 0.23, 0.16], [0.84, 0.66, 0.52]])
HAIR_COLOURS = np.array([[0.19, 0.13, 0.09], [0.08, 0.06, 0.05], [0.42, 0.30, 0.18], [0.55, 0.42, 0.26],
                         [0.35, 0.14, 0.07]])
LIP_TINT = np.array([0.87, 0.63, 0.72])  # lips: the skin tone, redder and darker
BROWS = np.array([0.23, 0.16, 0.11])
LASHES = np.array([0.10, 0.07, 0.06])
SCLERA = np.array([0.93, 0.91, 0.87])
TEETH = np.array([0.93, 0.90, 0.80])
TONGUE = np.array([0.78, 0.40, 0.40])
MOUTH = np.array([0.42, 0.14, 0.14])
IRIS_COLOURS = np.array([[0.36, 0.24, 0.13], [0.30, 0.42, 0.52], [0.33, 0.38, 0.22], [0.25, 0.16, 0.09]])


def _hash3(i: np.ndarray, seed: int) -> np.ndarray:
    """Deterministic pseudo-random values in [0, 1) for integer lattice points i [N, 3]."""
    h = (i[:, 0] * 73856093) ^ (i[:, 1] * 19349663) ^ (i[:, 2] * 83492791) ^ (seed * 2654435761)
    h = (h ^ (h >> 13)) * 1274126177
    h = h ^ (h >> 16)
    return (h & 0xFFFFFF).astype(np.float64) / float(0x1000000)


def value_noise(p: np.ndarray, cell: float, seed: int = 0) -> np.ndarray:
    """Smooth value noise in [-1, 1] at points p [N, 3] with lattice spacing `cell` (metres)."""
    q = p / cell
    i0 = np.floor(q).astype(np.int64)
    f = q - i0
    f = f * f * (3 - 2 * f)
    out = np.zeros(len(p))
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                wx = f[:, 0] if dx else 1 - f[:, 0]
                wy = f[:, 1] if dy else 1 - f[:, 1]
                w = wx * wy * (f[:, 2] if dz else 1 - f[:, 2])
                out += w * _hash3(i0 + np.array([dx, dy, dz]), seed)
    return out * 2 - 1


def _hairline(p: np.ndarray) -> np.ndarray:
    """Height of the hairline at each point's azimuth around the head."""
    az = np.abs(np.arctan2(p[:, 0], p[:, 2]))  # 0 in front, pi at the back
    return np.interp(az, [0.0, 0.35, 0.65, 0.95, 1.25, 1.50, 1.75, 2.05, 2.5, np.pi],
                     [0.078, 0.082, 0.088, 0.070, 0.040, 0.042, 0.040, 0.010, -0.045, -0.060])


def _skin(p: np.ndarray, seed: int) -> np.ndarray:
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    ax = np.abs(x)
    col = np.tile(SKIN_TONES[seed % len(SKIN_TONES)], (len(p), 1))
    lum = (1 + 0.035 * value_noise(p, 0.02, seed) + 0.02 * value_noise(p, 0.006, seed + 1)
           + 0.012 * value_noise(p, 0.0015, seed + 2))
    col = col * lum[:, None]
    red = (0.55 * np.exp(-(((ax - 0.045) / 0.016) ** 2 + ((y + 0.018) / 0.016) ** 2)) * (z > 0.03)
           + 0.7 * np.exp(-((x / 0.012) ** 2 + ((y - A.nose_tip_y) / 0.012) ** 2)) * (z > 0.09)
           + 0.5 * _smoothstep(0.065, 0.080, ax) * _smoothstep(-0.03, 0.0, y) * _smoothstep(0.045, 0.025, y))
    col = col + red[:, None] * np.array([0.05, -0.035, -0.03])
    # Nostrils: dark openings under the nose.
    nostril = np.exp(-(((ax - 0.0065) / 0.0030) ** 2 + ((y + 0.0378) / 0.0018) ** 2 + ((z - 0.100) / 0.005) ** 2))
    col = col * (1 - 0.75 * nostril)[:, None]
    # A slightly darker neck.
    col = col * (1 - 0.06 * _smoothstep(-0.10, -0.15, y))[:, None]
    # Lips.
    corner_x = A.mouth_corner_x
    top, bottom = upper_lip_border(x, corner_x), lower_lip_border(x, corner_x)
    edge = 0.0006
    lips = (_smoothstep(top + edge, top - edge, y) * _smoothstep(bottom - edge, bottom + edge, y)
            * _smoothstep(corner_x + 0.001, corner_x - 0.002, ax) * (z > A.mouth_z - 0.025))
    lip_tint = SKIN_TONES[seed % len(SKIN_TONES)] * LIP_TINT
    lip_col = lip_tint * (1 + 0.04 * value_noise(p, 0.0012, seed + 3))[:, None]
    col = col * (1 - lips[:, None]) + lip_col * lips[:, None]
    # Eyebrows: streaky hair along a band.
    by, half = brow_line(x)
    strands = 0.5 + 0.5 * value_noise(np.stack([x * 6, y * 0.6, z], -1), 0.0018, seed + 4)
    brow = (_smoothstep(half + 0.0012, half - 0.0008, np.abs(y - by)) * _smoothstep(0.011, 0.014, ax)
            * _smoothstep(0.056, 0.050, ax) * (z > 0.05))
    brow = np.clip(brow * (0.80 + 0.30 * strands), 0, 1) * 0.92
    brow_col = 0.5 * BROWS + 0.5 * HAIR_COLOURS[seed % len(HAIR_COLOURS)]
    col = col * (1 - brow[:, None]) + brow_col * brow[:, None]
    # Lash lines along the lid edges, a soft crease and shadow above the upper lid.
    inner, outer = A.fissure_inner_x, A.fissure_outer_x
    up, down = lid_opening(ax, inner, outer)
    in_fissure = _smoothstep(inner - 0.001, inner + 0.001, ax) * _smoothstep(outer + 0.0015, outer - 0.0005, ax) * (z > A.eye_z)
    d_up = y - (A.eye_y + up)
    lash = _smoothstep(0.0024, 0.0006, d_up) * _smoothstep(-0.0015, -0.0004, d_up) * in_fissure
    d_lo = (A.eye_y - down) - y
    lash_lo = 0.35 * _smoothstep(0.0016, 0.0003, d_lo) * _smoothstep(-0.0012, -0.0003, d_lo) * in_fissure
    crease = 0.10 * np.exp(-(((d_up - 0.0065) / 0.0022) ** 2)) * in_fissure
    col = col * (1 - crease)[:, None]
    lash_all = np.clip(lash + lash_lo, 0, 1)[:, None]
    col = col * (1 - lash_all) + LASHES * lash_all
    # Hair cap.
    hairline = _hairline(p)
    fuzz = 0.0015 * value_noise(p, 0.006, seed + 5)
    hair = _smoothstep(hairline - 0.004, hairline + 0.005, y + fuzz)
    streaks = value_noise(np.stack([x * 0.7, y * 3.0, z * 0.7], -1), 0.003, seed + 6)
    hair_col = HAIR_COLOURS[seed % len(HAIR_COLOURS)] * (1 + 0.18 * streaks)[:, None]
    col = col * (1 - hair[:, None]) + hair_col * hair[:, None]
    return col


def hair_mask(p: np.ndarray) -> np.ndarray:
    return (p[:, 1] > _hairline(p)).astype(np.float64)


def lip_mask(p: np.ndarray) -> np.ndarray:
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    top, bottom = upper_lip_border(x, A.mouth_corner_x), lower_lip_border(x, A.mouth_corner_x)
    return ((y < top) & (y > bottom) & (np.abs(x) < A.mouth_corner_x + 0.0005) & (z > A.mouth_z - 0.025)).astype(float)


def _ear_shading(p: np.ndarray) -> np.ndarray:
    """Darker inside the bowl of the ear (the concha) on its outer face, so the ear reads as an ear."""
    sign = np.sign(p[:, 0])
    away = np.stack([sign * np.cos(A.ear_yaw), np.zeros(len(p)), np.full(len(p), np.sin(A.ear_yaw))], -1)
    rel = p - np.stack([sign * A.ear_x, np.full(len(p), A.ear_y), np.full(len(p), A.ear_z)], -1)
    out_of_plane = (rel * away).sum(1)
    in_plane = np.linalg.norm(rel - out_of_plane[:, None] * away, axis=1)
    bowl = np.exp(-((in_plane / 0.011) ** 2)) * _smoothstep(-0.003, 0.0, out_of_plane)
    return 1.0 - 0.35 * bowl


def _eyeball(p: np.ndarray, centre: np.ndarray, seed: int) -> np.ndarray:
    rel = p - centre
    r = np.linalg.norm(rel, axis=1)
    alpha = np.arccos(np.clip(rel[:, 2] / np.maximum(r, 1e-12), -1, 1))  # angle from the gaze (+Z)
    ring = np.sin(alpha) * A.eye_radius  # distance from the gaze axis
    iris_col = IRIS_COLOURS[seed % len(IRIS_COLOURS)]
    spokes = value_noise(np.stack([np.arctan2(rel[:, 1], rel[:, 0]) * 0.01, ring * 0.08, np.zeros_like(r)], -1) * 1.0,
                         0.0008, seed + 7)
    t = ring / A.iris_radius
    iris = iris_col * (1.0 + 0.25 * spokes[:, None] + 0.35 * (0.4 - np.abs(t - 0.6))[:, None])
    iris = iris * (1 - 0.45 * _smoothstep(0.82, 1.0, t))[:, None]  # dark limbal ring
    front = rel[:, 2] > 0
    sclera = SCLERA * (1 - 0.08 * _smoothstep(0.9, 1.5, alpha))[:, None]
    veins = 0.06 * _smoothstep(0.6, 1.3, alpha) * (0.5 + 0.5 * value_noise(p, 0.002, seed + 8))  # redder at the sides
    sclera = sclera + veins[:, None] * np.array([0.4, -0.5, -0.5])
    in_iris = (_smoothstep(1.03, 0.97, t) * front)[:, None]
    col = sclera * (1 - in_iris) + iris * in_iris
    pupil = A.pupil_radius / A.iris_radius
    in_pupil = (_smoothstep(pupil + 0.03, pupil - 0.03, t) * front)[:, None]
    return col * (1 - in_pupil) + np.array([0.02, 0.02, 0.02]) * in_pupil


def _inside_mouth(p: np.ndarray, part: str) -> np.ndarray:
    depth = np.clip((A.mouth_z - p[:, 2]) / 0.06, 0, 1)  # 0 at the lips, 1 at the throat
    if part == "upper_teeth" or part == "lower_teeth":
        gum = _smoothstep(0.006, 0.010, np.abs(p[:, 1] - A.mouth_y))
        col = TEETH * (1 - 0.25 * depth)[:, None]
        return col * (1 - gum[:, None]) + np.array([0.75, 0.42, 0.42]) * gum[:, None]
    if part == "tongue":
        return TONGUE * (1 + 0.06 * value_noise(p, 0.0015, 11))[:, None] * (1 - 0.3 * depth)[:, None]
    lip_inner = np.array([0.62, 0.30, 0.30])
    t = _smoothstep(0.004, 0.02, A.mouth_z - p[:, 2])
    col = lip_inner * (1 - t[:, None]) + MOUTH * t[:, None]
    return col * (1 - 0.65 * depth)[:, None]


def albedo_points(
    points: np.ndarray,    # [N, 3] rest positions (template space)
    part_ids: np.ndarray,  # [N] indices into PARTS
    eye_centres: dict[str, np.ndarray],
    seed: int = 0,
) -> np.ndarray:
    """sRGB albedo [N, 3] of surface points of the given parts."""
    out = np.zeros((len(points), 3))
    for name, pid in PART_ID.items():
        sel = part_ids == pid
        if not sel.any():
            continue
        p = points[sel]
        if name == "skin":
            out[sel] = _skin(p, seed)
        elif name == "ears":
            out[sel] = _skin(p, seed) * _ear_shading(p)[:, None]
        elif name == "eye_sockets":  # the lid margins: lashes along the upper one, wet pink on the lower
            upper = _smoothstep(A.eye_y - 0.001, A.eye_y + 0.001, p[:, 1])[:, None]
            out[sel] = LASHES * upper + np.array([0.72, 0.46, 0.43]) * (1 - upper)
        elif name in ("left_eyeball", "right_eyeball"):
            out[sel] = _eyeball(p, eye_centres[name.split("_")[0]], seed)
        else:
            out[sel] = _inside_mouth(p, name)
    return np.clip(out, 0.0, 1.0)


def seed_of(head: HeadModel) -> int:
    """The appearance seed encoded in an open head's model id ("open-head-v1" is seed 0, "...+s7" seed 7)."""
    m = re.search(r"\+s(\d+)$", head.model_id)
    return int(m.group(1)) if m else 0


def face_parts(head: HeadModel) -> np.ndarray:
    """[F] part id of every face, from the model's regions."""
    ids = np.zeros(int(head.faces.shape[0]), dtype=np.int64)
    for name, pid in PART_ID.items():
        if name in head.regions:
            ids[head.regions[name].cpu().numpy()] = pid
    return ids


def eye_centres_of(head: HeadModel) -> dict[str, np.ndarray]:
    joints = (head.j_regressor.double() @ head.v_template.double()).cpu().numpy()
    return {"left": joints[3], "right": joints[4]}


def albedo_at(head: HeadModel, face_ids: Tensor, bary: Tensor) -> Tensor:
    """sRGB albedo [N, 3] at surface points (face_ids [N] int, bary [N, 3]) of an open head, on their device."""
    device = bary.device if isinstance(bary, Tensor) else "cpu"
    f = torch.as_tensor(face_ids).long().cpu().numpy()
    b = torch.as_tensor(bary).double().cpu().numpy()
    verts = head.v_template.double().cpu().numpy()
    tri = head.faces.cpu().numpy()[f]
    points = (verts[tri] * b[:, :, None]).sum(1)
    colors = albedo_points(points, face_parts(head)[f], eye_centres_of(head), seed_of(head))
    return torch.from_numpy(colors).float().to(device)
