"""The open head model: structure, rig, landmarks, expressions, identities, appearance."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from emo_backend.head.expressions import ACTION_UNITS, au_indices
from emo_backend.head.lbs import lbs, landmarks
from emo_backend.head.model import JOINT_NAMES, LANDMARK_GROUPS
from emo_backend.head.open_head import IDENTITY_NAMES, albedo_at, build_open_head, random_identity

REQUIRED_REGIONS = ("lips", "left_eyeball", "right_eyeball", "eyes", "mouth_interior", "upper_teeth",
                    "lower_teeth", "tongue", "hair", "skin")


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    return build_open_head(cache_dir=tmp_path_factory.mktemp("open_head"))


def _expr(**coeffs) -> torch.Tensor:
    e = torch.zeros(1, len(ACTION_UNITS))
    for name, value in coeffs.items():
        for i in au_indices(name):
            e[0, i] = value
    return e


def _pose(jaw: float = 0.0) -> torch.Tensor:
    p = torch.zeros(1, len(JOINT_NAMES), 3)
    p[0, 2, 0] = jaw
    return p


def _landmarks(head, expr=None, jaw=0.0, identity=None) -> np.ndarray:
    out = lbs(head, _expr() if expr is None else expr, _pose(jaw), identity=identity)
    return landmarks(head, out.vertices)[0].numpy()


def test_fields_have_the_documented_shapes_and_dtypes(head):
    v, f = head.num_vertices, head.faces.shape[0]
    assert 4000 <= v <= 8000
    assert head.model_id == "open-head-v1"
    assert head.v_template.shape == (v, 3) and head.v_template.dtype == torch.float32
    assert head.faces.dtype == torch.int64 and head.faces.shape == (f, 3)
    assert int(head.faces.min()) >= 0 and int(head.faces.max()) < v
    assert head.shapedirs.shape == (v, 3, len(IDENTITY_NAMES)) and head.shapedirs.dtype == torch.float32
    assert head.exprdirs.shape == (v, 3, len(ACTION_UNITS)) and head.exprdirs.dtype == torch.float32
    assert head.expr_names == ACTION_UNITS
    assert head.j_regressor.shape == (5, v)
    assert head.parents.tolist() == [-1, 0, 1, 1, 1] and head.parents.dtype == torch.int64
    assert head.lbs_weights.shape == (v, 5)
    assert head.landmark_faces.shape == (68,) and head.landmark_faces.dtype == torch.int64
    assert head.landmark_bary.shape == (68, 3)
    assert head.posedirs is None
    assert head.vertex_colors.shape == (v, 3)
    assert float(head.vertex_colors.min()) >= 0 and float(head.vertex_colors.max()) <= 1
    for t in (head.v_template, head.shapedirs, head.exprdirs, head.j_regressor, head.lbs_weights):
        assert torch.isfinite(t).all()
    for name in REQUIRED_REGIONS:
        ids = head.region_faces(name)
        assert ids.dtype == torch.int64 and ids.numel() > 0 and int(ids.max()) < f
    moved = head.to("cpu")
    assert moved.num_vertices == v


def test_size_and_axes_are_a_human_head(head):
    v = head.v_template.numpy()
    skin = np.unique(head.faces[head.regions["skin"]].numpy())
    lo, hi = v[skin].min(0), v[skin].max(0)
    assert 0.14 < hi[0] - lo[0] < 0.17           # width without ears
    assert 0.165 < v[:, 0].max() - v[:, 0].min() < 0.20  # with the ears
    nose_tip = v[skin][np.argmax(v[skin, 2])]
    assert nose_tip[2] > 0.10 and -0.04 < nose_tip[1] < 0.0 and abs(nose_tip[0]) < 0.003  # +Z is the face
    eyes = head.j_regressor.numpy() @ v
    assert eyes[3, 0] > 0.02 and eyes[4, 0] < -0.02   # left eye at +X
    assert abs(eyes[3, 1] - eyes[4, 1]) < 1e-6


def test_skin_with_its_linings_is_closed_and_faces_outwards(head):
    f = head.faces.numpy()
    ids = np.concatenate([head.regions[n].numpy() for n in ("skin", "mouth_cavity", "eye_sockets")])
    tri = f[ids]
    edges = np.sort(np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert (counts == 2).all()  # watertight: no holes anywhere, the slits are sewn to their linings
    v = head.v_template.numpy().astype(np.float64)
    for name in ("skin+linings", "left_eyeball", "upper_teeth", "lower_teeth", "tongue", "ears"):
        t = v[tri] if name == "skin+linings" else v[f[head.regions[name].numpy()]]
        volume = np.einsum("ij,ij->i", t[:, 0], np.cross(t[:, 1], t[:, 2])).sum() / 6
        assert volume > 0, name  # counter-clockwise seen from outside


def test_mesh_is_mirror_symmetric(head):
    v = head.v_template.numpy().astype(np.float64)
    mirrored = v * [-1, 1, 1]
    d, _ = cKDTree(v).query(mirrored)
    assert d.max() < 1e-5


def test_lbs_weights_and_joints(head):
    w = head.lbs_weights
    assert torch.allclose(w.sum(1), torch.ones(head.num_vertices), atol=1e-5)
    assert float(w.min()) >= 0
    faces = head.faces
    def verts(region):
        return torch.unique(faces[head.regions[region]])
    assert torch.allclose(w[verts("left_eyeball"), 3], torch.tensor(1.0))
    assert torch.allclose(w[verts("right_eyeball"), 4], torch.tensor(1.0))
    assert torch.allclose(w[verts("lower_teeth"), 2], torch.tensor(1.0))
    assert torch.allclose(w[verts("tongue"), 2], torch.tensor(1.0))
    assert float(w[verts("upper_teeth"), 2].max()) == 0.0
    assert torch.allclose(head.j_regressor.sum(1), torch.ones(5), atol=1e-5)
    joints = (head.j_regressor @ head.v_template).numpy()
    assert joints[0, 1] < joints[1, 1] < joints[2, 1] < joints[3, 1]  # root, neck, jaw, eyes from bottom up


def test_landmarks_sit_where_the_face_parts_are(head):
    lm = _landmarks(head)
    v = head.v_template.numpy()
    assert (lm >= v.min(0) - 1e-6).all() and (lm <= v.max(0) + 1e-6).all()
    assert np.allclose(head.landmark_bary.sum(1).numpy(), 1, atol=1e-5)
    g = {k: lm[list(r)] for k, r in LANDMARK_GROUPS.items()}
    assert (g["left_eye"][:, 0] > 0.01).all() and (g["right_eye"][:, 0] < -0.01).all()
    assert (g["left_brow"][:, 0] > 0.005).all() and (g["right_brow"][:, 0] < -0.005).all()
    mouth_centre = g["mouth"].mean(0)
    assert np.linalg.norm(g["mouth"] - mouth_centre, axis=1).max() < 0.03
    assert abs(mouth_centre[0]) < 1e-3 and -0.075 < mouth_centre[1] < -0.045
    assert g["left_brow"][:, 1].min() > g["left_eye"][:, 1].max()
    assert g["left_eye"][:, 1].min() > lm[30, 1] > g["mouth"][:, 1].max()  # eyes over nose tip over mouth
    assert np.argmax(lm[:, 2]) == 30  # the nose tip is the most forward landmark
    assert lm[8, 1] < lm[:, 1].min() + 0.001 and abs(lm[8, 0]) < 1e-3  # the chin is the lowest
    assert lm[0, 0] < -0.05 and lm[16, 0] > 0.05  # jaw line from the subject's right to left
    assert np.allclose(lm[:, 0], -lm[[*range(16, -1, -1), *range(26, 16, -1), 27, 28, 29, 30, 35, 34, 33, 32, 31,
                                      45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40, 54, 53, 52, 51, 50, 49, 48,
                                      59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65], 0], atol=1e-4)


def test_opening_the_jaw_parts_the_lips_and_shows_the_teeth(head):
    rest, opened = _landmarks(head), _landmarks(head, jaw=0.3)
    assert opened[57, 1] < rest[57, 1] - 0.010          # lower lip down by more than a centimetre
    assert np.linalg.norm(opened[51] - rest[51]) < 0.002  # upper lip stays
    assert opened[62, 1] - opened[66, 1] > 0.012          # a real gap between the lips
    v0 = lbs(head, _expr(), _pose()).vertices[0]
    v1 = lbs(head, _expr(), _pose(0.3)).vertices[0]
    forehead = head.v_template[:, 1] > 0.05
    assert float((v1 - v0)[forehead].abs().max()) < 1e-6
    lower_teeth = torch.unique(head.faces[head.regions["lower_teeth"]])
    upper_teeth = torch.unique(head.faces[head.regions["upper_teeth"]])
    assert float((v1 - v0)[upper_teeth].abs().max()) < 1e-6
    incisor_top = float(v1[lower_teeth, 1].max())
    assert opened[66, 1] < incisor_top < opened[62, 1]  # the lower teeth show between the lips
    assert float(v1[upper_teeth, 1].min()) < opened[62, 1]  # so do the upper incisors' edges


def _lid_gaps(lm: np.ndarray) -> np.ndarray:
    """Upper-to-lower lid distances: right eye (37-41, 38-40), left eye (43-47, 44-46)."""
    pairs = [(37, 41), (38, 40), (43, 47), (44, 46)]
    return np.array([np.linalg.norm(lm[a] - lm[b]) for a, b in pairs])


def test_blink_closes_the_eyes(head):
    open_gaps = _lid_gaps(_landmarks(head))
    assert (open_gaps > 0.006).all()
    closed = _lid_gaps(_landmarks(head, _expr(AU45=1.0)))
    assert (closed < 0.0015).all()
    wink = _lid_gaps(_landmarks(head, _expr(AU45L=1.0)))
    assert (wink[2:] < 0.0015).all() and np.allclose(wink[:2], open_gaps[:2], atol=1e-4)
    half = _lid_gaps(_landmarks(head, _expr(AU45=0.5)))
    assert (half < open_gaps).all() and (half > closed).all()


def test_blink_keeps_the_lid_outside_the_eyeball(head):
    for coeff in (0.25, 0.5, 0.75, 1.0):
        v = lbs(head, _expr(AU45=coeff), _pose()).vertices[0].numpy()
        joints = (head.j_regressor @ head.v_template).numpy()
        lids = np.unique(head.faces[head.regions["skin"]].numpy())
        for j in (3, 4):
            d = np.linalg.norm(v[lids] - joints[j], axis=1)
            assert d.min() > 0.0120  # eyeball radius 12 mm


def test_unilateral_smile_moves_only_its_own_corner(head):
    rest = _landmarks(head)
    left = _landmarks(head, _expr(AU12L=1.0))
    assert left[54, 1] - rest[54, 1] > 0.004                      # left corner (+X) goes up
    assert np.linalg.norm(left[54] - rest[54]) > 0.007            # and back: ~8 mm in all
    assert np.linalg.norm(left[48] - rest[48]) < 0.0005           # the right one stays
    right = _landmarks(head, _expr(AU12R=1.0))
    assert right[48, 1] - rest[48, 1] > 0.004 and np.linalg.norm(right[54] - rest[54]) < 0.0005


@pytest.mark.parametrize("name", ACTION_UNITS)
def test_every_action_unit_moves_the_face_a_few_millimetres(head, name):
    d = head.exprdirs[..., ACTION_UNITS.index(name)].norm(dim=-1)
    assert 0.002 < float(d.max()) < 0.016
    rigid = torch.unique(torch.cat([head.faces[head.regions[r]].flatten()
                                    for r in ("eyes", "upper_teeth", "lower_teeth", "tongue")]))
    assert float(d[rigid].max()) == 0.0


def test_lips_part_and_brows_rise(head):
    rest = _landmarks(head)
    parted = _landmarks(head, _expr(AU25=1.0))
    assert parted[62, 1] - parted[66, 1] > 0.005
    raised = _landmarks(head, _expr(AU1=1.0, AU2=1.0))
    lift = raised[17:27, 1] - rest[17:27, 1]
    assert (lift > 0.005).all() and lift.mean() > 0.007
    lowered = _landmarks(head, _expr(AU4=1.0))
    assert (lowered[17:27, 1] < rest[17:27, 1]).all()


def test_identities_change_the_shape_and_move_the_joints(head):
    for s, name in enumerate(IDENTITY_NAMES):
        assert float(head.shapedirs[..., s].norm(dim=-1).max()) > 0.0015, name
    a, b = random_identity(1), random_identity(2)
    assert a.shape == (len(IDENTITY_NAMES),) and not torch.allclose(a, b)
    assert torch.equal(a, random_identity(1))
    pa = lbs(head, _expr(), _pose(), identity=a[None])
    pb = lbs(head, _expr(), _pose(), identity=b[None])
    assert float((pa.vertices - pb.vertices).norm(dim=-1).max()) > 0.003
    wide = torch.zeros(1, len(IDENTITY_NAMES))
    wide[0, IDENTITY_NAMES.index("eye_spacing")] = 1.0
    joints = lbs(head, _expr(), _pose(), identity=wide).joints[0]
    rest = lbs(head, _expr(), _pose()).joints[0]
    assert float(joints[3, 0] - rest[3, 0]) > 0.001  # the eye moves with its socket


def test_albedo_matches_vertex_colours_and_has_eyes_teeth_and_mouth(head):
    f = head.faces
    for region in ("skin", "left_eyeball", "upper_teeth", "tongue"):
        ids = head.regions[region][:50]
        bary = torch.zeros(len(ids), 3)
        bary[:, 1] = 1.0
        col = albedo_at(head, ids, bary)
        assert col.shape == (len(ids), 3)
        assert torch.allclose(col, head.vertex_colors[f[ids, 1]], atol=1e-4), region
    v = head.v_template
    eye = torch.unique(f[head.regions["left_eyeball"]])
    front = eye[torch.argmax(v[eye, 2])]
    side = eye[torch.argmax(v[eye, 0])]
    assert float(head.vertex_colors[front].max()) < 0.1      # pupil
    assert float(head.vertex_colors[side].min()) > 0.7       # sclera
    teeth = torch.unique(f[head.regions["upper_teeth"]])
    cavity = torch.unique(f[head.regions["mouth_cavity"]])
    assert float(head.vertex_colors[teeth].mean()) > float(head.vertex_colors[cavity].mean()) + 0.25
    # Finer than the vertices: across one eyeball face near the iris edge the colour changes.
    pts = albedo_at(head, head.regions["left_eyeball"][:1].repeat(5), torch.tensor(
        [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0]], dtype=torch.float32))
    assert torch.isfinite(pts).all()
