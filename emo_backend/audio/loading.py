"""Load any speech clip as mono float32 at one sample rate.

`load_audio` reads whatever libsndfile reads (WAV, FLAC, OGG/Vorbis/Opus,
MP3, AIFF, ...) and, when libsndfile refuses a file, falls back to FFmpeg
through PyAV (MP4/M4A/AAC: MEAD's audio is m4a). Channels are averaged to
mono and the rate is converted with soxr.

Memory stays bounded for long clips: the file is read in blocks, each block is
downmixed and pushed through one `soxr.ResampleStream`, and the output goes
into one preallocated array, so peak memory is about the output itself plus a
block (a 10-minute clip at 16 kHz is 38 MB of float32).

Documented edge cases:
* a file with zero samples is an error (there is nothing to lip-sync);
* an all-zero (silent) file loads normally; its features are those of silence;
* a file that is truncated, corrupt or not audio raises `InvalidFileError`
  naming the file and saying what to do, never an error deep inside a decoder.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from emo_backend.errors import InvalidFileError

DEFAULT_RATE = 16000
_BLOCK_FRAMES = 1 << 16  # ~4 s at 16 kHz per block: small next to any output
_CONVERT_HINT = (
    "convert it to WAV, e.g. `ffmpeg -i INPUT -ac 1 -ar 16000 output.wav`, and load that instead"
)


def load_audio(path: str | os.PathLike, target_rate: int = DEFAULT_RATE) -> tuple[np.ndarray, int]:
    """Read `path` as mono float32 samples at `target_rate` Hz.

    Returns `(samples [T] float32, target_rate)`. Raises `InvalidFileError`
    for a missing, empty, truncated, corrupt or unsupported file.
    """
    path = Path(path)
    if not isinstance(target_rate, (int, np.integer)) or target_rate <= 0:
        raise ValueError(f"target_rate must be a positive integer, got {target_rate!r}")
    if not path.exists():
        raise InvalidFileError(f"audio file {path} does not exist; check the path")
    if path.is_dir():
        raise InvalidFileError(f"audio path {path} is a folder; give the path of an audio file")
    if path.stat().st_size == 0:
        raise InvalidFileError(f"audio file {path} is empty (0 bytes); export the clip again")

    import soundfile as sf

    try:
        handle = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError):
        samples = _load_with_pyav(path, int(target_rate))
    else:
        with handle:
            if handle.format in ("WAV", "WAVEX"):
                _check_wav_complete(path)
            samples = _load_with_soundfile(handle, path, int(target_rate))
    if samples.size == 0:
        raise InvalidFileError(f"audio file {path} holds no samples; export the clip again")
    if not np.isfinite(samples).all():
        raise InvalidFileError(f"audio file {path} contains NaN or infinite samples; {_CONVERT_HINT}")
    return samples, int(target_rate)


def _load_with_soundfile(handle, path: Path, target_rate: int) -> np.ndarray:
    """Stream `handle` block by block through soxr into one preallocated mono array."""
    source_rate = int(handle.samplerate)
    total = int(handle.frames)
    if total <= 0:
        raise InvalidFileError(
            f"audio file {path} holds no samples (0 frames): it is empty, truncated or corrupt; "
            "export the clip again or convert it to WAV"
        )
    expected = math.ceil(total * target_rate / source_rate)
    out = _Output(expected)
    stream = _resampler(source_rate, target_rate)
    read = 0
    try:
        for block in handle.blocks(blocksize=_BLOCK_FRAMES, dtype="float32", always_2d=True):
            read += block.shape[0]
            mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
            out.append(stream(mono, False) if stream else mono)
    except (RuntimeError, ValueError) as err:  # libsndfile reports decode failures as these
        raise InvalidFileError(
            f"audio file {path} could not be decoded after {read} of {total} samples ({err}); "
            f"the file is probably truncated or corrupt: {_CONVERT_HINT}"
        ) from None
    if read == 0:
        raise InvalidFileError(f"audio file {path} holds no readable samples; {_CONVERT_HINT}")
    if stream:
        out.append(stream(np.zeros(0, np.float32), True))
    return out.result()


def _load_with_pyav(path: Path, target_rate: int) -> np.ndarray:
    """Decode with FFmpeg (PyAV): MP4/M4A/AAC and anything else libsndfile cannot read."""
    try:
        import av
    except ImportError:  # pragma: no cover - av is a hard dependency
        raise InvalidFileError(f"audio file {path} is in a format this install cannot read; {_CONVERT_HINT}") from None

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as err:
        raise InvalidFileError(f"audio file {path} is not a readable audio file ({err}); {_CONVERT_HINT}") from None
    with container:
        if not container.streams.audio:
            raise InvalidFileError(f"file {path} has no audio stream; {_CONVERT_HINT}")
        audio = container.streams.audio[0]
        source_rate = int(audio.rate or audio.codec_context.sample_rate or 0)
        if source_rate <= 0:
            raise InvalidFileError(f"audio file {path} does not state its sample rate; {_CONVERT_HINT}")
        # Estimated length only sizes the first buffer; `_Output` grows if it is short.
        estimate = 0
        if audio.duration is not None and audio.time_base is not None:
            estimate = math.ceil(float(audio.duration * audio.time_base) * target_rate)
        out = _Output(max(estimate, target_rate))
        # FFmpeg's resampler only converts to planar float [C, n]; the downmix is the channel mean (its own
        # downmix matrix scales by -3 dB per channel) and soxr does the rate change, as for other files.
        to_planar = av.AudioResampler(format="fltp", rate=source_rate)
        stream = _resampler(source_rate, target_rate)
        # Samples before time 0 are encoder priming that an MP4 edit list hides (FFmpeg gives them pts < 0).
        skip = 0

        def push(planar_frames) -> None:
            nonlocal skip
            for planar in planar_frames:
                mono = planar.to_ndarray().astype(np.float32, copy=False).mean(axis=0, dtype=np.float32)
                dropped = min(skip, mono.shape[0])
                skip -= dropped
                mono = mono[dropped:]
                out.append(stream(mono, False) if stream else mono)

        try:
            for frame in container.decode(audio):
                if frame.time is not None and frame.time < 0:
                    skip += round(-frame.time * source_rate)
                push(to_planar.resample(frame))
            push(to_planar.resample(None))
        except (av.error.FFmpegError, ValueError) as err:
            raise InvalidFileError(
                f"audio file {path} could not be decoded ({err}); it is probably truncated or corrupt: {_CONVERT_HINT}"
            ) from None
        if stream:
            out.append(stream(np.zeros(0, np.float32), True))
    return out.result()


def _check_wav_complete(path: Path) -> None:
    """Fail on a WAV whose data chunk is shorter than its header says.

    libsndfile quietly reads what is there, so a half-copied file would give a
    shorter clip and a shot that ends early without any warning.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return  # RF64/other variants: trust libsndfile
        offset = 12
        while offset + 8 <= size:
            f.seek(offset)
            chunk = f.read(8)
            chunk_id, chunk_size = chunk[:4], int.from_bytes(chunk[4:8], "little")
            if chunk_id == b"data":
                # 0 and 0xFFFFFFFF are what streaming writers leave when they never patch the size.
                if chunk_size not in (0, 0xFFFFFFFF) and offset + 8 + chunk_size > size:
                    raise InvalidFileError(
                        f"audio file {path} is truncated: its header announces {chunk_size} bytes of audio "
                        f"but only {size - offset - 8} are present; copy or export the file again"
                    )
                return
            offset += 8 + chunk_size + (chunk_size & 1)


def _resampler(source_rate: int, target_rate: int):
    """A `(chunk, last) -> chunk` soxr stream, or None when the rates already match."""
    if source_rate == target_rate:
        return None
    import soxr

    stream = soxr.ResampleStream(source_rate, target_rate, 1, dtype="float32", quality="HQ")
    return lambda chunk, last: stream.resample_chunk(np.ascontiguousarray(chunk, dtype=np.float32), last=last)


class _Output:
    """A float32 buffer filled chunk by chunk; grows by doubling only if the size estimate was short."""

    def __init__(self, capacity: int):
        self._buf = np.empty(max(int(capacity), 1), np.float32)
        self._n = 0

    def append(self, chunk: np.ndarray) -> None:
        need = self._n + chunk.shape[0]
        if need > self._buf.shape[0]:
            grown = np.empty(max(need, 2 * self._buf.shape[0]), np.float32)
            grown[: self._n] = self._buf[: self._n]
            self._buf = grown
        self._buf[self._n : need] = chunk
        self._n = need

    def result(self) -> np.ndarray:
        if self._n == self._buf.shape[0]:
            return self._buf
        return self._buf[: self._n].copy() if self._n < self._buf.shape[0] // 2 else self._buf[: self._n]


def duration_s(samples: np.ndarray, rate: int) -> float:
    """Length of a clip in seconds."""
    return samples.shape[0] / float(rate)
