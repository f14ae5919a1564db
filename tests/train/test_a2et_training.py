"""A2ET learns a known audio -> motion mapping: jaw follows loudness, one AU follows the emotion label."""

import numpy as np
import pytest
import torch

from emo_backend.data.dataset import DatasetWriter, load_dataset
from emo_backend.errors import InvalidFileError
from emo_backend.train.a2et import A2ETTraining, load_a2et, load_clip_arrays, train_a2et

FPS = 25
RATE = 16000
E = 4


def envelope(num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """Syllable-like bursts: 0/1 steps smoothed over a few frames. [F]"""
    steps = np.repeat(rng.integers(0, 2, size=num_frames // 5 + 1), 5)[:num_frames].astype(np.float32)
    kernel = np.hanning(5) / np.hanning(5).sum()
    return np.convolve(steps, kernel, mode="same").astype(np.float32)


def write_clip(writer, clip_id, emotion, intensity, split, seed):
    rng = np.random.default_rng(seed)
    num_frames = 100
    env = envelope(num_frames, rng)
    t = np.arange(num_frames * RATE // FPS) / RATE
    audio = 0.5 * np.interp(t, np.arange(num_frames) / FPS, env) * np.sin(2 * np.pi * 300 * t)
    expression = np.zeros((num_frames, E), np.float32)
    expression[:, 0] = env
    expression[:, 1] = intensity if emotion == "happy" else 0.0
    pose = np.zeros((num_frames, 5, 3), np.float32)
    pose[:, 2, 0] = 0.3 * env
    tracking = {
        "expression": expression,
        "pose": pose,
        "translation": np.zeros((num_frames, 3), np.float32),
        "identity": np.zeros(2, np.float32),
        "K": np.array([[20.0, 0, 4], [0, 20.0, 4], [0, 0, 1]], np.float32),
        "viewmat": np.array([[1, 0, 0, 0], [0, -1, 0, 0], [0, 0, -1, 0.5], [0, 0, 0, 1]], np.float32),
    }
    frames = (np.zeros((8, 8, 3), np.uint8) for _ in range(num_frames))
    writer.add_clip(clip_id, identity="a", emotion=emotion, intensity=intensity, frames=frames,
                    audio=(audio.astype(np.float32), RATE), tracking=tracking, split=split)


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("a2et_data") / "data"
    with DatasetWriter(root, head_model="test", expression_names=[f"e{i}" for i in range(E)], fps=FPS) as w:
        for i in range(6):
            write_clip(w, f"train{i}", "happy" if i % 2 else "neutral", 1.0 if i % 2 else 0.0, "train", i)
        write_clip(w, "test_happy", "happy", 1.0, "test", 100)
        write_clip(w, "test_neutral", "neutral", 0.0, "test", 101)
    return root


def test_a2et_learns_audio_and_emotion(dataset_dir, tmp_path):
    cfg = A2ETTraining(iterations=150, batch_size=8, window=32, lr=3e-3, d_model=32, num_layers=2, seed=0)
    info = train_a2et(dataset_dir, tmp_path / "a2et", cfg, progress=False)
    assert info["train_clips"] == 6
    model, loaded_info = load_a2et(tmp_path / "a2et")
    assert loaded_info["iterations"] == 150
    test = {c.clip_id: c for c in load_clip_arrays(load_dataset(dataset_dir), "test")}
    outs = {}
    for name, clip in test.items():
        intensity = torch.full((clip.features.shape[0],), clip.intensity)
        outs[name] = model.predict(clip.features, clip.weights.expand(clip.features.shape[0], -1), intensity)
        jaw_corr = np.corrcoef(outs[name].jaw[:, 0].numpy(), clip.jaw[:, 0].numpy())[0, 1]
        assert jaw_corr > 0.8, f"{name}: jaw follows loudness poorly (r={jaw_corr:.2f})"
    assert outs["test_happy"].expression[:, 1].mean() > outs["test_neutral"].expression[:, 1].mean() + 0.5

    # The evaluation report: landmark distances from the same head the tracking drives, per-emotion errors.
    import importlib.util
    from pathlib import Path

    from emo_backend.eval.a2et import evaluate_a2et

    spec = importlib.util.spec_from_file_location("avatar_test_head", Path(__file__).parents[1] / "avatar" / "avatar_test_head.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    head = module.synthetic_head(num_expressions=E, seed=0, subdivisions=2)
    report = evaluate_a2et(model, load_dataset(dataset_dir), head, "test")
    assert report["clips"] == 2 and set(report["expression_mae_per_emotion"]) == {"happy", "neutral"}
    assert 0 <= report["landmarks_px"]["lmd_mouth"] < 50


def test_a2et_weights_are_validated(dataset_dir, tmp_path):
    cfg = A2ETTraining(iterations=2, batch_size=2, window=16, d_model=16, num_layers=1)
    train_a2et(dataset_dir, tmp_path / "w", cfg, progress=False)
    from safetensors.torch import load_file, save_file

    path = tmp_path / "w" / "a2et.safetensors"
    tensors = load_file(str(path))
    key = next(iter(tensors))
    tensors[key] = tensors[key] * float("nan")
    save_file(tensors, str(path))
    with pytest.raises(InvalidFileError, match="NaN"):
        load_a2et(tmp_path / "w")
    path.write_bytes(b"\x80\x04not safetensors")
    with pytest.raises(InvalidFileError, match="safetensors"):
        load_a2et(tmp_path / "w")
