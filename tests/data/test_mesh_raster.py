"""The CPU mesh rasteriser against analytic geometry: coverage, depth, perspective, fill rule, shading."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial import ConvexHull, Delaunay

from emo_backend.data.mesh_raster import rasterize_mesh, render_mesh, shade, vertex_normals
from emo_backend.render.camera import intrinsics_from_fov, orbit_viewmat, project_points

W, H = 64, 48
FOCAL = 60.0
K = np.array([[FOCAL, 0.0, W / 2], [0.0, FOCAL, H / 2], [0.0, 0.0, 1.0]])
EYE = np.eye(4)


def unproject(uv, z):
    """Pixel coordinates [N, 2] at camera depths z [N] -> camera-space points [N, 3] (viewmat = identity)."""
    uv, z = np.asarray(uv, float), np.asarray(z, float)
    x = (uv[:, 0] - K[0, 2]) * z / K[0, 0]
    y = (uv[:, 1] - K[1, 2]) * z / K[1, 1]
    return np.stack([x, y, z], 1)


def centres_inside(tri_uv):
    """Boolean [H, W]: pixel centres strictly inside a 2D triangle, found by solving for barycentrics
    (independent of the kernel's edge functions)."""
    ys, xs = np.mgrid[0:H, 0:W] + 0.5
    a, b, c = np.asarray(tri_uv, float)
    m = np.array([b - a, c - a]).T
    s, t = np.linalg.solve(m, np.stack([xs.ravel() - a[0], ys.ravel() - a[1]])).reshape(2, H, W)
    return (s > 0) & (t > 0) & (s + t < 1)


def test_single_triangle_matches_analytic_coverage():
    tri_uv = [(10.3, 5.2), (50.7, 12.9), (20.1, 40.6)]  # no pixel centre on an edge
    verts = unproject(tri_uv, [2.0, 3.0, 5.0])  # depths differ: coverage is still the projected triangle
    frags = rasterize_mesh(verts, np.array([[0, 1, 2]]), EYE, K, W, H)
    expected = centres_inside(tri_uv)
    np.testing.assert_array_equal(frags.face_id >= 0, expected)
    area = 0.5 * abs(np.cross(np.subtract(tri_uv[1], tri_uv[0]), np.subtract(tri_uv[2], tri_uv[0])))
    assert abs(expected.sum() - area) < 0.1 * area
    assert np.all(frags.face_id[~expected] == -1) and np.all(np.isinf(frags.depth[~expected]))


def test_winding_does_not_matter_without_culling_and_culling_drops_back_faces():
    tri_uv = [(10.3, 5.2), (50.7, 12.9), (20.1, 40.6)]
    verts = unproject(tri_uv, [2.0, 2.0, 2.0])
    front = rasterize_mesh(verts, np.array([[0, 1, 2]]), EYE, K, W, H).face_id >= 0
    back = rasterize_mesh(verts, np.array([[0, 2, 1]]), EYE, K, W, H).face_id >= 0
    np.testing.assert_array_equal(front, back)
    # The image as displayed (+Y down) is what the camera sees: (0, 1, 2) runs clockwise there, so its
    # counter-clockwise front faces away from the camera and culling drops it; (0, 2, 1) is kept.
    assert (rasterize_mesh(verts, np.array([[0, 1, 2]]), EYE, K, W, H, cull_backfaces=True).face_id >= 0).sum() == 0
    assert (rasterize_mesh(verts, np.array([[0, 2, 1]]), EYE, K, W, H, cull_backfaces=True).face_id >= 0).sum() > 0


@pytest.mark.parametrize("near_first", [True, False])
def test_depth_ordering_of_overlapping_triangles(near_first):
    uv = [(5.2, 4.1), (58.3, 6.7), (30.9, 44.2)]
    near_tri, far_tri = unproject(uv, [1.0] * 3), unproject(uv[::-1], [2.5] * 3)
    verts = np.concatenate([near_tri, far_tri] if near_first else [far_tri, near_tri])
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    near_id = 0 if near_first else 1
    frags = rasterize_mesh(verts, faces, EYE, K, W, H)
    covered = frags.face_id >= 0
    assert covered.sum() > 500
    assert np.all(frags.face_id[covered] == near_id)
    np.testing.assert_allclose(frags.depth[covered], 1.0, rtol=1e-6)


def test_interpenetrating_triangles_split_at_the_intersection():
    # Two triangles crossing each other: the left half of the image sees one, the right half the other.
    uv = [(1.0, 1.0), (63.0, 1.0), (63.0, 47.0), (1.0, 47.0)]
    a = unproject(uv, [1.0, 3.0, 3.0, 1.0])  # depth grows to the right
    b = unproject(uv, [3.0, 1.0, 1.0, 3.0])  # depth shrinks to the right
    verts = np.concatenate([a, b])
    faces = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    frags = rasterize_mesh(verts, faces, EYE, K, W, H)
    rows = slice(5, 40)
    left, right = frags.face_id[rows, 5:25], frags.face_id[rows, 40:60]
    assert np.all(left <= 1) and np.all(right >= 2)


def test_barycentrics_are_perspective_correct():
    tri_uv = [(3.3, 2.7), (61.1, 9.4), (14.2, 45.5)]
    verts = unproject(tri_uv, [1.0, 4.0, 9.0])
    frags = rasterize_mesh(verts, np.array([[0, 1, 2]]), EYE, K, W, H)
    covered = frags.face_id >= 0
    ys, xs = np.nonzero(covered)
    bary = frags.bary[covered].astype(np.float64)
    np.testing.assert_allclose(bary.sum(1), 1.0, atol=1e-6)
    assert np.all(bary >= -1e-6)
    points = bary @ verts  # the surface point each pixel sees
    pixel = points[:, :2] / points[:, 2:] * FOCAL + K[:2, 2]
    np.testing.assert_allclose(pixel, np.stack([xs + 0.5, ys + 0.5], 1), atol=2e-3)  # it lies on the pixel's ray
    np.testing.assert_allclose(frags.depth[covered], points[:, 2], rtol=1e-5)
    # The test has teeth: screen-space (affine) weights would land far from the ray here.
    affine_points = np.linalg.solve(
        np.array([[*tri_uv[0], 1], [*tri_uv[1], 1], [*tri_uv[2], 1]]).T,
        np.stack([xs + 0.5, ys + 0.5, np.ones_like(xs)]),
    ).T @ verts
    assert np.abs(affine_points[:, 2] - points[:, 2]).max() > 0.5


def cube(half: float = 1.0):
    v = np.array([[x, y, z] for x in (-half, half) for y in (-half, half) for z in (-half, half)], float)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = np.array([t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))])
    return v, faces


def test_cube_silhouette_matches_projected_area():
    verts, faces = cube(0.5)
    # Straight on: the silhouette is the front square, centred, edges away from pixel centres.
    viewmat = np.eye(4)
    viewmat[2, 3] = 4.0  # cube centre 4 m in front of the camera; front face at z = 3.5
    frags = rasterize_mesh(verts, faces, viewmat, K, W, H)
    half_px = FOCAL * 0.5 / 3.5  # 8.571...
    cols = np.sum(np.abs(np.arange(W) + 0.5 - W / 2) < half_px)
    rows = np.sum(np.abs(np.arange(H) + 0.5 - H / 2) < half_px)
    assert (frags.face_id >= 0).sum() == cols * rows
    np.testing.assert_allclose(frags.depth[frags.face_id >= 0], 3.5, rtol=1e-6)

    # An oblique view: the silhouette is the convex hull of the projected corners.
    viewmat = orbit_viewmat(35.0, 25.0, 3.0).numpy()
    frags = rasterize_mesh(verts, faces, viewmat, K, W, H)
    as_t = lambda x: torch.as_tensor(x, dtype=torch.float32)  # noqa: E731
    pixels, _ = project_points(as_t(verts), as_t(viewmat), as_t(K))
    hull = ConvexHull(pixels.numpy())
    count = (frags.face_id >= 0).sum()
    assert abs(count - hull.volume) < 0.5 * hull.area  # within half a pixel along the outline
    inside = Delaunay(pixels.numpy()[hull.vertices])
    ys, xs = np.mgrid[0:H, 0:W] + 0.5
    np.testing.assert_array_equal(frags.face_id >= 0, (inside.find_simplex(np.stack([xs, ys], -1)) >= 0))


def test_quad_of_two_triangles_has_no_cracks_or_overlaps():
    # Corners on pixel centres: the diagonal and the outline run through centres, so only the fill rule decides.
    uv = [(2.5, 2.5), (40.5, 6.5), (44.5, 40.5), (6.5, 36.5)]
    verts = unproject(uv, [2.0, 3.0, 4.0, 2.5])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    both = rasterize_mesh(verts, faces, EYE, K, W, H).face_id
    first = rasterize_mesh(verts, faces[:1], EYE, K, W, H).face_id >= 0
    second = rasterize_mesh(verts, faces[1:], EYE, K, W, H).face_id >= 0
    assert not np.any(first & second)  # a centre on the shared edge belongs to exactly one triangle
    np.testing.assert_array_equal(both >= 0, first | second)
    # Centres strictly inside the convex outline (centres exactly on it are the fill rule's to decide).
    ys, xs = np.mgrid[0:H, 0:W] + 0.5
    strictly_inside = np.ones((H, W), bool)
    for a, b in zip(uv, uv[1:] + uv[:1]):
        # The outline runs clockwise on screen, so the inside is where every edge function is positive.
        strictly_inside &= (b[0] - a[0]) * (ys - a[1]) - (b[1] - a[1]) * (xs - a[0]) > 0
    assert strictly_inside.sum() > 1000
    holes = strictly_inside & (both < 0)
    assert holes.sum() == 0


def test_axis_aligned_square_follows_top_left_rule():
    # Square with edges on pixel centres: left/top edges are in, right/bottom edges are out.
    # Its 45° diagonal runs through 27 pixel centres, each owned by exactly one triangle.
    uv = [(2.5, 3.5), (30.5, 3.5), (30.5, 31.5), (2.5, 31.5)]
    verts = unproject(uv, [2.0, 2.5, 3.0, 2.5])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    covered = rasterize_mesh(verts, faces, EYE, K, W, H).face_id >= 0
    assert covered.sum() == 28 * 28
    assert covered[3, 2] and covered[30, 29] and not covered[31, 2] and not covered[3, 30]
    first = rasterize_mesh(verts, faces[:1], EYE, K, W, H).face_id >= 0
    second = rasterize_mesh(verts, faces[1:], EYE, K, W, H).face_id >= 0
    assert not np.any(first & second) and first.sum() + second.sum() == 28 * 28


def test_jittered_grid_mesh_is_watertight():
    rng = np.random.default_rng(0)
    border = [(x, y) for x in (4.0, 60.0) for y in (4.0, 44.0)]
    uv = np.concatenate([np.array(border), rng.uniform([5, 5], [59, 43], size=(60, 2))])
    uv[-10:] = np.round(uv[-10:]) + 0.5  # some vertices exactly on pixel centres
    faces = Delaunay(uv).simplices
    verts = unproject(uv, rng.uniform(1.0, 3.0, len(uv)))
    covered_count = np.zeros((H, W), int)
    for f in faces:
        covered_count += rasterize_mesh(verts, f[None], EYE, K, W, H).face_id >= 0
    ys, xs = np.mgrid[0:H, 0:W] + 0.5
    interior = (xs > 4) & (xs < 60) & (ys > 4) & (ys < 44)
    assert np.all(covered_count[interior] == 1)  # every centre exactly once: no cracks, no double hits
    assert np.all(covered_count[~interior] == 0)


def test_near_plane_skips_whole_triangles_and_torch_inputs_work():
    verts = np.array([[-0.5, -0.5, 2.0], [0.5, -0.5, 2.0], [0.0, 0.5, -0.1]])
    frags = rasterize_mesh(verts, np.array([[0, 1, 2]]), EYE, K, W, H)
    assert (frags.face_id >= 0).sum() == 0
    verts[2, 2] = 2.0
    np_frags = rasterize_mesh(verts, np.array([[0, 1, 2]]), EYE, K, W, H)
    torch_frags = rasterize_mesh(
        torch.tensor(verts, dtype=torch.float32), torch.tensor([[0, 1, 2]]), torch.eye(4), torch.tensor(K), W, H
    )
    assert (np_frags.face_id >= 0).sum() > 100
    np.testing.assert_array_equal(np_frags.face_id, torch_frags.face_id)
    assert torch_frags.face_id.dtype == np.int32 and torch_frags.bary.dtype == np.float32
    assert torch_frags.depth.dtype == np.float32


def test_bad_indices_are_rejected():
    with pytest.raises(ValueError, match="face indices"):
        rasterize_mesh(np.zeros((3, 3)), np.array([[0, 1, 3]]), EYE, K, W, H)


def uv_sphere(radius=0.1, n=24, m=32):
    th = np.linspace(0, np.pi, n)
    ph = np.linspace(0, 2 * np.pi, m, endpoint=False)
    ring, height = np.sin(th)[:, None], np.cos(th)[:, None]
    v = np.stack([ring * np.sin(ph), height * np.ones(m), ring * np.cos(ph)], -1)
    faces = []
    for i in range(n - 1):
        for j in range(m):
            a, b, c, d = i * m + j, i * m + (j + 1) % m, (i + 1) * m + j, (i + 1) * m + (j + 1) % m
            faces += [[a, c, b], [b, c, d]]
    return v.reshape(-1, 3) * radius, np.array(faces)


def test_vertex_normals_of_a_sphere_point_outwards():
    v, f = uv_sphere()
    n = vertex_normals(v, f)
    used = np.linalg.norm(n, axis=1) > 0
    radial = v[used] / np.linalg.norm(v[used], axis=1, keepdims=True)
    assert np.all((n[used] * radial).sum(1) > 0.98)


def test_shading_is_lit_by_key_light_and_two_sided():
    v, f = uv_sphere()
    viewmat = orbit_viewmat(0.0, 0.0, 0.5).numpy()
    Kf = intrinsics_from_fov(30.0, 96, 96).numpy()
    frags = rasterize_mesh(v, f, viewmat, Kf, 96, 96)
    rgb, alpha = shade(frags, v, f, viewmat, vertex_colors=np.full_like(v, 0.5))
    assert rgb.shape == (96, 96, 3) and alpha.shape == (96, 96, 1)
    np.testing.assert_array_equal(alpha[..., 0] > 0, frags.face_id >= 0)
    lum = rgb.mean(-1)
    # Key light is upper-left (image): the upper-left quadrant of the sphere is brighter than the lower-right.
    assert lum[25:45, 25:45].mean() > lum[55:75, 55:75].mean() + 0.05
    # A plane seen from its back (reversed winding) shades exactly like its front: normals are two-sided.
    quad_uv = np.array([[20.3, 20.1], [70.2, 22.4], [72.5, 70.9], [18.8, 68.3]])
    quad = unproject(quad_uv, [2.0, 2.4, 2.8, 2.2])
    front_f, back_f = np.array([[0, 1, 2], [0, 2, 3]]), np.array([[0, 2, 1], [0, 3, 2]])
    eye = np.eye(4)
    a = shade(rasterize_mesh(quad, front_f, eye, K, W, H), quad, front_f, eye)[0]
    b = shade(rasterize_mesh(quad, back_f, eye, K, W, H), quad, back_f, eye)[0]
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_albedo_callback_and_render_mesh():
    v, f = uv_sphere()
    viewmat = orbit_viewmat(20.0, 10.0, 0.5)
    Kf = intrinsics_from_fov(30.0, 40, 32)
    red = lambda face_id, bary, points: np.tile([1.0, 0.0, 0.0], (len(face_id), 1))  # noqa: E731
    img = render_mesh(v, f, viewmat, Kf, 40, 32, albedo_fn=red, background=(0.0, 0.0, 1.0))
    assert img.shape == (32, 40, 3) and img.dtype == np.uint8
    assert np.all(img[0, 0] == [0, 0, 255])  # background in the corner
    centre = img[16, 20].astype(int)
    assert centre[0] > 100 and centre[1] < 20 and centre[2] < 20
    smooth = render_mesh(v, f, viewmat, Kf, 40, 32, albedo_fn=red, background=(0.0, 0.0, 1.0), supersample=3)
    assert smooth.shape == img.shape
    # Anti-aliased edge pixels mix red and blue; the hard render has none.
    mixed = lambda im: ((im[..., 0] > 30) & (im[..., 2] > 30)).sum()  # noqa: E731
    assert mixed(smooth) > mixed(img)


def test_albedo_callback_sees_the_right_pixels():
    # A linear albedo field gives the same image through the callback (per pixel) and through vertex colours
    # (interpolated with perspective-correct barycentrics, exact for linear fields).
    v, f = uv_sphere()
    viewmat = orbit_viewmat(30.0, -20.0, 0.45).numpy()
    Kf = intrinsics_from_fov(35.0, 48, 40).numpy()
    field = lambda p: np.clip(0.5 + p * np.array([4.0, -3.0, 2.0]), 0, 1)  # noqa: E731
    frags = rasterize_mesh(v, f, viewmat, Kf, 48, 40)
    seen = []

    def albedo_fn(face_id, bary, points):
        seen.append(face_id)
        np.testing.assert_allclose(points, np.einsum("nk,nkc->nc", bary, v[f[face_id]]), atol=1e-6)
        return field(points)

    by_callback, _ = shade(frags, v, f, viewmat, albedo_fn=albedo_fn)
    by_vertex, _ = shade(frags, v, f, viewmat, vertex_colors=field(v))
    np.testing.assert_array_equal(seen[0], frags.face_id[frags.face_id >= 0])
    np.testing.assert_allclose(by_callback, by_vertex, atol=1e-5)
    assert by_callback.std() > 0.05
