"""Audio features on the video frame grid, and the built-in log-mel encoder.

Time convention (DESIGN.md): video frame n shows audio time t_n = n / fps.
Every feature sequence here is resampled so that row n describes the audio
*centred* on t_n: an analysis window centred at t_n, not starting there.

Built-in log-mel encoder (`logmel_frames`):
* 16 kHz mono; 25 ms periodic Hann window (400 samples) zero-padded to a
  512-point FFT; 10 ms hop. Mel frame m is centred at m * 10 ms (the signal
  is zero-padded on both sides, so frames before 0 s or past the end describe
  silence).
* 80 triangular mel bands between 0 Hz and 8 kHz on the HTK mel scale
  (mel = 2595 log10(1 + f / 700)), each normalised to unit area (Slaney-style)
  so a band measures power density regardless of its width.
* Natural log of the band power, floored at 1e-5 (so digital silence reads
  log(1e-5) ~ -11.5 in every band, finite).
* Context stacking: video frame n gets 2*context+1 mel vectors sampled (by
  linear interpolation between the two nearest mel frames) at
  t_n + j * 10 ms for j = -context..context. With the default context = 4
  (+-40 ms) every 10 ms mel frame is seen by some video frame for any fps of
  12.5 or more, so fast events (plosives) are not lost between frames at 24
  or 25 fps, while a temporal model still gets one row per frame. The row is
  flattened offset-major: `out.view(F, 2*context+1, 80)[n, j + context]` is
  the mel vector at t_n + j * 10 ms.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from emo_backend.errors import EmoSplatError

SAMPLE_RATE = 16000
N_MELS = 80
WIN_LENGTH = 400  # 25 ms at 16 kHz
HOP_LENGTH = 160  # 10 ms at 16 kHz
N_FFT = 512
LOG_FLOOR = 1e-5
DEFAULT_CONTEXT = 4
_CHUNK_MEL_FRAMES = 6000  # STFT one minute at a time: bounded memory for long clips

# Broadcast rates are 1000/1001 of the round numbers; artists type them rounded.
_NTSC_RATES = {23.976: Fraction(24000, 1001), 23.98: Fraction(24000, 1001), 29.97: Fraction(30000, 1001),
               47.952: Fraction(48000, 1001), 59.94: Fraction(60000, 1001), 119.88: Fraction(120000, 1001)}


def exact_fps(fps: float | Fraction) -> Fraction:
    """fps as an exact fraction; 23.976/23.98, 29.97 and 59.94 mean the NTSC rates 24000/1001, ..."""
    if isinstance(fps, Fraction):
        value = fps
    else:
        if not isinstance(fps, (int, float, np.integer, np.floating)) or not math.isfinite(float(fps)):
            raise EmoSplatError(f"fps must be a positive number, got {fps!r}")
        rounded = round(float(fps), 3)
        value = _NTSC_RATES.get(rounded) or Fraction(float(fps)).limit_denominator(1001)
    if value <= 0:
        raise EmoSplatError(f"fps must be positive, got {fps!r}")
    return value


def num_frames(duration_s: float, fps: float | Fraction) -> int:
    """Video frames needed to show `duration_s` of audio: ceil(duration * fps).

    A tolerance of 1e-6 frame keeps float noise (4.0 s * 25 = 100.00000000001)
    from adding a frame.
    """
    if duration_s < 0:
        raise EmoSplatError(f"duration must be >= 0, got {duration_s}")
    return max(0, math.ceil(float(duration_s) * float(exact_fps(fps)) - 1e-6))


_count_frames = num_frames  # `logmel_frames` has an argument of the same name


def frame_times(count: int, fps: float | Fraction) -> Tensor:
    """Audio time in seconds shown by each video frame: t_n = n / fps.  # [count] float64"""
    rate = exact_fps(fps)
    return torch.arange(count, dtype=torch.float64) * rate.denominator / rate.numerator  # n * den / num, as keys are


def sample_at_times(
    features: Tensor,  # [M, D] feature m describes time first_s + m * step_s
    first_s: float,
    step_s: float,
    times: Tensor,  # [F] seconds
) -> Tensor:  # [F, D]
    """Linear interpolation of a regularly spaced feature sequence at arbitrary times (edges held)."""
    if features.shape[0] == 0:
        raise EmoSplatError("cannot sample an empty feature sequence; the audio is too short")
    pos = ((times.to(torch.float64) - first_s) / step_s).clamp(0, features.shape[0] - 1)
    lo = pos.floor().long().clamp(max=features.shape[0] - 1)
    hi = (lo + 1).clamp(max=features.shape[0] - 1)
    frac = (pos - lo.to(torch.float64)).to(features.dtype).unsqueeze(-1)
    return torch.lerp(features[lo], features[hi], frac)


@lru_cache(maxsize=4)
def mel_filterbank(
    n_fft: int = N_FFT, n_mels: int = N_MELS, rate: int = SAMPLE_RATE, f_min: float = 0.0, f_max: float | None = None
) -> Tensor:  # [n_fft // 2 + 1, n_mels]
    """Triangular HTK-mel filters, each with unit area (Slaney normalisation)."""
    f_max = rate / 2 if f_max is None else f_max
    fft_freqs = torch.linspace(0, rate / 2, n_fft // 2 + 1, dtype=torch.float64)

    def hz_to_mel(f):
        return 2595.0 * torch.log10(1.0 + f / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    edges_mel = torch.linspace(hz_to_mel(torch.tensor(f_min, dtype=torch.float64)).item(),
                               hz_to_mel(torch.tensor(f_max, dtype=torch.float64)).item(), n_mels + 2,
                               dtype=torch.float64)
    edges = mel_to_hz(edges_mel)  # [n_mels + 2]
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    f = fft_freqs.unsqueeze(1)  # [K, 1]
    rising = (f - lower) / (centre - lower)
    falling = (upper - f) / (upper - centre)
    tri = torch.clamp(torch.minimum(rising, falling), min=0.0)
    tri = tri * (2.0 / (upper - lower))  # unit area
    return tri.to(torch.float32)


def log_mel_spectrogram(
    samples: Tensor | np.ndarray,  # [T] mono at SAMPLE_RATE
    first_frame: int = 0,
    count: int | None = None,
) -> Tensor:  # [count, N_MELS]
    """Log-mel frames first_frame .. first_frame+count-1; frame m is centred at m * 10 ms.

    `first_frame` may be negative and frames may run past the end: the signal is
    zero outside the clip. Computed a minute at a time so memory stays bounded.
    """
    x = torch.as_tensor(np.asarray(samples, dtype=np.float32) if isinstance(samples, np.ndarray) else samples)
    x = x.to(torch.float32).reshape(-1)
    if count is None:
        count = x.shape[0] // HOP_LENGTH + 1 - first_frame
    count = max(int(count), 0)
    window = torch.zeros(N_FFT)
    pad = (N_FFT - WIN_LENGTH) // 2
    window[pad : pad + WIN_LENGTH] = torch.hann_window(WIN_LENGTH, periodic=True)
    bank = mel_filterbank()
    out = torch.empty(count, N_MELS)
    for start in range(0, count, _CHUNK_MEL_FRAMES):
        n = min(_CHUNK_MEL_FRAMES, count - start)
        m0 = first_frame + start
        # Frame m covers samples [m*hop - n_fft/2, m*hop + n_fft/2); zero outside the clip.
        s0 = m0 * HOP_LENGTH - N_FFT // 2
        s1 = (m0 + n - 1) * HOP_LENGTH + N_FFT // 2
        seg = torch.zeros(s1 - s0)
        a, b = max(s0, 0), min(s1, x.shape[0])
        if b > a:
            seg[a - s0 : b - s0] = x[a:b]
        spec = torch.stft(seg, N_FFT, HOP_LENGTH, window=window, center=False, return_complex=True)
        power = spec.real.square() + spec.imag.square()  # [K, n]
        out[start : start + n] = torch.log(torch.clamp(power.T @ bank, min=LOG_FLOOR))
    return out


def logmel_dim(context: int = DEFAULT_CONTEXT) -> int:
    """Width D of `logmel_frames` rows."""
    return (2 * context + 1) * N_MELS


def logmel_frames(
    samples: Tensor | np.ndarray,  # [T] mono
    rate: int,
    fps: float | Fraction,
    num_frames: int | None = None,
    context: int = DEFAULT_CONTEXT,
) -> Tensor:  # [F, (2*context+1) * N_MELS]
    """One log-mel row per video frame; row n is centred on audio time n / fps.

    `num_frames` defaults to ceil(duration * fps); more frames than the audio
    covers get the features of silence. Audio at another rate is resampled to
    16 kHz with soxr first.
    """
    if context < 0:
        raise ValueError("context must be >= 0")
    x = np.asarray(samples.detach().cpu() if isinstance(samples, Tensor) else samples, dtype=np.float32).reshape(-1)
    if rate != SAMPLE_RATE:
        import soxr

        x = soxr.resample(x, rate, SAMPLE_RATE, quality="HQ").astype(np.float32, copy=False)
    if num_frames is None:
        num_frames = _count_frames(x.shape[0] / SAMPLE_RATE, fps)
    times = frame_times(num_frames, fps)  # [F]
    if num_frames == 0:
        return torch.zeros(0, logmel_dim(context))
    hop_s = HOP_LENGTH / SAMPLE_RATE
    first = -context - 1
    last = math.ceil(float(times[-1]) / hop_s) + context + 1
    mel = log_mel_spectrogram(torch.from_numpy(x), first_frame=first, count=last - first + 1)  # [M, 80]
    offsets = torch.arange(-context, context + 1, dtype=torch.float64) * hop_s  # [2c+1]
    query = (times.unsqueeze(1) + offsets.unsqueeze(0)).reshape(-1)  # [F * (2c+1)]
    rows = sample_at_times(mel, first * hop_s, hop_s, query)  # [F * (2c+1), 80]
    return rows.reshape(num_frames, logmel_dim(context))
