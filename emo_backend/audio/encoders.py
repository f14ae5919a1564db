"""Pretrained speech encoders (wav2vec 2.0, HuBERT, WavLM, ...) from a local folder.

The folder is what `save_pretrained` or `huggingface-cli download --local-dir`
writes: `config.json`, the weights (`model.safetensors`, or a sharded index)
and `preprocessor_config.json`. Nothing is ever fetched from the hub.

Frame timing: these models run a strided convolution stack over the waveform;
with total stride S and receptive field R samples, output frame m covers input
samples [m*S, m*S + R), so it is centred at (m*S + (R-1)/2) / 16000 s (about
m * 20 ms + 12.5 ms for wav2vec2-base). `encode` interpolates the hidden
states linearly to the video frame grid at exactly those centres, so row n
describes audio time n / fps like every other feature in `features.py`.

Long clips are encoded in chunks of `chunk_s` seconds, each with `margin_s`
seconds of extra audio on both sides that the transformer sees as context and
whose outputs are dropped, so memory stays bounded and chunk seams do not show.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from emo_backend.audio.features import SAMPLE_RATE, frame_times, sample_at_times
from emo_backend.audio.features import num_frames as count_frames
from emo_backend.errors import EmoSplatError, InvalidFileError

_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
_GET_IT = (
    "download the model on a machine with internet (e.g. `hf download facebook/wav2vec2-base-960h "
    "--local-dir wav2vec2-base`), copy the folder here and point to it"
)


@dataclass
class SpeechEncoder:
    """A loaded speech model and its feature extractor; `encode` gives one row per video frame."""

    model: torch.nn.Module
    feature_extractor: object
    path: Path
    stride: int  # input samples per output frame
    receptive_field: int  # input samples seen by one output frame
    device: torch.device

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def num_layers(self) -> int:
        return int(self.model.config.num_hidden_layers)

    def frame_centre_s(self, m: int = 0) -> float:
        """Audio time (s) that output frame m is centred on."""
        return (m * self.stride + (self.receptive_field - 1) / 2) / SAMPLE_RATE

    @torch.inference_mode()
    def hidden_states(
        self,
        samples16k: Tensor | np.ndarray,  # [T] mono at 16 kHz
        layer: int | None = None,
        chunk_s: float = 20.0,
        margin_s: float = 1.0,
    ) -> Tensor:  # [M, hidden] frame m centred at frame_centre_s(m)
        """The model's hidden states at its own frame rate (layer None = last layer)."""
        x = np.asarray(samples16k.detach().cpu() if isinstance(samples16k, Tensor) else samples16k, dtype=np.float32)
        x = x.reshape(-1)
        if x.shape[0] < self.receptive_field:  # shorter than one output frame: pad with silence
            x = np.pad(x, (0, self.receptive_field - x.shape[0]))
        if layer is not None and not -self.num_layers - 1 <= layer <= self.num_layers:
            raise EmoSplatError(f"layer {layer} does not exist: {self.path} has {self.num_layers} layers (0..{self.num_layers})")
        # The extractor normalises over the whole clip (one float32 copy of the audio), chunks share that.
        values = self.feature_extractor(x, sampling_rate=SAMPLE_RATE, return_tensors="np")["input_values"]
        values = torch.from_numpy(np.asarray(values, dtype=np.float32).reshape(-1))
        total = (values.shape[0] - self.receptive_field) // self.stride + 1
        chunk = max(1, int(chunk_s * SAMPLE_RATE) // self.stride)  # output frames per chunk
        margin = max(0, int(margin_s * SAMPLE_RATE) // self.stride)
        out = torch.empty(total, self.hidden_size)
        for f0 in range(0, total, chunk):
            f1 = min(f0 + chunk, total)
            g0, g1 = max(0, f0 - margin), min(total, f1 + margin)  # frames computed incl. context
            seg = values[g0 * self.stride : (g1 - 1) * self.stride + self.receptive_field]
            result = self.model(seg.unsqueeze(0).to(self.device), output_hidden_states=layer is not None)
            states = result.last_hidden_state if layer is None else result.hidden_states[layer]
            states = states[0].float().cpu()
            if states.shape[0] != g1 - g0:  # a model whose conv stack pads differently: refuse rather than misalign
                raise EmoSplatError(
                    f"speech encoder {self.path} returned {states.shape[0]} frames for {g1 - g0} expected; "
                    "its convolution stack is not the wav2vec2-style one EmoSplat supports"
                )
            out[f0:f1] = states[f0 - g0 : f1 - g0]
        return out

    def encode(
        self,
        samples16k: Tensor | np.ndarray,  # [T] mono at 16 kHz
        fps: float | Fraction,
        num_frames: int | None = None,
        layer: int | None = None,
        chunk_s: float = 20.0,
    ) -> Tensor:  # [F, hidden]
        """Hidden states resampled to the video frame grid: row n describes audio time n / fps."""
        length = (samples16k.shape[-1] if hasattr(samples16k, "shape") else len(samples16k))
        if num_frames is None:
            num_frames = count_frames(length / SAMPLE_RATE, fps)
        if num_frames == 0:
            return torch.zeros(0, self.hidden_size)
        states = self.hidden_states(samples16k, layer=layer, chunk_s=chunk_s)
        return sample_at_times(states, self.frame_centre_s(0), self.stride / SAMPLE_RATE, frame_times(num_frames, fps))


def load_speech_encoder(path: str | os.PathLike, device: str | torch.device = "cpu") -> SpeechEncoder:
    """Load a transformers speech encoder and its feature extractor from a local folder (never the hub)."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise InvalidFileError(f"speech encoder folder {path} does not exist; {_GET_IT}")
    if not (path / "config.json").is_file():
        raise InvalidFileError(f"speech encoder folder {path} has no config.json; {_GET_IT}")
    if not any((path / name).is_file() for name in _WEIGHT_FILES):
        raise InvalidFileError(
            f"speech encoder folder {path} has no weights ({' or '.join(_WEIGHT_FILES[::2])}); {_GET_IT}"
        )
    if not (path / "preprocessor_config.json").is_file():
        raise InvalidFileError(
            f"speech encoder folder {path} has no preprocessor_config.json (the feature extractor settings); {_GET_IT}"
        )
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModel

    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError) as err:
        raise InvalidFileError(f"speech encoder folder {path}: config.json could not be read ({err}); {_GET_IT}") from None
    kernels, strides = getattr(config, "conv_kernel", None), getattr(config, "conv_stride", None)
    if not kernels or not strides or len(kernels) != len(strides):
        raise InvalidFileError(
            f"{path} holds a {getattr(config, 'model_type', 'unknown')!r} model, not a waveform speech encoder; "
            "use a wav2vec2, HuBERT or WavLM model folder"
        )
    from safetensors import SafetensorError

    try:
        feature_extractor = AutoFeatureExtractor.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as err:
        raise InvalidFileError(f"speech encoder folder {path} could not be loaded ({err}); {_GET_IT}") from None
    rate = getattr(feature_extractor, "sampling_rate", SAMPLE_RATE)
    if rate != SAMPLE_RATE:
        raise InvalidFileError(f"speech encoder {path} expects {rate} Hz audio; EmoSplat feeds 16000 Hz models only")
    device = torch.device(device)
    model = model.to(device).eval()
    stride = math.prod(int(s) for s in strides)
    receptive_field, jump = 1, 1
    for k, s in zip(kernels, strides):
        receptive_field += (int(k) - 1) * jump
        jump *= int(s)
    return SpeechEncoder(model, feature_extractor, path, stride, receptive_field, device)
