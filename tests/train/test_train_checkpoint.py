"""Learning-rate schedule values, and checkpoints that continue a run exactly (no pickle, atomic)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from torch import nn

from emo_backend.errors import InvalidFileError
from emo_backend.train.checkpoint import load_checkpoint, save_checkpoint
from emo_backend.train.schedule import ExponentialDecay, constant


def test_exponential_decay_values():
    s = ExponentialDecay(1.6e-4, 1.6e-6, 30_000)
    assert s(0) == pytest.approx(1.6e-4)
    assert s(15_000) == pytest.approx(math.sqrt(1.6e-4 * 1.6e-6))  # log-linear: the geometric mean halfway
    assert s(30_000) == pytest.approx(1.6e-6) and s(90_000) == pytest.approx(1.6e-6)
    values = [s(k) for k in range(0, 30_001, 1000)]
    assert all(a > b for a, b in zip(values, values[1:]))
    delayed = ExponentialDecay(1.0, 0.01, 100, delay_steps=10, delay_mult=0.01)
    assert delayed(0) == pytest.approx(0.01)
    assert delayed(5) == pytest.approx((0.01 + 0.99 * math.sin(math.pi / 4)) * 0.01 ** 0.05)
    assert delayed(10) == pytest.approx(0.01 ** 0.1)
    assert constant(5e-3)(12345) == pytest.approx(5e-3) and s(-1) == 0.0
    with pytest.raises(ValueError):
        ExponentialDecay(1e-3, 0.0, 10)


def _model(seed: int):
    gen = torch.Generator().manual_seed(seed)
    params = {"a": nn.Parameter(torch.randn(6, 3, generator=gen)), "b": nn.Parameter(torch.randn(2, 6, generator=gen))}
    opt = torch.optim.Adam([{"params": [p], "name": k, "lr": 0.01 * (i + 1)} for i, (k, p) in enumerate(params.items())],
                           eps=1e-15)
    return params, opt


def _steps(params, opt, gen, count):
    for _ in range(count):
        noise = torch.randn(6, 3, generator=gen)
        loss = ((params["a"] - noise) ** 2).sum() + (params["b"] ** 3).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_checkpoint_continues_bit_for_bit(tmp_path):
    params, opt = _model(0)
    gen = torch.Generator().manual_seed(7)
    _steps(params, opt, gen, 3)
    torch.manual_seed(11)
    np.random.seed(5)
    random.seed(9)
    path = save_checkpoint(tmp_path / "ck" / "latest.safetensors", 3, params, opt,
                           buffers={"ids": torch.arange(4)}, generators={"frames": gen}, meta={"note": "x"})
    assert [p.name for p in path.parent.iterdir()] == ["latest.safetensors"]  # no temp files left
    expected = (torch.rand(3), np.random.rand(3), random.random())
    _steps(params, opt, gen, 4)

    ck = load_checkpoint(path)
    assert ck.step == 3 and ck.meta == {"note": "x"} and ck.param_names == ["a", "b"]
    assert torch.equal(ck.buffers["ids"], torch.arange(4))
    params2 = {k: nn.Parameter(v) for k, v in ck.params.items()}
    opt2 = torch.optim.Adam([{"params": [params2[k]], "name": k, "lr": 0.0} for k in ck.param_names], eps=1e-15)
    opt2.load_state_dict(ck.optimizer_state)
    assert [g["lr"] for g in opt2.param_groups] == [0.01, 0.02]
    gen2 = torch.Generator()
    gen2.set_state(ck.generator_states["frames"])
    ck.restore_global_rng()
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1]) and random.random() == expected[2]
    _steps(params2, opt2, gen2, 4)
    for k in params:
        assert torch.equal(params[k], params2[k]), k


def test_bad_checkpoints_are_named(tmp_path):
    with pytest.raises(InvalidFileError, match="not found"):
        load_checkpoint(tmp_path / "nope.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(InvalidFileError, match="junk.safetensors"):
        load_checkpoint(tmp_path / "junk.safetensors")
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(InvalidFileError, match="not an EmoSplat training checkpoint"):
        load_checkpoint(tmp_path / "other.safetensors")
    params, opt = _model(1)
    with torch.no_grad():
        params["a"][0, 0] = float("nan")
    save_checkpoint(tmp_path / "nan.safetensors", 1, params, opt)
    with pytest.raises(InvalidFileError, match="NaN"):
        load_checkpoint(tmp_path / "nan.safetensors")
