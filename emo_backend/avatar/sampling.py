"""Poisson-disk sampling on a triangle mesh by weighted sample elimination (Yuksel, EG 2015).

Throw `oversample × count` area-uniform candidates on the surface, then
greedily remove the candidate with the most crowded neighbourhood until
`count` remain. Unlike dart throwing this hits an exact target count, and is
deterministic for a seed. Distances are Euclidean; candidates whose normals
face away from each other (upper and lower lip, both sides of an eyelid) do
not crowd each other, so thin folds keep their density on both sides.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor


def poisson_radius(area: float, count: int) -> float:
    """Largest Poisson-disk radius for `count` points on `area` (hexagonal packing): sqrt(A / (2√3 N))."""
    return math.sqrt(area / (2 * math.sqrt(3) * max(count, 1)))


def uniform_surface_samples(
    vertices: np.ndarray,  # [V, 3]
    faces: np.ndarray,     # [F, 3]
    count: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Area-uniform random points: (face_ids [count] int64, bary [count, 3] float64)."""
    tri = vertices[faces]
    areas = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=-1)
    if not np.isfinite(areas).all() or areas.sum() <= 0:
        raise ValueError("cannot sample a mesh with no area")
    face_ids = rng.choice(len(faces), size=count, p=areas / areas.sum())
    r1, r2 = rng.random(count), rng.random(count)
    s = np.sqrt(r1)
    bary = np.stack([1 - s, s * (1 - r2), s * r2], -1)
    return face_ids.astype(np.int64), bary


def eliminate_samples(
    points: np.ndarray,             # [M, 3]
    count: int,
    area: float,
    normals: np.ndarray | None = None,  # [M, 3] unit, or None
    alpha: float = 8.0,
    beta: float = 0.65,
    gamma: float = 1.5,
) -> np.ndarray:
    """Indices [count] (sorted) of the candidates kept by weighted sample elimination."""
    total = len(points)
    if count >= total:
        return np.arange(total)
    d_max = 2 * poisson_radius(area, count)
    # Weight limiting (Yuksel §3.2): distances below d_min count as d_min, which spreads points more evenly.
    d_min = d_max * beta * (1 - (count / total) ** gamma)
    pairs = cKDTree(points).query_pairs(d_max, output_type="ndarray")  # [P, 2], i < j
    if normals is not None and len(pairs):
        pairs = pairs[(normals[pairs[:, 0]] * normals[pairs[:, 1]]).sum(-1) > 0]
    dist = np.linalg.norm(points[pairs[:, 0]] - points[pairs[:, 1]], axis=-1)
    pair_weight = (1 - np.maximum(dist, d_min) / d_max) ** alpha
    # Symmetric adjacency in CSR form.
    src = np.concatenate([pairs[:, 0], pairs[:, 1]])
    dst = np.concatenate([pairs[:, 1], pairs[:, 0]])
    pw = np.concatenate([pair_weight, pair_weight])
    order = np.argsort(src, kind="stable")
    src, dst, pw = src[order], dst[order], pw[order]
    indptr = np.searchsorted(src, np.arange(total + 1))
    weight = np.bincount(src, weights=pw, minlength=total)

    alive = np.ones(total, dtype=bool)
    # Max-heap with lazy deletion: stale entries (weight changed since pushed) are skipped.
    heap = [(-w, i) for i, w in enumerate(weight.tolist())]
    heapq.heapify(heap)
    remaining = total
    while remaining > count:
        neg_w, i = heapq.heappop(heap)
        if not alive[i] or -neg_w != weight[i]:
            continue
        alive[i] = False
        remaining -= 1
        lo, hi = indptr[i], indptr[i + 1]
        nbrs, w = dst[lo:hi], pw[lo:hi]
        live = alive[nbrs]
        nbrs, w = nbrs[live], w[live]
        weight[nbrs] -= w
        for j, wj in zip(nbrs.tolist(), weight[nbrs].tolist()):
            heapq.heappush(heap, (-wj, j))
    return np.flatnonzero(alive)


def poisson_disk_sample(
    vertices: Tensor,               # [V, 3]
    faces: Tensor,                  # [F, 3]
    count: int,
    *,
    seed: int = 0,
    face_subset: Tensor | None = None,  # [Fs] face ids to sample, or None for all
    oversample: int = 5,
) -> tuple[Tensor, Tensor]:
    """`count` Poisson-disk samples on (a subset of) a mesh: (face_ids [count] int64, bary [count, 3] float32)."""
    if count <= 0:
        return torch.zeros(0, dtype=torch.int64), torch.zeros(0, 3)
    verts = vertices.detach().cpu().double().numpy()
    all_faces = faces.detach().cpu().numpy()
    subset = np.arange(len(all_faces)) if face_subset is None else face_subset.detach().cpu().numpy()
    sub_faces = all_faces[subset]
    rng = np.random.default_rng(seed)
    local_ids, bary = uniform_surface_samples(verts, sub_faces, count * oversample, rng)
    tri = verts[sub_faces[local_ids]]  # [M, 3, 3]
    points = (tri * bary[..., None]).sum(1)
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-30)
    f = verts[sub_faces]
    area = float(0.5 * np.linalg.norm(np.cross(f[:, 1] - f[:, 0], f[:, 2] - f[:, 0]), axis=-1).sum())
    keep = eliminate_samples(points, count, area, normals)
    return torch.from_numpy(subset[local_ids[keep]]).long(), torch.from_numpy(bary[keep]).float()


def local_spacing(points: Tensor, neighbours: int = 6) -> Tensor:
    """points [N, 3] -> mean distance [N] to the `neighbours` nearest other points (the local sample spacing)."""
    pts = points.detach().cpu().double().numpy()
    k = min(neighbours, len(pts) - 1)
    if k < 1:
        return torch.ones(len(pts))
    dist, _ = cKDTree(pts).query(pts, k=k + 1)
    return torch.from_numpy(dist[:, 1:].mean(-1)).float()
