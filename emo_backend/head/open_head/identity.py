"""Identity bases of the open head and random identities.

Each basis is a displacement field [V, 3]; coefficient +-1 is about one
standard deviation of adult variation in that trait, +-2 an extreme. Rigid
parts (eyeballs, each tooth, the tongue) are moved, never bent: they take
the field's value at their own centre.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from emo_backend.head.open_head.anatomy import ANATOMY as A
from emo_backend.head.open_head.assemble import Assembly
from emo_backend.head.open_head.fields import smoothstep as _smoothstep, gauss as _gauss, fold_x as _fold

IDENTITY_NAMES: tuple[str, ...] = (
    "head_width", "face_length", "nose_size", "nose_projection", "jaw_width",
    "eye_spacing", "lip_fullness", "chin_projection", "cheekbones", "brow_ridge",
)


def identity_field(p: np.ndarray, name: str) -> np.ndarray:
    """Displacement [N, 3] of points p [N, 3] for one identity basis at coefficient 1."""
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    sx = np.sign(x)
    q = _fold(p)
    d = np.zeros_like(p)
    if name == "head_width":
        d[:, 0] = 0.06 * x * (0.55 + 0.45 * _smoothstep(-0.06, 0.02, y))
    elif name == "face_length":
        below = np.clip(A.eye_y - y, 0.0, None)
        d[:, 1] = -0.06 * np.minimum(below, 0.13)
    elif name == "nose_size":
        c = np.array([0.0, -0.020, 0.092])
        g = _gauss(p, (0.0, -0.012, 0.10), (0.016, 0.026, 0.02))
        d = (p - c) * 0.2 * g[:, None]
    elif name == "nose_projection":
        g = _gauss(p, (0.0, -0.015, 0.105), (0.010, 0.026, 0.02))
        d[:, 2] = 0.0045 * g
        d[:, 1] = -0.0015 * g
    elif name == "jaw_width":
        g = _smoothstep(-0.03, -0.07, y) * _smoothstep(0.015, 0.05, np.abs(x)) * _smoothstep(-0.03, 0.01, z)
        d[:, 0] = 0.007 * sx * g
    elif name == "eye_spacing":
        g = _gauss(q, (A.eye_x, A.eye_y, A.eye_z), (0.016, 0.014, 0.03))
        d[:, 0] = 0.003 * sx * np.clip(g * 1.4, 0, 1)
    elif name == "lip_fullness":
        g = _gauss(p, (0.0, A.mouth_y, A.mouth_z), (0.024, 0.012, 0.012)) * (z > A.mouth_z - 0.02)
        d[:, 2] = 0.0022 * g
        d[:, 1] = 0.0016 * np.tanh((y - A.mouth_y) / 0.004) * g
    elif name == "chin_projection":
        g = _gauss(p, (0.0, -0.098, 0.085), (0.022, 0.018, 0.03))
        d[:, 2] = 0.005 * g
        d[:, 1] = -0.0015 * g
    elif name == "cheekbones":
        g = _gauss(q, (0.052, -0.008, 0.062), (0.016, 0.014, 0.025))
        d[:, 0] = 0.0035 * sx * g
        d[:, 2] = 0.003 * g
    elif name == "brow_ridge":
        g = _gauss(q, (0.022, 0.034, 0.09), (0.03, 0.01, 0.02))
        d[:, 2] = 0.0035 * g
    else:
        raise KeyError(name)
    return d


def identity_bases(asm: Assembly) -> np.ndarray:
    """[V, 3, S] shape bases in IDENTITY_NAMES order."""
    v = asm.vertices
    groups = [asm.part_vertices(n) for n in ("left_eyeball", "right_eyeball", "tongue")]
    groups += [box for name in ("upper", "lower") for box in asm.teeth_boxes[name]]
    out = []
    for name in IDENTITY_NAMES:
        d = identity_field(v, name)
        for ids in groups:
            d[ids] = identity_field(v[ids].mean(0, keepdims=True), name)
        out.append(d)
    return np.stack(out, -1)


def random_identity(seed: int, scale: float = 1.0) -> Tensor:
    """Identity coefficients [S] for a random person: seeds give different, plausible heads.

    Coefficients are normal with standard deviation `scale`, clipped to +-2, drawn
    from a generator seeded with `seed` (deterministic on every machine).
    """
    gen = torch.Generator().manual_seed(int(seed))
    return (torch.randn(len(IDENTITY_NAMES), generator=gen, dtype=torch.float64) * scale).clamp(-2, 2).float()
