"""Speech encoders from a local folder: tiny random wav2vec2 / HuBERT / WavLM saved and loaded back."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from emo_backend.audio.encoders import load_speech_encoder  # noqa: E402
from emo_backend.errors import EmoSplatError, InvalidFileError  # noqa: E402

TINY = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
    conv_dim=(16, 16, 16), conv_stride=(5, 4, 4), conv_kernel=(10, 4, 4),
    num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, vocab_size=12,
)
KINDS = {
    "wav2vec2": ("Wav2Vec2Config", "Wav2Vec2Model"),
    "hubert": ("HubertConfig", "HubertModel"),
    "wavlm": ("WavLMConfig", "WavLMModel"),
}


def _save_tiny(folder, kind: str):
    config_name, model_name = KINDS[kind]
    torch.manual_seed(0)
    model = getattr(transformers, model_name)(getattr(transformers, config_name)(**TINY))
    model.save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=True
    ).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module", params=sorted(KINDS))
def tiny_folder(request, tmp_path_factory):
    return _save_tiny(tmp_path_factory.mktemp(request.param), request.param)


@pytest.fixture(scope="module")
def encoder(tiny_folder):
    """Loaded once per model kind, through the same entry point a user calls."""
    return load_speech_encoder(tiny_folder)


@pytest.fixture(scope="module")
def speech():
    rng = np.random.default_rng(0)
    t = np.arange(int(16000 * 1.5)) / 16000
    return (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + rng.normal(0, 0.01, t.size)).astype(
        np.float32
    )


def test_loads_from_folder_with_geometry(encoder, tiny_folder):
    assert encoder.path == tiny_folder
    assert encoder.stride == 80  # 5 * 4 * 4
    assert encoder.receptive_field == 10 + 3 * 5 + 3 * 20  # 85 samples
    assert encoder.hidden_size == 32 and encoder.num_layers == 2
    assert not encoder.model.training


@pytest.mark.parametrize("fps", [Fraction(24000, 1001), 25, 30, 60])
def test_one_row_per_video_frame(encoder, speech, fps):
    rows = encoder.encode(speech, fps)
    assert rows.shape == (math.ceil(1.5 * float(fps) - 1e-6), 32)
    assert torch.isfinite(rows).all()
    assert encoder.encode(speech, fps, num_frames=7).shape == (7, 32)


def test_rows_are_hidden_states_at_frame_times(tiny_folder, speech):
    """At 200 fps (one video frame per model frame, offset by the window centre) rows interpolate states."""
    encoder = load_speech_encoder(tiny_folder)
    states = encoder.hidden_states(speech)
    assert states.shape[0] == (speech.shape[0] - encoder.receptive_field) // encoder.stride + 1
    rows = encoder.encode(speech, 50, num_frames=70)
    centre0 = encoder.frame_centre_s(0)
    step = encoder.stride / 16000
    for n in (10, 37, 69):
        pos = (n / 50 - centre0) / step
        lo = math.floor(pos)
        expected = states[lo] + (pos - lo) * (states[lo + 1] - states[lo])
        assert torch.allclose(rows[n], expected, atol=1e-5)


def test_chunked_equals_whole_when_margin_covers_clip(tiny_folder, speech):
    """Chunk bookkeeping is exact: with context covering the whole clip, chunks give the unchunked states."""
    encoder = load_speech_encoder(tiny_folder)
    whole = encoder.hidden_states(speech, chunk_s=100.0)
    chunked = encoder.hidden_states(speech, chunk_s=0.41, margin_s=5.0)
    assert torch.allclose(whole, chunked, atol=1e-5)
    short_context = encoder.hidden_states(speech, chunk_s=1.0, margin_s=0.5)
    assert short_context.shape == whole.shape and torch.isfinite(short_context).all()


def test_layer_choice(encoder, speech):
    first = encoder.encode(speech, 25, layer=0)
    last = encoder.encode(speech, 25)
    assert first.shape == last.shape and not torch.allclose(first, last)
    with pytest.raises(EmoSplatError, match="layer 9"):
        encoder.encode(speech, 25, layer=9)


def test_very_short_audio(encoder):
    rows = encoder.encode(np.zeros(40, np.float32), 25)
    assert rows.shape == (1, 32) and torch.isfinite(rows).all()


def test_missing_folder_and_files(tmp_path):
    with pytest.raises(InvalidFileError, match="does not exist.*machine with internet"):
        load_speech_encoder(tmp_path / "nope")
    with pytest.raises(InvalidFileError, match="no config.json"):
        load_speech_encoder(tmp_path)
    folder = _save_tiny(tmp_path / "w2v", "wav2vec2")
    (folder / "model.safetensors").rename(tmp_path / "elsewhere.safetensors")
    with pytest.raises(InvalidFileError, match="no weights"):
        load_speech_encoder(folder)
    (tmp_path / "elsewhere.safetensors").rename(folder / "model.safetensors")
    (folder / "preprocessor_config.json").unlink()
    with pytest.raises(InvalidFileError, match="preprocessor_config.json"):
        load_speech_encoder(folder)


def test_corrupt_weights(tmp_path):
    folder = _save_tiny(tmp_path / "w2v", "wav2vec2")
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(InvalidFileError, match="could not be loaded"):
        load_speech_encoder(folder)


def test_text_model_folder_is_refused(tmp_path):
    folder = tmp_path / "bert"
    transformers.BertModel(transformers.BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                                   intermediate_size=32, vocab_size=50)).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps({}))
    with pytest.raises(InvalidFileError, match="not a waveform speech encoder"):
        load_speech_encoder(folder)
