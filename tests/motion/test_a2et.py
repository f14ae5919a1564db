import torch

from emo_backend.motion.a2et import A2ET, A2ETConfig


def make(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = A2ETConfig(audio_dim=20, num_expressions=7, d_model=32, num_layers=2, num_heads=4, window=3, dropout=0.0, **kw)
    model = A2ET(cfg).eval()
    # The heads start at zero (no motion before training); give them weights so the tests see the network.
    torch.nn.init.normal_(model.head.weight, std=0.1)
    for block in model.blocks:
        torch.nn.init.normal_(block.modulation.weight, std=0.1)
    return model


def inputs(frames, batch=1, seed=1):
    g = torch.Generator().manual_seed(seed)
    audio = torch.randn(batch, frames, 20, generator=g)
    weights = torch.rand(batch, frames, 8, generator=g)
    intensity = torch.rand(batch, frames, generator=g)
    return audio, weights, intensity


def test_shapes_and_untrained_model_is_still():
    torch.manual_seed(0)
    model = A2ET(A2ETConfig(audio_dim=20, num_expressions=7, d_model=32, num_layers=2, num_heads=4))
    out = model(*inputs(30, batch=2))
    assert out.expression.shape == (2, 30, 7) and out.jaw.shape == (2, 30, 3) and out.neck.shape == (2, 30, 3)
    assert torch.count_nonzero(out.expression) == 0  # zero-initialised heads: no motion before training


def test_chunked_prediction_equals_whole_clip():
    model = make()
    audio, weights, intensity = inputs(200)
    whole = model(audio, weights, intensity)
    chunked = model.predict(audio[0], weights[0], intensity[0], chunk=37)
    for a, b in zip(whole, chunked):
        torch.testing.assert_close(a[0], b, atol=1e-5, rtol=1e-4)


def test_receptive_field_is_local():
    model = make()
    audio, weights, intensity = inputs(80)
    base = model(audio, weights, intensity).expression
    audio2 = audio.clone()
    audio2[:, 60] += 5.0
    moved = model(audio2, weights, intensity).expression
    changed = (moved - base).abs().amax(-1)[0] > 1e-6
    rf = model.cfg.receptive_field
    assert changed[60]
    assert not changed[: 60 - rf].any() and not changed[60 + rf + 1 :].any()


def test_emotion_and_intensity_condition_the_output():
    model = make()
    audio, weights, intensity = inputs(20)
    happy = torch.zeros_like(weights)
    happy[..., 5] = 1
    sad = torch.zeros_like(weights)
    sad[..., 6] = 1
    a = model(audio, happy, intensity).expression
    b = model(audio, sad, intensity).expression
    c = model(audio, happy, intensity * 0).expression
    assert (a - b).abs().max() > 1e-4 and (a - c).abs().max() > 1e-4


def test_intensity_zero_is_neutral_whatever_the_weights():
    model = make()
    audio, weights, intensity = inputs(20)
    neutral = torch.zeros_like(weights)
    neutral[..., 0] = 1
    torch.testing.assert_close(model(audio, weights, intensity * 0).expression, model(audio, neutral, intensity).expression)


def test_gradients_reach_every_parameter():
    model = make()
    model.train()
    out = model(*inputs(16, batch=2))
    (out.expression.square().mean() + out.jaw.square().mean() + out.neck.square().mean()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
