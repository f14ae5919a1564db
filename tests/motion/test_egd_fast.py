"""The EGD inference paths (`motion.egd_fast`: torch tiles, and the numba kernel of `motion.egd_cpu`) give
`EGD.forward`'s residual, and shots' pipeline its frames."""

import pytest
import torch

from emo_backend.motion.egd import EGD, EGDConfig
from emo_backend.motion.egd_fast import egd_residual, prepare_egd


def trained_like(dim=16, layers=2, scale=0.3, seed=0):
    """An EGD with every parameter non-zero (a fresh one has zero heads and would compare zeros)."""
    torch.manual_seed(seed)
    model = EGD(EGDConfig(audio_dim=20, dim=dim, num_layers=layers, num_cameras=2)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * scale)
    return model


def inputs(batch=2, n=300, seed=1):
    g = torch.Generator().manual_seed(seed)
    return dict(
        delta_features=torch.randn(batch, n, 12, generator=g) * 2e-3,
        blink=torch.rand(batch, generator=g),
        audio_window=torch.randn(batch, 9, 20, generator=g),
        weights=torch.rand(batch, 8, generator=g),
        intensity=torch.rand(batch, generator=g),
        camera=torch.tensor([1, 0])[:batch],
    )


@pytest.mark.parametrize("kernel, tile, n", [("torch", None, 300), ("torch", 64, 300), ("torch", 1000, 300),
                                             ("numba", None, 300), ("numba", None, 700), ("numba", None, 1)])
def test_fast_residual_equals_forward(kernel, tile, n):
    model = trained_like()
    x = inputs(n=n)
    canonical = torch.randn(n, 3, generator=torch.Generator().manual_seed(5)) * 0.1
    with torch.no_grad():
        ref = model(x["delta_features"], canonical, x["blink"], x["audio_window"], x["weights"], x["intensity"],
                    x["camera"])
    fast = egd_residual(prepare_egd(model, canonical), **x, tile=tile, kernel=kernel)
    for a, b in zip(fast, ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        assert b.abs().max() > 1e-2 or b is ref.position  # the comparison is not between zeros


def test_auto_kernel_is_numba_on_the_cpu(monkeypatch):
    from emo_backend.motion import egd_cpu

    calls = []
    real = egd_cpu.egd_residual_cpu
    monkeypatch.setattr(egd_cpu, "egd_residual_cpu", lambda *a: calls.append(1) or real(*a))
    model = trained_like()
    x = inputs(n=50)
    egd_residual(prepare_egd(model, torch.zeros(50, 3)), **x)
    assert calls == [1]
    with pytest.raises(ValueError, match="kernel"):
        egd_residual(prepare_egd(model, torch.zeros(50, 3)), **x, kernel="fortran")


def test_cpu_kernel_gelu_and_exp_match_torch_to_float32_accuracy():
    import numpy as np
    from numba import njit

    from emo_backend.motion.egd_cpu import _exp_nonpositive, _gelu

    @njit
    def apply(fn_id, values):
        out = np.empty_like(values)
        for i in range(values.shape[0]):
            out[i] = _gelu(values[i]) if fn_id == 0 else _exp_nonpositive(values[i])
        return out

    x = np.linspace(-30.0, 30.0, 200_001).astype(np.float32)
    exact_gelu = torch.nn.functional.gelu(torch.from_numpy(x).double()).numpy()
    assert np.abs(apply(0, x) - exact_gelu).max() < 2e-6  # torch's own float32 GELU is 1.1e-6 off here
    neg = np.concatenate([np.linspace(-100.0, 0.0, 100_001), [-87.5, -1e-30, 0.0]]).astype(np.float32)
    exact_exp = np.exp(neg.astype(np.float64))
    got = apply(1, neg)
    assert np.all(np.abs(got - exact_exp) <= 2e-7 * exact_exp + 1e-37)
    assert got[-1] == 1.0


def test_cpu_kernel_softmax_survives_huge_scores():
    """The kernel subtracts each row's max: scores far outside exp()'s range still give the forward's result."""
    model = trained_like(scale=3.0)
    x = inputs(n=200)
    x["audio_window"] = x["audio_window"] * 50
    canonical = torch.randn(200, 3) * 0.1
    with torch.no_grad():
        ref = model(x["delta_features"], canonical, x["blink"], x["audio_window"], x["weights"], x["intensity"],
                    x["camera"])
    fast = egd_residual(prepare_egd(model, canonical), **x, kernel="numba")
    scale = max(b.abs().max().item() for b in ref)  # ~100 here: the forward's own float32 rounding is ~1e-3
    for a, b in zip(fast, ref):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, atol=1e-4 * scale, rtol=1e-4)


def test_wide_attention_scores_fall_back_to_the_row_max_and_stay_exact(monkeypatch):
    from emo_backend.motion import egd_fast

    wide = trained_like(scale=3.0)  # scores spanning far more than one fixed shift can keep inside exp()
    with torch.no_grad():
        tokens = torch.randn(12, wide.cfg.dim) * 3
    assert not egd_fast._block_attention(wide.blocks[0], tokens).fixed_shift
    assert egd_fast._block_attention(trained_like().blocks[0], tokens[:, :16] / 3).fixed_shift

    monkeypatch.setattr(egd_fast, "SOFTMAX_SPAN", 0.0)  # every block takes the per-row max path
    model = trained_like()
    x = inputs()
    canonical = torch.randn(x["delta_features"].shape[1], 3) * 0.1
    with torch.no_grad():
        ref = model(x["delta_features"], canonical, x["blink"], x["audio_window"], x["weights"], x["intensity"],
                    x["camera"])
    fast = egd_residual(prepare_egd(model, canonical), **x, kernel="torch")
    for a, b in zip(fast, ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_frame_gaussians_fast_paths_equal_the_reference():
    import importlib.util
    from pathlib import Path

    from emo_backend.avatar.init import init_avatar_from_head
    from emo_backend.avatar.prepared import prepare_avatar
    from emo_backend.motion.pipeline import frame_gaussians

    spec = importlib.util.spec_from_file_location("avatar_test_head",
                                                  Path(__file__).parents[1] / "avatar" / "avatar_test_head.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    avatar = init_avatar_from_head(module.synthetic_head(num_expressions=3, seed=0), 600, seed=0)
    model = EGD(EGDConfig(audio_dim=20, dim=16, num_layers=2)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    g = torch.Generator().manual_seed(4)
    b = 2
    args = (torch.randn(b, 3, generator=g) * 0.5, torch.randn(b, 5, 3, generator=g) * 0.2,
            torch.randn(b, 3, generator=g) * 0.5, torch.randn(b, 5, 3, generator=g) * 0.2,
            torch.rand(b, generator=g), torch.randn(b, 9, 20, generator=g), torch.rand(b, 8, generator=g),
            torch.rand(b, generator=g))
    with torch.no_grad():
        ref, _ = frame_gaussians(avatar, model, *args)
    prepared = prepare_avatar(avatar)
    fast, _ = frame_gaussians(avatar, model, *args, prepared=prepared,
                              prepared_egd=prepare_egd(model, prepared.neutral_means))
    for name in ("means", "quats", "log_scales", "opacity_logits", "colors"):
        torch.testing.assert_close(getattr(fast, name), getattr(ref, name), atol=1e-5, rtol=1e-5)
