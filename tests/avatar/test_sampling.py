import numpy as np
import torch
from scipy.spatial import cKDTree

from emo_backend.avatar.binding import face_areas, interpolate
from emo_backend.avatar.sampling import local_spacing, poisson_disk_sample, poisson_radius, uniform_surface_samples


def _skin(head):
    return torch.arange(int(head.regions["lower_teeth"].min()))


def _points(head, face_ids, bary):
    return interpolate(head.v_template, head.faces, face_ids, bary)


def test_poisson_samples_keep_a_minimum_distance(head):
    skin = _skin(head)
    count = 1500
    face_ids, bary = poisson_disk_sample(head.v_template, head.faces, count, seed=0, face_subset=skin)
    assert face_ids.shape == (count,) and bary.shape == (count, 3)
    assert torch.isin(face_ids, skin).all()
    assert (bary >= 0).all() and torch.allclose(bary.sum(-1), torch.ones(count), atol=1e-6)
    pts = _points(head, face_ids, bary).numpy()
    nearest = cKDTree(pts).query(pts, k=2)[0][:, 1]
    radius = poisson_radius(float(face_areas(head.v_template, head.faces)[skin].sum()), count)
    # Sample elimination reaches ~1.4 r_max; i.i.d. uniform samples of the same count get ~0.01 r_max.
    assert nearest.min() > 1.1 * radius
    rng = np.random.default_rng(0)
    f, b = uniform_surface_samples(head.v_template.double().numpy(), head.faces[skin].numpy(), count, rng)
    uniform = (head.v_template.double().numpy()[head.faces[skin].numpy()[f]] * b[..., None]).sum(1)
    assert cKDTree(uniform).query(uniform, k=2)[0][:, 1].min() < 0.3 * radius


def test_poisson_sampling_is_deterministic_by_seed(head):
    a = poisson_disk_sample(head.v_template, head.faces, 400, seed=7)
    b = poisson_disk_sample(head.v_template, head.faces, 400, seed=7)
    c = poisson_disk_sample(head.v_template, head.faces, 400, seed=8)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_samples_cover_the_surface_evenly(head):
    skin = _skin(head)
    face_ids, bary = poisson_disk_sample(head.v_template, head.faces, 1200, seed=1, face_subset=skin)
    pts = _points(head, face_ids, bary)
    # Every vertex of the sphere has a sample nearby: no holes.
    gap = cKDTree(pts.numpy()).query(head.v_template[head.faces[skin].unique()].numpy())[0]
    radius = poisson_radius(float(face_areas(head.v_template, head.faces)[skin].sum()), 1200)
    assert gap.max() < 2.5 * radius
    spacing = local_spacing(pts)
    assert spacing.shape == (1200,) and (spacing > radius).all() and (spacing < 3 * radius).all()
