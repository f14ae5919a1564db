import torch

from emo_backend.avatar.gaussians import Gaussians
from emo_backend.motion.egd import EGD, EGDConfig, Residual, apply_residual, delta_mesh_features, quaternion_multiply


def scene(batch=2, n=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    verts = torch.randn(batch, 10, 3, generator=g) * 1e-3
    faces = torch.randint(0, 10, (6, 3), generator=g)
    face_ids = torch.randint(0, 6, (n,), generator=g)
    bary = torch.rand(n, 3, generator=g)
    bary = bary / bary.sum(-1, keepdim=True)
    return verts, faces, face_ids, bary


def run(model, batch=2, n=50):
    verts, faces, face_ids, bary = scene(batch, n)
    feats = delta_mesh_features(verts, faces, face_ids, bary)
    g = torch.Generator().manual_seed(3)
    return model(
        feats,
        torch.randn(n, 3, generator=g) * 0.1,
        torch.rand(batch, generator=g),
        torch.randn(batch, 5, 16, generator=g),
        torch.rand(batch, 8, generator=g),
        torch.rand(batch, generator=g),
    )


def test_delta_features_interpolate_the_triangle():
    verts, faces, face_ids, bary = scene()
    feats = delta_mesh_features(verts, faces, face_ids, bary)
    assert feats.shape == (2, 50, 12)
    expected = (verts[:, faces[face_ids]] * bary[None, :, :, None]).sum(-2)
    torch.testing.assert_close(feats[..., 9:], expected)


def test_untrained_egd_is_identity():
    torch.manual_seed(0)
    model = EGD(EGDConfig(audio_dim=16))
    r = run(model)
    assert all(torch.count_nonzero(t) == 0 for t in r)
    g = Gaussians(torch.randn(2, 50, 3), torch.randn(2, 50, 4), torch.randn(2, 50, 3), torch.randn(2, 50), torch.rand(2, 50, 3))
    out = apply_residual(g, r)
    torch.testing.assert_close(torch.nn.functional.normalize(out.quats, dim=-1), torch.nn.functional.normalize(g.quats, dim=-1))
    torch.testing.assert_close(out.colors, g.colors)


def test_residual_depends_on_emotion_and_gradients_flow():
    torch.manual_seed(0)
    model = EGD(EGDConfig(audio_dim=16))
    torch.nn.init.normal_(model.head.weight, std=0.1)
    r = run(model)
    assert r.rotation.shape == (2, 50, 4) and r.log_scale.shape == (2, 50, 3) and r.opacity.shape == (2, 50)
    assert r.position.shape == (2, 50, 3)
    assert (r.color[0] - r.color[1]).abs().max() > 1e-5  # different frames, different residuals
    sum(t.square().sum() for t in r).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing


def test_quaternion_product_composes_rotations():
    from scipy.spatial.transform import Rotation

    a, b = Rotation.random(2, random_state=1)
    qa = torch.tensor(a.as_quat(scalar_first=True))
    qb = torch.tensor(b.as_quat(scalar_first=True))
    expected = (a * b).as_quat(scalar_first=True)
    got = quaternion_multiply(qa, qb).numpy()
    assert min(abs(got - expected).max(), abs(got + expected).max()) < 1e-12


def test_residual_rotation_is_local_frame():
    g = Gaussians(torch.zeros(1, 1, 3), torch.tensor([[[0.0, 0.0, 0.0, 1.0]]]), torch.zeros(1, 1, 3), torch.zeros(1, 1), torch.zeros(1, 1, 3))
    r = Residual(torch.tensor([[[0.0, 1.0, 0.0, 0.0]]]), torch.zeros(1, 1, 3), torch.zeros(1, 1, 3), torch.zeros(1, 1),
                 torch.tensor([[[0.001, 0.0, 0.0]]]))
    out = apply_residual(g, r)
    expected = quaternion_multiply(g.quats, torch.tensor([1.0, 1.0, 0.0, 0.0]))
    torch.testing.assert_close(out.quats, expected)
    turned = apply_residual(g, r, position_rotation=torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).expand(1, 1, 3, 3))
    torch.testing.assert_close(turned.means, torch.tensor([[[0.0, 0.001, 0.0]]]))
