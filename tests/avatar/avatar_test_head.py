"""A small synthetic FLAME-structured head for the avatar tests: an icosphere skull with
smooth random expression bases, a jaw, eyes, and a mouth interior (teeth strips, tongue)."""

from __future__ import annotations

import math

import torch

from emo_backend.head.model import HeadModel

RADIUS = 0.1  # metres


def icosphere(subdivisions: int) -> tuple[torch.Tensor, torch.Tensor]:
    t = (1 + math.sqrt(5)) / 2
    verts = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t), (0, -1, -t), (0, 1, -t),
             (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    faces = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2),
             (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5), (2, 4, 11),
             (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    verts = [tuple(c / math.sqrt(1 + t * t) for c in v) for v in verts]
    for _ in range(subdivisions):
        cache: dict[tuple[int, int], int] = {}

        def mid(a: int, b: int) -> int:
            key = (min(a, b), max(a, b))
            if key not in cache:
                p = [(x + y) / 2 for x, y in zip(verts[a], verts[b])]
                n = math.sqrt(sum(c * c for c in p))
                verts.append(tuple(c / n for c in p))
                cache[key] = len(verts) - 1
            return cache[key]

        new = []
        for a, b, c in faces:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            new += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new
    return torch.tensor(verts, dtype=torch.float32), torch.tensor(faces, dtype=torch.int64)


def strip(x0: float, x1: float, y: float, z0: float, z1: float, nx: int, nz: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A horizontal grid (normal +Y for upper->down? no: CCW from +Y) of (nx × nz) quads."""
    xs, zs = torch.linspace(x0, x1, nx + 1), torch.linspace(z0, z1, nz + 1)
    gx, gz = torch.meshgrid(xs, zs, indexing="ij")
    verts = torch.stack([gx, torch.full_like(gx, y), gz], -1).reshape(-1, 3)
    faces = []
    for i in range(nx):
        for j in range(nz):
            a, b, c, d = i * (nz + 1) + j, (i + 1) * (nz + 1) + j, (i + 1) * (nz + 1) + j + 1, i * (nz + 1) + j + 1
            faces += [(a, d, c), (a, c, b)]
    return verts, torch.tensor(faces, dtype=torch.int64)


def synthetic_head(num_expressions: int = 3, seed: int = 0, subdivisions: int = 3) -> HeadModel:
    gen = torch.Generator().manual_seed(seed)
    sphere_v, sphere_f = icosphere(subdivisions)
    sphere_v = sphere_v * RADIUS
    # Mouth interior inside the sphere, behind the front (+Z): lower teeth, upper teeth, tongue.
    parts = [strip(-0.03, 0.03, -0.03, 0.05, 0.075, 6, 3),   # lower teeth
             strip(-0.03, 0.03, -0.01, 0.05, 0.075, 6, 3),   # upper teeth
             strip(-0.02, 0.02, -0.04, 0.02, 0.05, 4, 3)]    # tongue
    verts, faces, regions, part_vertex_ranges = [sphere_v], [sphere_f], {}, []
    offset_v, offset_f = sphere_v.shape[0], sphere_f.shape[0]
    for name, (pv, pf) in zip(("lower_teeth", "upper_teeth", "tongue"), parts):
        verts.append(pv)
        faces.append(pf + offset_v)
        regions[name] = torch.arange(offset_f, offset_f + pf.shape[0])
        part_vertex_ranges.append((name, offset_v, offset_v + pv.shape[0]))
        offset_v += pv.shape[0]
        offset_f += pf.shape[0]
    v = torch.cat(verts)
    f = torch.cat(faces)
    regions["mouth_interior"] = torch.cat([regions[n] for n in ("lower_teeth", "upper_teeth", "tongue")])
    num_v = v.shape[0]

    # Smooth expression bases on the skin only: low-frequency fields with a Gaussian falloff around a centre.
    exprdirs = torch.zeros(num_v, 3, num_expressions)
    for k in range(num_expressions):
        centre = torch.nn.functional.normalize(torch.randn(3, generator=gen), dim=0) * RADIUS
        direction = torch.randn(3, generator=gen) * 0.01
        freq = torch.randn(3, generator=gen) * 20
        falloff = torch.exp(-((sphere_v - centre) ** 2).sum(-1) / (2 * 0.05**2))
        wave = 1 + 0.5 * torch.sin(sphere_v @ freq)
        exprdirs[: sphere_v.shape[0], :, k] = (falloff * wave)[:, None] * direction
    # Joints: root at centre, neck below, jaw behind the mouth, eyes at the front.
    joints = torch.tensor([[0, 0, 0], [0, -0.08, -0.01], [0, -0.02, 0.0], [0.03, 0.03, 0.08], [-0.03, 0.03, 0.08]],
                          dtype=torch.float32)
    # j_regressor: each joint is the mean of its nearest vertices (so joints follow the shape).
    dist = torch.cdist(joints, sphere_v)
    near = dist.topk(4, largest=False).indices
    j_regressor = torch.zeros(5, num_v)
    for j in range(5):
        j_regressor[j, near[j]] = 1 / 4
    rest_joints = j_regressor @ v
    # Skinning: upper head -> root, lower front -> jaw (smooth), bottom -> neck; eyes to eye joints.
    w = torch.zeros(num_v, 5)
    y, z = v[:, 1], v[:, 2]
    jaw = torch.sigmoid((-(y + 0.02) / 0.01)) * torch.sigmoid(z / 0.02)
    neck = torch.sigmoid((-(y + 0.07) / 0.01)) * (1 - jaw)
    w[:, 2] = jaw
    w[:, 1] = neck
    for eye, joint in ((3, rest_joints[3]), (4, rest_joints[4])):
        w[:, eye] = (((v - joint) ** 2).sum(-1) < 0.012**2).float()
    w[:, 0] = (1 - w[:, 1:].sum(-1)).clamp_min(0)
    for name, lo, hi in part_vertex_ranges:
        w[lo:hi] = 0
        w[lo:hi, 0 if name == "upper_teeth" else 2] = 1
    w = w / w.sum(-1, keepdim=True)

    lm_faces = torch.randint(0, sphere_f.shape[0], (68,), generator=gen)
    lm_bary = torch.softmax(torch.randn(68, 3, generator=gen), -1)
    colors = 0.5 + 0.4 * torch.sin(v * 40)
    return HeadModel(
        model_id="synthetic-test-head",
        v_template=v,
        faces=f,
        shapedirs=torch.randn(num_v, 3, 2, generator=gen) * 1e-3,
        exprdirs=exprdirs,
        expr_names=tuple(f"exp{k:03d}" for k in range(num_expressions)),
        j_regressor=j_regressor,
        parents=torch.tensor([-1, 0, 1, 1, 1]),
        lbs_weights=w,
        landmark_faces=lm_faces,
        landmark_bary=lm_bary,
        regions=regions,
        vertex_colors=colors.clamp(0, 1),
    )
