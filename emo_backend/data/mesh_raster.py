"""A CPU triangle-mesh rasteriser: the project's way to look at meshes.

It renders the synthetic actor's ground-truth frames and debug views of the
head model. It deliberately shares no code with the Gaussian splat renderers
in `emo_backend/render/` (only the camera convention), so a bug there cannot
hide itself by also being here.

Camera convention (emo_backend/render/camera.py, gsplat's): `viewmat` [4, 4]
world-to-camera, +Z forward, +Y down, +X right; `K` [3, 3] in pixels; pixel
(x, y) covers [x, x+1) × [y, y+1) and is sampled at its centre (x+0.5, y+0.5).

Rasterisation rules:
* z-buffer on camera-space z (smaller is nearer); on an exact depth tie the
  lower face id wins, so results do not depend on anything but the input.
* Near plane: a triangle with ANY vertex at z <= `near` is skipped whole (no
  clipping). Keep cameras further than `near` from the mesh.
* Coverage uses the top-left fill rule on edge functions that are evaluated in
  a canonical vertex order, so two triangles sharing an edge compute exactly
  negated values there: every pixel centre on a shared edge belongs to exactly
  one of them (no cracks, no double coverage).
* Barycentrics are perspective-correct: the interpolated 3D point lies on the
  pixel's ray.
* Backface culling is off by default (the mouth cavity is seen from inside).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

import numba
import numpy as np

from emo_backend.files.images import write_png

DEFAULT_NEAR = 1e-3  # metres


class Fragments(NamedTuple):
    face_id: np.ndarray  # [H, W] int32, -1 where no triangle covers the pixel centre
    bary: np.ndarray     # [H, W, 3] float32 perspective-correct barycentrics (0 where empty)
    depth: np.ndarray    # [H, W] float32 camera-space z, +inf where empty


def _as_numpy(x, dtype) -> np.ndarray:
    """numpy or torch (any device) -> contiguous numpy array of `dtype`."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(x), dtype=dtype)


def _check_mesh(vertices: np.ndarray, faces: np.ndarray) -> None:
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices must be [V, 3], got {vertices.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must be [F, 3], got {faces.shape}")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise ValueError(f"face indices must lie in [0, {len(vertices)}), got [{faces.min()}, {faces.max()}]")


def world_to_camera(vertices: np.ndarray, viewmat: np.ndarray) -> np.ndarray:
    """vertices [V, 3] world -> [V, 3] camera space (float64)."""
    return vertices @ viewmat[:3, :3].T + viewmat[:3, 3]


@numba.njit(cache=True, inline="always")
def _edge(ax, ay, bx, by, px, py):
    """Edge function (b - a) × (p - a) of the directed edge a->b at p.

    Evaluated from a canonical (lexicographically smaller endpoint first) order,
    so the reversed edge b->a yields exactly the negated value, bit for bit.
    """
    if ax < bx or (ax == bx and ay < by):
        return (bx - ax) * (py - ay) - (by - ay) * (px - ax)
    return -((ax - bx) * (py - by) - (ay - by) * (px - bx))


@numba.njit(cache=True, inline="always")
def _owns_edge(ax, ay, bx, by, orient):
    """Top-left rule: does a triangle of orientation `orient` (+1/-1) own pixels lying exactly on edge a->b?

    The triangle owns the edge when its inward normal points to +x, or, for a
    horizontal edge, to +y (the triangle lies below it: a "top" edge with +Y down).
    The neighbour across the edge sees the exact opposite normal, so exactly one owns it.
    """
    if ax < bx or (ax == bx and ay < by):
        nx, ny = -(by - ay), bx - ax
    else:
        nx, ny = (ay - by), -(ax - bx)
    nx *= orient
    ny *= orient
    return nx > 0 or (nx == 0 and ny > 0)


@numba.njit(cache=True, inline="always")
def _half_line(ax, ay, bx, by, cy, orient, lo, hi):
    """Narrow [lo, hi] to the x where orient * edge(a->b) >= 0 on the line y = cy."""
    slope = -(by - ay) * orient           # d edge / dx
    offset = (bx - ax) * (cy - ay) * orient  # edge at x = ax
    if slope > 0:
        lo = max(lo, ax - offset / slope)
    elif slope < 0:
        hi = min(hi, ax - offset / slope)
    elif offset < 0:  # parallel to the row and the row lies outside
        lo, hi = np.inf, -np.inf
    return lo, hi


@numba.njit(cache=True, inline="always")
def _row_span(x0, y0, x1, y1, x2, y2, cy, orient):
    lo, hi = -np.inf, np.inf
    lo, hi = _half_line(x1, y1, x2, y2, cy, orient, lo, hi)
    lo, hi = _half_line(x2, y2, x0, y0, cy, orient, lo, hi)
    lo, hi = _half_line(x0, y0, x1, y1, cy, orient, lo, hi)
    return lo, hi


@numba.njit(cache=True)
def _rasterize_kernel(screen, cam_z, faces, face_ok, width, height, face_id, bary, depth):
    """screen [V, 2] pixel coords, cam_z [V] camera z, faces [F, 3]; writes the [H, W] buffers in place."""
    for f in range(faces.shape[0]):
        if not face_ok[f]:
            continue
        i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
        x0, y0 = screen[i0, 0], screen[i0, 1]
        x1, y1 = screen[i1, 0], screen[i1, 1]
        x2, y2 = screen[i2, 0], screen[i2, 1]
        area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
        if area == 0.0 or not np.isfinite(area):
            continue
        orient = 1.0 if area > 0 else -1.0
        # Pixel centres x+0.5 inside [min, max] -> x in [ceil(min-0.5), floor(max-0.5)].
        xmin = max(int(np.ceil(min(x0, x1, x2) - 0.5)), 0)
        xmax = min(int(np.floor(max(x0, x1, x2) - 0.5)), width - 1)
        ymin = max(int(np.ceil(min(y0, y1, y2) - 0.5)), 0)
        ymax = min(int(np.floor(max(y0, y1, y2) - 0.5)), height - 1)
        if xmin > xmax or ymin > ymax:
            continue
        own0 = _owns_edge(x1, y1, x2, y2, orient)  # edge opposite vertex 0
        own1 = _owns_edge(x2, y2, x0, y0, orient)
        own2 = _owns_edge(x0, y0, x1, y1, orient)
        inv_z0, inv_z1, inv_z2 = 1.0 / cam_z[i0], 1.0 / cam_z[i1], 1.0 / cam_z[i2]
        for py in range(ymin, ymax + 1):
            cy = py + 0.5
            # Narrow the row to the triangle's span (a cheap estimate padded by a pixel); the exact
            # edge tests below still decide every pixel, so the estimate only saves work.
            lo, hi = _row_span(x0, y0, x1, y1, x2, y2, cy, orient)
            lo, hi = max(lo, float(xmin)), min(hi, xmax + 1.0)  # finite from here on
            if lo > hi + 2.0:
                continue
            row_min = max(xmin, int(np.floor(lo - 0.5)) - 1)
            row_max = min(xmax, int(np.ceil(hi - 0.5)) + 1)
            for px in range(row_min, row_max + 1):
                cx = px + 0.5
                w0 = _edge(x1, y1, x2, y2, cx, cy) * orient
                w1 = _edge(x2, y2, x0, y0, cx, cy) * orient
                w2 = _edge(x0, y0, x1, y1, cx, cy) * orient
                if w0 < 0 or w1 < 0 or w2 < 0:
                    continue
                if (w0 == 0 and not own0) or (w1 == 0 and not own1) or (w2 == 0 and not own2):
                    continue
                total = w0 + w1 + w2
                if total <= 0:
                    continue
                # Screen-space weights -> perspective-correct ones via 1/z interpolation.
                q0 = w0 * inv_z0
                q1 = w1 * inv_z1
                q2 = w2 * inv_z2
                q = q0 + q1 + q2
                z = total / q
                if z < depth[py, px]:
                    depth[py, px] = z
                    face_id[py, px] = f
                    bary[py, px, 0] = q0 / q
                    bary[py, px, 1] = q1 / q
                    bary[py, px, 2] = q2 / q


def rasterize_mesh(
    vertices,        # [V, 3] world space (numpy or torch)
    faces,           # [F, 3] int vertex ids
    viewmat,         # [4, 4] world-to-camera
    K,               # [3, 3] intrinsics in pixels
    width: int,
    height: int,
    near: float = DEFAULT_NEAR,
    cull_backfaces: bool = False,
) -> Fragments:
    """Z-buffered rasterisation of a triangle mesh; see the module docstring for the rules.

    `cull_backfaces` drops triangles whose counter-clockwise (seen from outside)
    front faces away from the camera.
    """
    v = _as_numpy(vertices, np.float64)
    f = _as_numpy(faces, np.int64)
    viewmat = _as_numpy(viewmat, np.float64)
    K = _as_numpy(K, np.float64)
    _check_mesh(v, f)
    cam = world_to_camera(v, viewmat)
    z = cam[:, 2]
    safe_z = np.where(z > near, z, 1.0)  # vertices behind `near` are never used (their faces are skipped)
    uvw = cam @ K.T
    screen = np.ascontiguousarray(uvw[:, :2] / safe_z[:, None])

    face_ok = np.ones(len(f), dtype=np.bool_)
    if len(f):
        face_ok &= (z[f] > near).all(axis=1)
        if cull_backfaces:
            c0, c1, c2 = cam[f[:, 0]], cam[f[:, 1]], cam[f[:, 2]]
            normal = np.cross(c1 - c0, c2 - c0)
            face_ok &= (normal * c0).sum(axis=1) < 0  # front (CCW) side faces the camera at the origin

    face_id = np.full((height, width), -1, dtype=np.int32)
    bary = np.zeros((height, width, 3), dtype=np.float32)
    depth = np.full((height, width), np.inf, dtype=np.float64)
    _rasterize_kernel(screen, np.ascontiguousarray(z), f, face_ok, int(width), int(height), face_id, bary, depth)
    return Fragments(face_id, bary, depth.astype(np.float32))


# --------------------------------------------------------------------------------------------- shading


@dataclass(frozen=True)
class Light:
    """A directional light in CAMERA space (OpenCV: +X right, +Y down, +Z forward).

    `direction` points from the surface towards the light; lights fixed to the
    camera keep a head readable from every orbit angle.
    """

    direction: tuple[float, float, float]
    intensity: float
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)


# A soft portrait setup: warm key upper-left-front, cool dim fill lower-right, rim from behind-above.
DEFAULT_LIGHTS: tuple[Light, ...] = (
    Light((-0.55, -0.55, -0.63), 0.75, (1.0, 0.97, 0.92)),
    Light((0.7, 0.15, -0.7), 0.3, (0.9, 0.95, 1.0)),
    Light((0.25, -0.6, 0.76), 0.35, (1.0, 1.0, 1.0)),
)

# albedo_fn(face_id [N] int64, bary [N, 3] float32, points [N, 3] world float64) -> rgb [N, 3] in [0, 1]
AlbedoFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted smooth normals [V, 3] (unit; zero for unused vertices), CCW faces point outward."""
    v0, v1, v2 = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    face_n = np.cross(v1 - v0, v2 - v0)  # length = 2 * area: the weighting
    normals = np.zeros_like(vertices)
    for k in range(3):
        for c in range(3):  # bincount is the fast scatter-add
            normals[:, c] += np.bincount(faces[:, k], weights=face_n[:, c], minlength=len(vertices))
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return normals / np.maximum(length, 1e-20)


def shade(
    fragments: Fragments,
    vertices,                       # [V, 3] world space, the same the fragments were rasterised from
    faces,                          # [F, 3]
    viewmat,                        # [4, 4] world-to-camera
    vertex_colors=None,             # [V, 3] albedo in [0, 1], or None
    albedo_fn: AlbedoFn | None = None,
    lights: Sequence[Light] = DEFAULT_LIGHTS,
    ambient: float = 0.22,
    specular: float = 0.1,
    shininess: float = 40.0,
    default_albedo: tuple[float, float, float] = (0.72, 0.72, 0.72),
) -> tuple[np.ndarray, np.ndarray]:
    """Lambert + Blinn-Phong shading of rasterised fragments -> (rgb [H, W, 3] float32, alpha [H, W, 1] float32).

    Albedo comes from `albedo_fn` if given, else interpolated `vertex_colors`,
    else `default_albedo`. Normals are smooth (interpolated vertex normals) and
    two-sided: a normal facing away from the camera is flipped, so the inside of
    the mouth is lit like any other surface. rgb is 0 and alpha 0 where empty;
    rgb is not clamped (the caller decides), alpha is binary (no anti-aliasing;
    render_mesh's `supersample` gives soft edges).
    """
    v = _as_numpy(vertices, np.float64)
    f = _as_numpy(faces, np.int64)
    viewmat = _as_numpy(viewmat, np.float64)
    height, width = fragments.face_id.shape
    rgb = np.zeros((height, width, 3), dtype=np.float32)
    alpha = np.zeros((height, width, 1), dtype=np.float32)
    covered = fragments.face_id >= 0
    if not covered.any():
        return rgb, alpha

    cam = world_to_camera(v, viewmat)
    normals = vertex_normals(cam, f)
    if albedo_fn is not None:
        fid = fragments.face_id[covered].astype(np.int64)  # [N]
        b = fragments.bary[covered]                        # [N, 3]
        points_world = np.einsum("nk,nkc->nc", b.astype(np.float64), v[f[fid]])
        pixel_albedo = np.asarray(albedo_fn(fid, b, points_world), dtype=np.float64)
        if pixel_albedo.shape != (len(fid), 3):
            raise ValueError(f"albedo_fn must return [{len(fid)}, 3], got {pixel_albedo.shape}")
        colors = np.zeros((0, 3))
    else:
        pixel_albedo = np.zeros((0, 3))
        if vertex_colors is not None:
            colors = _as_numpy(vertex_colors, np.float64)
            if colors.shape != v.shape:
                raise ValueError(f"vertex_colors must be [{len(v)}, 3], got {colors.shape}")
        else:
            colors = np.broadcast_to(np.asarray(default_albedo, dtype=np.float64), v.shape).copy()
    directions = np.array([light.direction for light in lights], dtype=np.float64).reshape(-1, 3)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    light_colors = np.array([np.multiply(light.color, light.intensity) for light in lights], dtype=np.float64)
    _shade_kernel(
        fragments.face_id, fragments.bary, f, cam, normals, colors, pixel_albedo,
        directions, light_colors.reshape(-1, 3), float(ambient), float(specular), float(shininess), rgb, alpha,
    )
    return rgb, alpha


@numba.njit(cache=True)
def _shade_kernel(face_id, bary, faces, cam, normals, colors, pixel_albedo, light_dirs, light_colors,
                  ambient, specular, shininess, rgb, alpha):
    """Per covered pixel: interpolate point, normal and albedo; ambient + Lambert + Blinn-Phong. Writes rgb/alpha.

    `pixel_albedo` [N, 3] (row-major order of covered pixels) is used when non-empty, else `colors` [V, 3].
    """
    height, width = face_id.shape
    use_pixel_albedo = pixel_albedo.shape[0] > 0
    n_covered = 0
    for y in range(height):
        for x in range(width):
            fi = face_id[y, x]
            if fi < 0:
                continue
            i0, i1, i2 = faces[fi, 0], faces[fi, 1], faces[fi, 2]
            b0, b1, b2 = bary[y, x, 0], bary[y, x, 1], bary[y, x, 2]
            px = b0 * cam[i0, 0] + b1 * cam[i1, 0] + b2 * cam[i2, 0]
            py = b0 * cam[i0, 1] + b1 * cam[i1, 1] + b2 * cam[i2, 1]
            pz = b0 * cam[i0, 2] + b1 * cam[i1, 2] + b2 * cam[i2, 2]
            nx = b0 * normals[i0, 0] + b1 * normals[i1, 0] + b2 * normals[i2, 0]
            ny = b0 * normals[i0, 1] + b1 * normals[i1, 1] + b2 * normals[i2, 1]
            nz = b0 * normals[i0, 2] + b1 * normals[i1, 2] + b2 * normals[i2, 2]
            nlen = np.sqrt(nx * nx + ny * ny + nz * nz) + 1e-20
            plen = np.sqrt(px * px + py * py + pz * pz) + 1e-20
            ex, ey, ez = -px / plen, -py / plen, -pz / plen  # towards the eye
            nx, ny, nz = nx / nlen, ny / nlen, nz / nlen
            if nx * ex + ny * ey + nz * ez < 0:  # two-sided: light the side the camera sees
                nx, ny, nz = -nx, -ny, -nz
            for c in range(3):
                if use_pixel_albedo:
                    albedo = pixel_albedo[n_covered, c]
                else:
                    albedo = b0 * colors[i0, c] + b1 * colors[i1, c] + b2 * colors[i2, c]
                rgb[y, x, c] = albedo * ambient
            for k in range(light_dirs.shape[0]):
                lx, ly, lz = light_dirs[k, 0], light_dirs[k, 1], light_dirs[k, 2]
                n_dot_l = nx * lx + ny * ly + nz * lz
                if n_dot_l <= 0:
                    continue
                hx, hy, hz = lx + ex, ly + ey, lz + ez
                hlen = np.sqrt(hx * hx + hy * hy + hz * hz) + 1e-20
                n_dot_h = max((nx * hx + ny * hy + nz * hz) / hlen, 0.0)
                spec = specular * n_dot_h**shininess
                for c in range(3):
                    if use_pixel_albedo:
                        albedo = pixel_albedo[n_covered, c]
                    else:
                        albedo = b0 * colors[i0, c] + b1 * colors[i1, c] + b2 * colors[i2, c]
                    rgb[y, x, c] += (albedo * n_dot_l + spec) * light_colors[k, c]
            alpha[y, x, 0] = 1.0
            n_covered += 1


def render_mesh(
    vertices,                 # [V, 3]
    faces,                    # [F, 3]
    viewmat,                  # [4, 4]
    K,                        # [3, 3]
    width: int,
    height: int,
    vertex_colors=None,       # [V, 3] in [0, 1], or None
    albedo_fn: AlbedoFn | None = None,
    background: tuple[float, float, float] = (0.18, 0.18, 0.2),
    supersample: int = 1,
    lights: Sequence[Light] = DEFAULT_LIGHTS,
    near: float = DEFAULT_NEAR,
    cull_backfaces: bool = False,
) -> np.ndarray:
    """Rasterise + shade + composite over `background` (linear [0, 1] RGB) -> uint8 [H, W, 3].

    `supersample` s > 1 renders at s× resolution (K scaled; the +0.5 pixel-centre
    convention is preserved by scaling continuous pixel coordinates) and
    box-filters down, which anti-aliases silhouettes.
    """
    s = int(supersample)
    if s < 1:
        raise ValueError(f"supersample must be >= 1, got {supersample}")
    K = _as_numpy(K, np.float64).copy()
    K[:2] *= s
    frags = rasterize_mesh(vertices, faces, viewmat, K, width * s, height * s, near=near, cull_backfaces=cull_backfaces)
    rgb, alpha = shade(frags, vertices, faces, viewmat, vertex_colors=vertex_colors, albedo_fn=albedo_fn, lights=lights)
    bg = np.asarray(background, dtype=np.float32)
    image = np.clip(rgb, 0.0, 1.0) + (1.0 - alpha) * bg
    if s > 1:
        image = image.reshape(height, s, width, s, 3).mean(axis=(1, 3))
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)


def save_png(path, rgb_uint8: np.ndarray) -> None:
    """Write an RGB/RGBA uint8 image atomically (emo_backend.files.images.write_png)."""
    write_png(path, rgb_uint8)
