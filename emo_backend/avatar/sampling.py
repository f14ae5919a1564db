"""Poisson-disk sampling on a triangle mesh by weighted sample elimination (Yuksel, EG 2015).

Throw `oversample × count` area-uniform candidates on the surface, then
greedily remove the candidate with the most crowded neighbourhood until
`count` remain. Unlike dart throwing this hits an exact target count, and is
deterministic for a seed. Distances are Euclidean; candidates whose normals
face away from each other (upper and lower lip, both sides of an eyelid) do
not crowd each other, so thin folds keep their density on both sides.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
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
    alive = _eliminate(weight, indptr.astype(np.int64), dst.astype(np.int64), pw.astype(np.float64), count)
    return np.flatnonzero(alive)


@njit(cache=True)
def _heavier(weight: np.ndarray, a: int, b: int) -> bool:
    # Ties go to the lower index, so the result does not depend on heap layout.
    return weight[a] > weight[b] or (weight[a] == weight[b] and a < b)


@njit(cache=True)
def _sift_down(heap: np.ndarray, pos: np.ndarray, weight: np.ndarray, size: int, i: int) -> None:
    while True:
        left, right, top = 2 * i + 1, 2 * i + 2, i
        if left < size and _heavier(weight, heap[left], heap[top]):
            top = left
        if right < size and _heavier(weight, heap[right], heap[top]):
            top = right
        if top == i:
            return
        heap[i], heap[top] = heap[top], heap[i]
        pos[heap[i]] = i
        pos[heap[top]] = top
        i = top


@njit(cache=True)
def _eliminate(weight: np.ndarray, indptr: np.ndarray, dst: np.ndarray, pw: np.ndarray, count: int) -> np.ndarray:
    """Indexed max-heap on weight: pop the most crowded sample, lower its neighbours' weights, repeat."""
    size = weight.shape[0]
    heap = np.arange(size)
    pos = np.arange(size)
    for i in range(size // 2 - 1, -1, -1):
        _sift_down(heap, pos, weight, size, i)
    alive = np.ones(size, dtype=np.bool_)
    while size > count:
        top = heap[0]
        alive[top] = False
        size -= 1
        heap[0] = heap[size]
        pos[heap[0]] = 0
        _sift_down(heap, pos, weight, size, 0)
        for e in range(indptr[top], indptr[top + 1]):
            j = dst[e]
            if alive[j]:
                weight[j] -= pw[e]  # lighter now: it can only move down the max-heap
                _sift_down(heap, pos, weight, size, pos[j])
    return alive


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
