"""Log-mel features: one row per video frame, centred on n / fps, for any fps."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from emo_backend.audio.features import (
    HOP_LENGTH,
    N_MELS,
    SAMPLE_RATE,
    exact_fps,
    frame_times,
    log_mel_spectrogram,
    logmel_dim,
    logmel_frames,
    mel_filterbank,
    num_frames,
    sample_at_times,
)
from emo_backend.audio.loading import load_audio

FPS = [Fraction(24000, 1001), 24, 25, 30, 60]


@pytest.mark.parametrize("fps", FPS)
def test_frame_count_and_width(fps):
    samples = np.random.default_rng(0).normal(0, 0.1, SAMPLE_RATE * 3 + 123).astype(np.float32)
    features = logmel_frames(samples, SAMPLE_RATE, fps)
    expected = int(np.ceil((SAMPLE_RATE * 3 + 123) / SAMPLE_RATE * float(fps) - 1e-6))
    assert features.shape == (expected, logmel_dim()) == (expected, 9 * N_MELS)
    assert torch.isfinite(features).all()


def test_num_frames_and_ntsc_rates():
    assert num_frames(4.0, 25) == 100  # exact multiple: no extra frame from float noise
    assert num_frames(4.001, 25) == 101
    assert num_frames(0.0, 30) == 0
    assert exact_fps(23.976) == Fraction(24000, 1001) == exact_fps(23.98)
    assert exact_fps(29.97) == Fraction(30000, 1001) and exact_fps(59.94) == Fraction(60000, 1001)
    assert num_frames(10.0, 23.976) == 240  # 239.76 -> 240
    assert float(frame_times(3, 23.976)[2]) == pytest.approx(2 * 1001 / 24000)


def test_stft_matches_torch_centred_stft():
    """Chunked framing equals one centred torch.stft (frame m centred at m * 10 ms)."""
    x = torch.from_numpy(np.random.default_rng(1).normal(0, 0.1, 20000).astype(np.float32))
    ours = log_mel_spectrogram(x)
    window = torch.zeros(512)
    window[56:456] = torch.hann_window(400, periodic=True)
    spec = torch.stft(x, 512, HOP_LENGTH, window=window, center=True, pad_mode="constant", return_complex=True)
    reference = torch.log(torch.clamp(spec.abs().square().T @ mel_filterbank(), min=1e-5))
    assert ours.shape == reference.shape
    assert torch.allclose(ours, reference, atol=1e-4)


def test_filterbank_covers_spectrum_without_empty_bands():
    bank = mel_filterbank()
    assert bank.shape == (257, N_MELS)
    assert ((bank > 0).sum(0) >= 1).all()
    assert (bank.argmax(0).diff() >= 0).all()  # centres rise with the band index


@pytest.mark.parametrize("fps", [24, 25, 30, 60])
def test_row_n_is_centred_on_n_over_fps(fps):
    """A click at time t lights up the frame whose time is nearest t, in the centre context slot."""
    samples = np.zeros(SAMPLE_RATE * 2, np.float32)
    frame = 17
    t = frame / fps
    samples[int(round(t * SAMPLE_RATE))] = 1.0
    rows = logmel_frames(samples, SAMPLE_RATE, fps).view(-1, 9, N_MELS)
    centre_energy = rows[:, 4].mean(-1)
    assert int(centre_energy.argmax()) == frame
    # context slots look +-10 ms around the frame time
    energy = rows[frame].mean(-1)
    assert int(energy.argmax()) == 4


def test_fast_events_between_frames_are_seen_at_24_fps():
    """A 5 ms burst halfway between two 24 fps frames still shows in the stacked context."""
    samples = np.zeros(SAMPLE_RATE, np.float32)
    t = 10.5 / 24
    i = int(t * SAMPLE_RATE)
    samples[i : i + 80] = np.random.default_rng(2).normal(0, 0.5, 80)
    rows = logmel_frames(samples, SAMPLE_RATE, 24)
    silence = logmel_frames(np.zeros_like(samples), SAMPLE_RATE, 24)
    assert (rows[10] - silence[10]).max() > 5.0 and (rows[11] - silence[11]).max() > 5.0


def test_other_input_rate_is_resampled():
    rng = np.random.default_rng(3)
    x16 = rng.normal(0, 0.1, SAMPLE_RATE).astype(np.float32)
    import soxr

    x48 = soxr.resample(x16, SAMPLE_RATE, 48000).astype(np.float32)
    a = logmel_frames(x16, SAMPLE_RATE, 25)
    b = logmel_frames(x48, 48000, 25)
    assert a.shape == b.shape
    assert (a - b).abs().mean() < 0.2


def test_extra_frames_beyond_audio_are_silence():
    samples = np.random.default_rng(4).normal(0, 0.1, SAMPLE_RATE).astype(np.float32)
    rows = logmel_frames(samples, SAMPLE_RATE, 25, num_frames=40)
    assert rows.shape[0] == 40
    assert torch.allclose(rows[-1], torch.full_like(rows[-1], float(np.log(1e-5))))


def test_silence_is_finite_floor():
    rows = logmel_frames(np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE, 30)
    assert rows.shape == (30, logmel_dim()) and torch.isfinite(rows).all()
    assert torch.allclose(rows, torch.full_like(rows, float(np.log(1e-5))))


def test_context_zero_is_plain_interpolation():
    x = np.random.default_rng(5).normal(0, 0.1, SAMPLE_RATE).astype(np.float32)
    plain = logmel_frames(x, SAMPLE_RATE, 25, context=0)
    stacked = logmel_frames(x, SAMPLE_RATE, 25, context=2).view(-1, 5, N_MELS)
    assert plain.shape == (25, N_MELS)
    assert torch.allclose(plain, stacked[:, 2], atol=1e-5)
    mel = log_mel_spectrogram(torch.from_numpy(x))
    assert torch.allclose(plain[5], mel[20], atol=1e-5)  # 25 fps frame 5 = 0.2 s = mel frame 20


def test_sample_at_times_interpolates_and_holds_edges():
    features = torch.tensor([[0.0], [10.0], [20.0]])
    times = torch.tensor([-1.0, 0.05, 0.15, 0.25, 9.0], dtype=torch.float64)
    out = sample_at_times(features, 0.0, 0.1, times)
    assert torch.allclose(out[:, 0], torch.tensor([0.0, 5.0, 15.0, 20.0, 20.0]))


def test_real_speech_louder_than_its_silences(arctic_path):
    samples, rate = load_audio(arctic_path)
    rows = logmel_frames(samples, rate, 25).view(-1, 9, N_MELS)[:, 4]
    assert rows.shape == (100, N_MELS) and torch.isfinite(rows).all()
    energy = rows.mean(-1)
    # The clip starts and ends with a pause around the sentence.
    quiet = torch.cat([energy[:5], energy[-5:]]).max()
    loud = energy.quantile(0.75)
    assert loud > quiet + 2.0
