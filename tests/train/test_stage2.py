"""Stage 2 learns what stage 1 cannot: an emotion-dependent colour change (a flush) on top of fixed blendshapes."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from train_fixtures import camera, target_avatar, tiny_head  # noqa: E402

from emo_backend.audio.features import logmel_dim  # noqa: E402
from emo_backend.avatar.init import init_avatar_from_head  # noqa: E402
from emo_backend.data.dataset import DatasetWriter  # noqa: E402
from emo_backend.motion.a2et import A2ET, A2ETConfig  # noqa: E402
from emo_backend.train.stage2 import Stage2Config, load_egd, train_stage2  # noqa: E402

SIZE, FRAMES, FPS, RATE = 32, 6, 25, 16000
FLUSH = torch.tensor([0.25, -0.1, -0.1])


def render(avatar, expression, K, view, flush: bool):
    from emo_backend.avatar.blendshapes import evaluate
    from emo_backend.avatar.gaussians import activate
    from emo_backend.render import rasterize

    with torch.no_grad():
        g, _ = evaluate(avatar, expression[None], torch.zeros(1, 5, 3))
        a = activate(g.frame(0))
        colors = (a.colors + FLUSH).clamp(0, 1) if flush else a.colors
        rgb, alpha, _ = rasterize(a.means, a.quats, a.scales, a.opacities, colors, view, K, SIZE, SIZE, backend="cpu")
    return rgb.numpy(), alpha[..., 0].numpy()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("stage2")
    torch.manual_seed(0)
    subject = target_avatar(init_avatar_from_head(tiny_head(), 300, seed=0))
    gen = torch.Generator().manual_seed(1)
    t = np.arange(int(RATE * FRAMES / FPS)) / RATE
    audio = (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    with DatasetWriter(root / "data", head_model=subject.head.model_id, expression_names=subject.head.expr_names,
                       fps=FPS, resolution=(SIZE, SIZE)) as writer:
        for split in ("train", "test"):
            for emotion, intensity in (("neutral", 0.0), ("happy", 1.0)):
                expr = torch.rand(FRAMES, 2, generator=gen) * 0.5
                K, view = camera(SIZE, yaw=0.0)
                images, masks = [], []
                for i in range(FRAMES):
                    rgb, alpha = render(subject, expr[i], K, view, flush=emotion == "happy")
                    images.append(np.clip(rgb, 0, 1))
                    masks.append((alpha > 0.5).astype(np.float32))
                tracking = {"expression": expr.numpy(), "pose": np.zeros((FRAMES, 5, 3), np.float32),
                            "translation": np.zeros((FRAMES, 3), np.float32), "identity": np.zeros(1, np.float32),
                            "K": K.numpy(), "viewmat": view.numpy()}
                writer.add_clip(f"{emotion}_{split}", identity="tiny", emotion=emotion, intensity=intensity,
                                frames=images, masks=masks, audio=(audio, RATE), tracking=tracking, split=split)
    a2et = A2ET(A2ETConfig(audio_dim=logmel_dim(), num_expressions=2, d_model=16, num_layers=1, num_heads=2)).eval()
    return root, subject, a2et


def test_stage2_learns_the_emotional_residual_and_wins_the_ablation(setup):
    root, subject, a2et = setup
    cfg = Stage2Config(iterations=80, lr=3e-3, final_lr=1e-3, seed=0)
    report = train_stage2(root / "data", subject, a2et, root / "egd", cfg, backend="numba", progress=False)
    happy = report["per_emotion"]["happy"]
    assert happy["stage2_psnr"] > happy["stage1_psnr"] + 2.0, happy
    neutral = report["per_emotion"]["neutral"]
    assert neutral["stage2_psnr"] > neutral["stage1_psnr"] - 1.0, neutral  # leaves the neutral face alone
    egd, info = load_egd(root / "egd")
    assert info["iterations"] == 80 and (root / "egd" / "metrics.json").is_file()


def test_stage2_refuses_an_avatar_of_another_head(setup, tmp_path):
    from emo_backend.errors import EmoSplatError

    root, subject, a2et = setup
    other = subject.head.__class__(**{**subject.head.__dict__, "expr_names": ("a", "b")})
    with pytest.raises(EmoSplatError, match="expression bases"):
        train_stage2(root / "data", subject.with_tensors(head=other), a2et, tmp_path, Stage2Config(iterations=1),
                     progress=False)
