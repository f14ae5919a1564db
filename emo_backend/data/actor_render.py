"""Frames of the synthetic actor: the textured open head through the CPU mesh rasteriser.

Per frame: LBS of the tracked (linear) coefficients + corrective shapes
(actor_effects) -> `mesh_raster.rasterize_mesh` at `supersample`x resolution
-> per-pixel albedo with the emotion effects -> key/fill/rim shading ->
box filter down -> RGB over the plain BACKGROUND, and the coverage as mask.

Surface texture: `appearance.albedo_at` (and the effect patterns) are
evaluated on a barycentric lattice inside every triangle, ~TEXEL_M apart,
and interpolated linearly at each pixel. Lattices are baked lazily, the
first time a triangle is seen, and depend only on the triangle, so the same
tracking always gives the same frame (`render_frame` is deterministic).

Shading (camera space, OpenCV): Lambert with wrap lighting on skin (soft,
skin-like terminator) + Blinn-Phong highlights whose strength depends on the
material (wet eyes and lips shine, skin barely). Two-sided normals, so the
mouth interior is lit from inside. Lights: mesh_raster.DEFAULT_LIGHTS (warm
key upper left, cool fill right, rim from behind above), fixed to the camera.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numba
import numpy as np
import torch

from emo_backend.data import mesh_raster
from emo_backend.data.actor_effects import (
    EFFECT_TINTS, corrective_activations, corrective_fields, effect_activations, effect_patterns,
)
from emo_backend.head.lbs import lbs
from emo_backend.head.model import HeadModel
from emo_backend.head.open_head.appearance import PART_ID, albedo_at, face_parts
from emo_backend.render.camera import intrinsics_from_fov, orbit_viewmat

BACKGROUND = (0.60, 0.60, 0.62)  # linear-as-stored RGB of the plain backdrop: sRGB 8-bit (153, 153, 158)
TEXEL_M = 0.0008                 # lattice spacing of the baked surface texture
MAX_LATTICE = 20                 # at most this many lattice steps along a triangle edge

# Per part: (wrap, specular, shininess). Wrap lighting lets light bleed past the terminator like skin does.
MATERIALS: dict[str, tuple[float, float, float]] = {
    "skin": (0.35, 0.05, 20.0), "ears": (0.35, 0.04, 20.0), "eye_sockets": (0.2, 0.25, 60.0),
    "mouth_cavity": (0.2, 0.08, 30.0), "left_eyeball": (0.0, 0.55, 150.0), "right_eyeball": (0.0, 0.55, 150.0),
    "upper_teeth": (0.1, 0.25, 60.0), "lower_teeth": (0.1, 0.25, 60.0), "tongue": (0.3, 0.2, 40.0),
}
LIP_SPECULAR = (0.14, 45.0)
AMBIENT = 0.24


@dataclass(frozen=True)
class RenderSettings:
    size: int = 256                 # square frames, pixels
    supersample: int = 2            # anti-aliasing: render at size*supersample and box-filter
    fov_y_deg: float = 19.0         # vertical field of view of the front camera
    distance_m: float = 0.95        # camera to target
    target: tuple[float, float, float] = (0.0, -0.002, 0.0)  # what the camera looks at (avatar space)
    camera_jitter_deg: float = 0.0  # per-clip random yaw/pitch offsets up to this many degrees


def clip_camera(settings: RenderSettings, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(K [3, 3], viewmat [4, 4]) float32 of the front camera, optionally jittered per clip."""
    yaw = pitch = 0.0
    if rng is not None and settings.camera_jitter_deg > 0:
        yaw = float(rng.uniform(-1, 1)) * settings.camera_jitter_deg
        pitch = float(rng.uniform(-1, 1)) * settings.camera_jitter_deg * 0.5
    K = intrinsics_from_fov(settings.fov_y_deg, settings.size, settings.size).numpy()
    view = orbit_viewmat(yaw, pitch, settings.distance_m, torch.tensor(settings.target)).numpy()
    return K.astype(np.float32), view.astype(np.float32)


def _lattice_points(n: int) -> np.ndarray:
    """[(n+1)(n+2)/2, 3] barycentrics of lattice point (i, j), row j holding i = 0..n-j (the layout the kernel reads)."""
    out = [(1.0 - (i + j) / n, i / n, j / n) for j in range(n + 1) for i in range(n + 1 - j)]
    return np.array(out, dtype=np.float64)


@numba.njit(cache=True, inline="always")
def _lattice_index(offset, n, i, j):
    return offset + j * (n + 1) - (j * (j - 1)) // 2 + i


@numba.njit(cache=True)
def _shade_kernel(
    face_id, bary,                      # [H, W], [H, W, 3]
    faces, cam_vertices, cam_normals,   # [F, 3], [V, 3], [V, 3] camera space
    lat_offset, lat_n, lat_albedo, lat_effect,  # [F], [F], [P, 3], [P, C]
    activations, tints,                 # [C], [C, 3]
    face_material, materials,           # [F] int, [M, 3] (wrap, specular, shininess)
    light_dirs, light_colors, ambient,  # [L, 3] unit, [L, 3] colour * intensity
    rgb, alpha,                         # out [H, W, 3], [H, W]
):
    height, width = face_id.shape
    num_effects = activations.shape[0]
    for py in range(height):
        for px in range(width):
            f = face_id[py, px]
            if f < 0:
                continue
            b0, b1, b2 = bary[py, px, 0], bary[py, px, 1], bary[py, px, 2]
            i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
            # Surface texture: linear interpolation inside the triangle's lattice.
            n = lat_n[f]
            u = max(b1, 0.0) * n
            w = max(b2, 0.0) * n
            i = min(int(math.floor(u)), n - 1)
            j = min(int(math.floor(w)), n - 1)
            fu = u - i
            fw = w - j
            if i + j > n - 1:
                if i > 0:
                    i -= 1
                    fu += 1.0
                else:
                    j -= 1
                    fw += 1.0
            off = lat_offset[f]
            if fu + fw <= 1.0:
                c0, c1, c2 = (_lattice_index(off, n, i, j), _lattice_index(off, n, i + 1, j),
                              _lattice_index(off, n, i, j + 1))
                w0, w1, w2 = 1.0 - fu - fw, fu, fw
            else:
                c0, c1, c2 = (_lattice_index(off, n, i + 1, j + 1), _lattice_index(off, n, i, j + 1),
                              _lattice_index(off, n, i + 1, j))
                w0, w1, w2 = fu + fw - 1.0, 1.0 - fu, 1.0 - fw
            ar = w0 * lat_albedo[c0, 0] + w1 * lat_albedo[c1, 0] + w2 * lat_albedo[c2, 0]
            ag = w0 * lat_albedo[c0, 1] + w1 * lat_albedo[c1, 1] + w2 * lat_albedo[c2, 1]
            ab = w0 * lat_albedo[c0, 2] + w1 * lat_albedo[c1, 2] + w2 * lat_albedo[c2, 2]
            mr_, mg, mb = 1.0, 1.0, 1.0
            for c in range(num_effects):
                a = activations[c]
                if a == 0.0:
                    continue
                v = a * (w0 * lat_effect[c0, c] + w1 * lat_effect[c1, c] + w2 * lat_effect[c2, c])
                mr_ += v * tints[c, 0]
                mg += v * tints[c, 1]
                mb += v * tints[c, 2]
            ar = min(max(ar * mr_, 0.0), 1.0)
            ag = min(max(ag * mg, 0.0), 1.0)
            ab = min(max(ab * mb, 0.0), 1.0)
            # Geometry.
            p0 = b0 * cam_vertices[i0, 0] + b1 * cam_vertices[i1, 0] + b2 * cam_vertices[i2, 0]
            p1 = b0 * cam_vertices[i0, 1] + b1 * cam_vertices[i1, 1] + b2 * cam_vertices[i2, 1]
            p2 = b0 * cam_vertices[i0, 2] + b1 * cam_vertices[i1, 2] + b2 * cam_vertices[i2, 2]
            n0 = b0 * cam_normals[i0, 0] + b1 * cam_normals[i1, 0] + b2 * cam_normals[i2, 0]
            n1 = b0 * cam_normals[i0, 1] + b1 * cam_normals[i1, 1] + b2 * cam_normals[i2, 1]
            n2 = b0 * cam_normals[i0, 2] + b1 * cam_normals[i1, 2] + b2 * cam_normals[i2, 2]
            nl = math.sqrt(n0 * n0 + n1 * n1 + n2 * n2) + 1e-20
            n0 /= nl
            n1 /= nl
            n2 /= nl
            pl = math.sqrt(p0 * p0 + p1 * p1 + p2 * p2) + 1e-20
            e0, e1, e2 = -p0 / pl, -p1 / pl, -p2 / pl
            if n0 * e0 + n1 * e1 + n2 * e2 < 0.0:
                n0, n1, n2 = -n0, -n1, -n2
            m = face_material[f]
            wrap, spec, shininess = materials[m, 0], materials[m, 1], materials[m, 2]
            dr, dg, db = ambient, ambient, ambient
            sr, sg, sb = 0.0, 0.0, 0.0
            for k in range(light_dirs.shape[0]):
                lx, ly, lz = light_dirs[k, 0], light_dirs[k, 1], light_dirs[k, 2]
                ndl = n0 * lx + n1 * ly + n2 * lz
                diffuse = max((ndl + wrap) / (1.0 + wrap), 0.0)
                dr += diffuse * light_colors[k, 0]
                dg += diffuse * light_colors[k, 1]
                db += diffuse * light_colors[k, 2]
                if ndl > 0.0:
                    hx, hy, hz = lx + e0, ly + e1, lz + e2
                    hl = math.sqrt(hx * hx + hy * hy + hz * hz) + 1e-20
                    ndh = max((n0 * hx + n1 * hy + n2 * hz) / hl, 0.0)
                    s = spec * ndh ** shininess
                    sr += s * light_colors[k, 0]
                    sg += s * light_colors[k, 1]
                    sb += s * light_colors[k, 2]
            rgb[py, px, 0] = ar * dr + sr
            rgb[py, px, 1] = ag * dg + sg
            rgb[py, px, 2] = ab * db + sb
            alpha[py, px] = 1.0


@numba.njit(cache=True)
def _resolve_kernel(rgb, alpha, background, s, out_rgb, out_mask):
    """Composite [sH, sW] fragments over the background, box-filter s x s, quantise to uint8."""
    height, width = out_mask.shape
    inv = 1.0 / (s * s)
    for y in range(height):
        for x in range(width):
            r = g = b = a = 0.0
            for dy in range(s):
                for dx in range(s):
                    yy, xx = y * s + dy, x * s + dx
                    cover = alpha[yy, xx]
                    r += min(max(rgb[yy, xx, 0], 0.0), 1.0) + (1.0 - cover) * background[0]
                    g += min(max(rgb[yy, xx, 1], 0.0), 1.0) + (1.0 - cover) * background[1]
                    b += min(max(rgb[yy, xx, 2], 0.0), 1.0) + (1.0 - cover) * background[2]
                    a += cover
            out_rgb[y, x, 0] = np.uint8(min(max(np.round(r * inv * 255.0), 0.0), 255.0))
            out_rgb[y, x, 1] = np.uint8(min(max(np.round(g * inv * 255.0), 0.0), 255.0))
            out_rgb[y, x, 2] = np.uint8(min(max(np.round(b * inv * 255.0), 0.0), 255.0))
            out_mask[y, x] = np.uint8(min(max(np.round(a * inv * 255.0), 0.0), 255.0))


def _double(head: HeadModel) -> HeadModel:
    """The head with float64 tensors: LBS in double precision so frames do not hinge on float32 rounding."""
    return replace(
        head, v_template=head.v_template.double(), shapedirs=head.shapedirs.double(),
        exprdirs=head.exprdirs.double(), j_regressor=head.j_regressor.double(),
        lbs_weights=head.lbs_weights.double(), landmark_bary=head.landmark_bary.double(),
        posedirs=None if head.posedirs is None else head.posedirs.double(),
    )


class ActorRenderer:
    """Renders tracked frames of one identity's appearance (open head with appearance seed `appearance_seed`)."""

    def __init__(self, head: HeadModel, appearance_head: HeadModel | None = None,
                 settings: RenderSettings = RenderSettings(), corrective: bool = True, effects: bool = True) -> None:
        self.head = head
        self.head64 = _double(head)
        self.appearance_head = appearance_head if appearance_head is not None else head
        self.settings = settings
        self.use_corrective = corrective
        self.use_effects = effects
        self.faces = head.faces.cpu().numpy().astype(np.int64)
        rest = head.v_template.double().cpu().numpy()
        self.rest = rest
        parts = face_parts(head)
        part_names = {v: k for k, v in PART_ID.items()}
        self.face_is_skin = np.isin(parts, [PART_ID["skin"], PART_ID["ears"]])
        lips = np.zeros(len(self.faces), dtype=bool)
        if "lips" in head.regions:
            lips[head.regions["lips"].cpu().numpy()] = True
        mats = [MATERIALS[part_names[p]] for p in range(len(PART_ID))] + [(MATERIALS["skin"][0],) + LIP_SPECULAR]
        self.materials = np.array(mats, dtype=np.float64)
        self.face_material = np.where(lips, len(PART_ID), parts).astype(np.int64)
        # Per-vertex skin flag for the corrective shapes (a vertex of any skin face).
        vertex_skin = np.zeros(len(rest), dtype=bool)
        vertex_skin[self.faces[self.face_is_skin].ravel()] = True
        vertex_skin[self.faces[~self.face_is_skin].ravel()] = False  # seams to eyes/mouth stay put
        self.corrective = corrective_fields(rest, mesh_raster.vertex_normals(rest, self.faces), vertex_skin).astype(np.float64)
        # Lattice texture layout.
        tri = rest[self.faces]
        edge = np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2).max(1)
        # Texels no finer than ~the (supersampled) pixel footprint on the face: small frames bake fast.
        focal = 0.5 * settings.size / math.tan(math.radians(settings.fov_y_deg) / 2) * settings.supersample
        texel = max(TEXEL_M, 1.3 * (settings.distance_m - 0.08) / focal)
        self.lat_n = np.clip(np.ceil(edge / texel), 1, MAX_LATTICE).astype(np.int64)
        counts = (self.lat_n + 1) * (self.lat_n + 2) // 2
        self.lat_offset = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        total = int(counts.sum())
        self.lat_albedo = np.zeros((total, 3), dtype=np.float32)
        self.lat_effect = np.zeros((total, len(EFFECT_TINTS)), dtype=np.float32)
        self.baked = np.zeros(len(self.faces), dtype=bool)
        self._lattices = {n: _lattice_points(n) for n in range(1, MAX_LATTICE + 1)}
        lights = mesh_raster.DEFAULT_LIGHTS
        dirs = np.array([l.direction for l in lights], dtype=np.float64)
        self.light_dirs = dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
        self.light_colors = np.array([np.asarray(l.color) * l.intensity for l in lights], dtype=np.float64)

    # ------------------------------------------------------------------------------------------ texture

    def bake(self, face_ids: np.ndarray) -> None:
        """Evaluate albedo and effect patterns on the lattices of the given faces (those not baked yet)."""
        todo = np.unique(face_ids[~self.baked[face_ids]])
        if todo.size == 0:
            return
        fids, barys, index = [], [], []
        for n in np.unique(self.lat_n[todo]):
            group = todo[self.lat_n[todo] == n]
            lattice = self._lattices[int(n)]
            count = len(lattice)
            fids.append(np.repeat(group, count))
            barys.append(np.tile(lattice, (len(group), 1)))
            index.append((self.lat_offset[group][:, None] + np.arange(count)[None]).ravel())
        fid = np.concatenate(fids)
        bary = np.concatenate(barys)
        idx = np.concatenate(index)
        self.lat_albedo[idx] = albedo_at(self.appearance_head, torch.from_numpy(fid), torch.from_numpy(bary)).numpy()
        if self.use_effects:
            points = (self.rest[self.faces[fid]] * bary[:, :, None]).sum(1)
            self.lat_effect[idx] = effect_patterns(points, self.face_is_skin[fid])
        self.baked[todo] = True

    # ------------------------------------------------------------------------------------------- frames

    def posed_vertices(
        self,
        expression: np.ndarray,   # [E]
        pose: np.ndarray,         # [5, 3]
        translation: np.ndarray,  # [3]
        identity: np.ndarray,     # [S]
    ) -> np.ndarray:  # [V, 3] float64 world
        """LBS of the linear coefficients plus the (unrecorded) corrective shapes, added before skinning."""
        to = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float64))[None]  # noqa: E731
        posed = lbs(self.head64, to(expression), to(pose), to(identity), to(translation))
        vertices = posed.vertices[0].numpy()
        if self.use_corrective:
            act = corrective_activations(expression, float(pose[2, 0])).astype(np.float64)
            if act.any():
                offset = np.tensordot(act, self.corrective, axes=1)  # [V, 3] rest space
                rot = np.einsum("vj,jmn->vmn", self.head64.lbs_weights.numpy(), posed.transforms[0, :, :3, :3].numpy())
                vertices = vertices + np.einsum("vmn,vn->vm", rot, offset)
        return vertices

    def render_frame(
        self,
        expression: np.ndarray,   # [E]
        pose: np.ndarray,         # [5, 3]
        translation: np.ndarray,  # [3]
        identity: np.ndarray,     # [S]
        K: np.ndarray,            # [3, 3]
        viewmat: np.ndarray,      # [4, 4]
        angry_amount: float = 0.0,
        fear_amount: float = 0.0,
        return_effects: bool = False,
    ):
        """-> (rgb uint8 [H, W, 3], mask uint8 [H, W]) at settings.size (plus the effect-only
        albedo multiplier [H, W] luminance change when `return_effects`, for tests and docs)."""
        s = self.settings.supersample
        size = self.settings.size
        vertices = self.posed_vertices(expression, pose, translation, identity)
        Ks = np.asarray(K, dtype=np.float64).copy()
        Ks[:2] *= s
        view = np.asarray(viewmat, dtype=np.float64)
        frags = mesh_raster.rasterize_mesh(vertices, self.faces, view, Ks, size * s, size * s)
        covered = frags.face_id >= 0
        self.bake(frags.face_id[covered].astype(np.int64))
        cam = mesh_raster.world_to_camera(vertices, view)
        normals = mesh_raster.vertex_normals(cam, self.faces)
        act = (effect_activations(expression, angry_amount, fear_amount) if self.use_effects
               else np.zeros(len(EFFECT_TINTS), np.float32)).astype(np.float64)
        rgb = np.zeros((size * s, size * s, 3), dtype=np.float64)
        alpha = np.zeros((size * s, size * s), dtype=np.float64)
        _shade_kernel(frags.face_id, frags.bary.astype(np.float64), self.faces, cam, normals,
                      self.lat_offset, self.lat_n, self.lat_albedo,
                      self.lat_effect, act, EFFECT_TINTS.astype(np.float64), self.face_material, self.materials,
                      self.light_dirs, self.light_colors, AMBIENT, rgb, alpha)
        rgb8 = np.zeros((size, size, 3), dtype=np.uint8)
        mask8 = np.zeros((size, size), dtype=np.uint8)
        _resolve_kernel(rgb, alpha, np.asarray(BACKGROUND, dtype=np.float64), s, rgb8, mask8)
        if not return_effects:
            return rgb8, mask8
        effect = self.effect_map(frags, act)
        if s > 1:
            effect = effect.reshape(size, s, size, s).mean(axis=(1, 3))
        return rgb8, mask8, effect

    def effect_map(self, frags: mesh_raster.Fragments, activations: np.ndarray) -> np.ndarray:
        """[H, W] luminance change of the albedo multiplier from the effects (0 = untouched), at fragment resolution."""
        out = np.zeros(frags.face_id.shape, dtype=np.float64)
        covered = frags.face_id >= 0
        fid = frags.face_id[covered].astype(np.int64)
        b = frags.bary[covered].astype(np.float64)
        n = self.lat_n[fid]
        # Nearest lattice point is enough for a map used to locate effects.
        i = np.clip(np.round(b[:, 1] * n).astype(np.int64), 0, n)
        j = np.clip(np.round(b[:, 2] * n).astype(np.int64), 0, n - i)
        idx = self.lat_offset[fid] + j * (n + 1) - (j * (j - 1)) // 2 + i
        lum = EFFECT_TINTS.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        out[covered] = (self.lat_effect[idx].astype(np.float64) * activations[None]) @ lum
        return out

    def render_tracking(self, tracking: dict, index: int, angry_amount: float = 0.0, fear_amount: float = 0.0):
        """Frame `index` of a clip's tracking arrays (as saved / as loaded by load_tracking)."""
        K = tracking["K"] if np.asarray(tracking["K"]).ndim == 2 else tracking["K"][index]
        view = tracking["viewmat"] if np.asarray(tracking["viewmat"]).ndim == 2 else tracking["viewmat"][index]
        return self.render_frame(tracking["expression"][index], tracking["pose"][index], tracking["translation"][index],
                                 tracking["identity"], K, view, angry_amount, fear_amount)
