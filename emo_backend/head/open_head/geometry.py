"""The skin: a latitude/longitude grid ray-cast onto the sculpted field, with slits for the eyes and mouth.

Rows are rings of constant polar angle around the head centre; in the face
band they are pulled onto exact horizontal lines so the mouth and eye slits
are straight rows. A slit is a row whose vertices between two corner
columns are doubled: the upper copies close the faces above, the lower copies
the faces below, so the lips (and eyelids) can part. The eye slits are opened
into almond-shaped fissures by spreading the rows around them. Below the
last ring (under the jaw) a few rows are cast sideways from the neck's axis
down to a flat cap at the bottom of the neck stub.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emo_backend.head.open_head.anatomy import ANATOMY as A
from emo_backend.head.open_head.raycast import cast_last_exit
from emo_backend.head.open_head.sdf import head_sdf
from emo_backend.head.open_head.fields import smoothstep as _smoothstep

NUM_COLUMNS = 88   # around the head; even, so column NUM_COLUMNS // 2 is the midline of the face
NUM_RINGS = 62     # from the crown to the neck
CAST_ORIGIN = np.array([0.0, 0.0, -0.012])
NECK_ROWS = 4      # rows between the last ring (under the jaw) and the bottom of the neck
EYE_SPREAD = 0.013  # rows within this height of an eye slit make room for the open fissure


@dataclass
class Skin:
    vertices: np.ndarray        # [V, 3]
    faces: np.ndarray           # [F, 3] local ids, counter-clockwise from outside
    grid: np.ndarray            # [R, C] vertex ids of ring rows (upper copies on slit rows)
    mouth_row: int
    mouth_cols: tuple[int, int]  # corner columns (right corner -X, left corner +X)
    mouth_lower: np.ndarray     # [n] ids of the lower-lip copies, columns between the corners
    eye_row: int
    eye_cols: dict[str, tuple[int, int]]   # side -> (inner, outer) columns
    eye_lower: dict[str, np.ndarray]        # side -> lower lid copies, from inner to outer
    crown: int                  # top pole vertex id
    neck_ring: np.ndarray       # [C] bottom ring
    neck_cap: int               # centre of the neck's bottom cap
    side: np.ndarray            # [V] on slit rows: +1 upper copies, -1 lower copies (mouth and eyes); else 0


def _warped_angles(n: int, lo: float, hi: float, density, endpoint: bool) -> np.ndarray:
    """n angles in [lo, hi] spaced inversely to `density(angle)`."""
    fine = np.linspace(lo, hi, 8001)
    rho = density(fine)
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (rho[1:] + rho[:-1]) * np.diff(fine))])
    cum /= cum[-1]
    u = np.linspace(0.0, 1.0, n + (0 if endpoint else 1))[: n]
    return np.interp(u, cum, fine)


def column_angles() -> np.ndarray:
    """Azimuths phi (0 = facing +Z, +pi/2 = +X) of the columns; symmetric, denser over the face."""
    phi = _warped_angles(NUM_COLUMNS, -np.pi, np.pi, lambda a: 1.0 + 2.3 * np.exp(-((a / 0.78) ** 2)), False)
    # Enforce exact mirror symmetry: phi[j] == -phi[C - j].
    mirrored = -phi[(NUM_COLUMNS - np.arange(NUM_COLUMNS)) % NUM_COLUMNS]
    phi = 0.5 * (phi + mirrored)
    phi[0] = -np.pi
    return phi


def ring_angles() -> np.ndarray:
    """Polar angles from +Y of the ring rows (crown pole and neck ring excluded); denser over the face."""
    dens = lambda a: 0.45 + 1.9 * np.exp(-(((a - 1.68) / 0.50) ** 2))  # noqa: E731
    return _warped_angles(NUM_RINGS + 1, 0.0, 2.72, dens, True)[1:]


def _dirs(theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    st = np.sin(theta)
    return np.stack([st * np.sin(phi), np.cos(theta), st * np.cos(phi)], -1)


def _cast(dirs: np.ndarray, t_lo=0.0, t_hi=0.32) -> np.ndarray:
    t = cast_last_exit(head_sdf, np.broadcast_to(CAST_ORIGIN, dirs.shape).copy(), dirs, t_lo, t_hi)
    return CAST_ORIGIN + dirs * t[:, None], t


def _retarget_y(points: np.ndarray, t: np.ndarray, y_target: np.ndarray, iters: int = 5) -> np.ndarray:
    """Move surface points along the surface (by re-aiming their rays) until their height is y_target."""
    for _ in range(iters):
        aim = points - CAST_ORIGIN
        aim[:, 1] = y_target - CAST_ORIGIN[1]
        dirs = aim / np.linalg.norm(aim, axis=1, keepdims=True)
        hit_t = cast_last_exit(
            head_sdf, np.broadcast_to(CAST_ORIGIN, dirs.shape).copy(), dirs, t - 0.03, t + 0.02
        )
        points, t = CAST_ORIGIN + dirs * hit_t[:, None], hit_t
    return points


def lid_opening(abs_x: np.ndarray, inner: float, outer: float) -> tuple[np.ndarray, np.ndarray]:
    """Heights of the upper and lower lid edges above/below the eye slit at |x| -> (up [N], down [N])."""
    t = np.clip((abs_x - inner) / (outer - inner), 0.0, 1.0)
    # The upper lid peaks a little inside the middle, the lower lid a little outside.
    up = A.lid_upper_open * np.sin(np.pi * t**0.85) ** 0.75
    down = A.lid_lower_open * np.sin(np.pi * t**1.12) ** 0.9
    return up, down


def build_skin() -> Skin:
    theta = ring_angles()
    phi = column_angles()
    rr, cc = np.meshgrid(np.arange(NUM_RINGS), np.arange(NUM_COLUMNS), indexing="ij")
    dirs = _dirs(theta[rr], phi[cc]).reshape(-1, 3)
    pts, t = _cast(dirs)
    pts, t = pts.reshape(NUM_RINGS, NUM_COLUMNS, 3), t.reshape(NUM_RINGS, NUM_COLUMNS)

    mid = NUM_COLUMNS // 2
    # Row heights from a column over the cheek (smooth there, unlike the midline under the nose), made monotone.
    cheek = int(np.argmin(np.abs(phi - 0.45)))
    row_y = np.minimum.accumulate(0.5 * (pts[:, cheek, 1] + pts[:, NUM_COLUMNS - cheek, 1]))
    eye_row = int(np.argmin(np.abs(row_y - A.eye_y)))
    mouth_row = int(np.argmin(np.abs(row_y - A.mouth_y)))
    # Straighten the face band: every row at its midline height, slit rows exactly at the slits.
    idx = np.arange(NUM_RINGS)
    row_y = row_y + np.interp(idx, [eye_row - 4, eye_row, eye_row + 4], [0, A.eye_y - row_y[eye_row], 0])
    row_y = row_y + np.interp(idx, [mouth_row - 4, mouth_row, mouth_row + 4], [0, A.mouth_y - row_y[mouth_row], 0])
    band = _smoothstep(0.095, 0.075, row_y) * _smoothstep(-0.118, -0.100, row_y)  # [R]
    front = _smoothstep(1.25, 0.80, np.abs(phi))  # [C]
    w = band[:, None] * front[None, :]
    y_target = pts[..., 1] * (1 - w) + row_y[:, None] * w

    def corner_cols(row: int, x_targets: list[float]) -> list[int]:
        xs = pts[row, :, 0].copy()
        xs[np.abs(phi) > np.pi / 2] = np.inf  # only the face side
        return [int(np.argmin(np.abs(xs - x))) for x in x_targets]

    m_r, m_l = corner_cols(mouth_row, [-A.mouth_corner_x, A.mouth_corner_x])
    e_ri, e_ro, e_li, e_lo = corner_cols(
        eye_row, [-A.fissure_inner_x, -A.fissure_outer_x, A.fissure_inner_x, A.fissure_outer_x]
    )
    inner_x = 0.5 * (pts[eye_row, e_li, 0] - pts[eye_row, e_ri, 0])
    outer_x = 0.5 * (pts[eye_row, e_lo, 0] - pts[eye_row, e_ro, 0])

    # Spread the rows around the eye slits to open the fissures (upper side up, lower side down).
    abs_x = np.abs(pts[..., 0])
    up, down = lid_opening(abs_x, inner_x, outer_x)
    dy = row_y[:, None] - A.eye_y
    fall = lambda d: np.clip(1 - d / EYE_SPREAD, 0, 1) ** 2  # noqa: E731
    near_eye = (np.abs(phi) < np.pi / 2)[None, :]
    y_upper = y_target + np.where(near_eye & (dy >= 0), up * fall(np.maximum(dy, 0)), 0.0)
    y_upper = y_upper - np.where(near_eye & (dy < 0), down * fall(np.maximum(-dy, 0)), 0.0)

    # Lower copies of the slit rows.
    mouth_span = np.arange(m_r + 1, m_l)
    eye_spans = {"right": np.arange(e_ro + 1, e_ri), "left": np.arange(e_li + 1, e_lo)}
    low_rows = [mouth_row] * len(mouth_span) + [eye_row] * (len(eye_spans["right"]) + len(eye_spans["left"]))
    low_cols = np.concatenate([mouth_span, eye_spans["right"], eye_spans["left"]])
    low_y = y_target[low_rows, low_cols].copy()
    n_mouth = len(mouth_span)
    low_y[n_mouth:] -= down[eye_row, low_cols[n_mouth:]]

    all_pts = np.concatenate([pts.reshape(-1, 3), pts[low_rows, low_cols]])
    all_t = np.concatenate([t.reshape(-1), t[low_rows, low_cols]])
    all_y = np.concatenate([y_upper.reshape(-1), low_y])
    moved = _retarget_y(all_pts, all_t, all_y)

    # Crown pole; the neck below the last ring: rows cast sideways from the neck's axis down to the bottom
    # ring, and a cap.
    crown_t = _cast(np.array([[0.0, 1.0, 0.0]]))[0]
    horiz = np.stack([np.sin(phi), np.zeros_like(phi), np.cos(phi)], -1)
    last_y = moved[NUM_RINGS * NUM_COLUMNS - NUM_COLUMNS : NUM_RINGS * NUM_COLUMNS, 1]
    neck_rows = []
    for k in range(1, NECK_ROWS + 2):
        f = k / (NECK_ROWS + 1)
        heights = last_y * (1 - f) + A.neck_bottom_y * f
        axis = np.stack([np.zeros_like(heights), heights, np.full_like(heights, -0.020)], -1)
        t_neck = cast_last_exit(head_sdf, axis, horiz, 0.0, 0.12)
        neck_rows.append(axis + horiz * t_neck[:, None])
    neck_centre = np.array([0.0, A.neck_bottom_y, -0.020])

    n_grid = NUM_RINGS * NUM_COLUMNS
    grid = np.arange(n_grid).reshape(NUM_RINGS, NUM_COLUMNS)
    low_ids = n_grid + np.arange(len(low_cols))
    crown = n_grid + len(low_cols)
    neck_grid = crown + 1 + np.arange((NECK_ROWS + 1) * NUM_COLUMNS).reshape(NECK_ROWS + 1, NUM_COLUMNS)
    neck_ids = neck_grid[-1]
    neck_cap = int(neck_ids[-1] + 1)
    vertices = np.concatenate([moved, crown_t, *neck_rows, neck_centre[None]])

    # Faces: the rows' quads, the lower copies replacing the upper ones below each slit.
    below = np.concatenate([grid, neck_grid])
    below[low_rows, low_cols] = low_ids
    full = np.concatenate([grid, neck_grid])
    tris = []
    for i in range(len(full) - 1):
        for j in range(NUM_COLUMNS):
            j1 = (j + 1) % NUM_COLUMNS
            a, b = below[i, j], below[i, j1]
            d, e = full[i + 1, j], full[i + 1, j1]
            # Mirror the diagonal across the midline so the mesh is left/right symmetric.
            if phi[j] >= 0 and j != 0:
                tris += [(a, d, e), (a, e, b)]
            else:
                tris += [(a, d, b), (b, d, e)]
    for j in range(NUM_COLUMNS):
        j1 = (j + 1) % NUM_COLUMNS
        tris.append((crown, grid[0, j], grid[0, j1]))
        tris.append((neck_cap, neck_ids[j1], neck_ids[j]))
    faces = np.asarray(tris, dtype=np.int64)

    side = np.zeros(len(vertices), dtype=np.int64)
    side[grid[mouth_row, mouth_span]] = 1
    side[low_ids[:n_mouth]] = -1
    for name, span in eye_spans.items():
        side[grid[eye_row, span]] = 1
    side[low_ids[n_mouth:]] = -1
    eye_lower = {
        "right": low_ids[n_mouth : n_mouth + len(eye_spans["right"])][::-1],  # inner -> outer
        "left": low_ids[n_mouth + len(eye_spans["right"]) :],
    }
    return Skin(
        vertices=vertices,
        faces=faces,
        grid=grid,
        mouth_row=mouth_row,
        mouth_cols=(m_r, m_l),
        mouth_lower=low_ids[:n_mouth],
        eye_row=eye_row,
        eye_cols={"right": (e_ri, e_ro), "left": (e_li, e_lo)},
        eye_lower=eye_lower,
        crown=int(crown),
        neck_ring=neck_ids,
        neck_cap=neck_cap,
        side=side,
    )
