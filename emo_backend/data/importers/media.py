"""Decoding video frames and audio with PyAV, for the importers."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from emo_backend.errors import InvalidFileError


def _open(path: Path):
    import av

    try:
        return av.open(str(path))
    except FileNotFoundError:
        raise InvalidFileError(f"{path}: not found") from None
    except av.error.FFmpegError as err:
        raise InvalidFileError(f"{path}: cannot be decoded ({err}); is it a complete audio/video file?") from None


def video_info(path: Path) -> tuple[float, int, int]:
    """(fps, width, height) of a video file's first video stream."""
    with _open(path) as container:
        if not container.streams.video:
            raise InvalidFileError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate:
            raise InvalidFileError(f"{path}: frame rate unknown")
        return float(Fraction(rate)), int(stream.codec_context.width), int(stream.codec_context.height)


def decode_video(path: Path, size: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
    """RGB uint8 frames [H, W, 3] of the first video stream, optionally resized to (width, height)."""
    import av

    with _open(path) as container:
        if not container.streams.video:
            raise InvalidFileError(f"{path}: has no video stream")
        try:
            for frame in container.decode(video=0):
                if size is not None:
                    frame = frame.reformat(width=size[0], height=size[1])
                yield frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as err:
            raise InvalidFileError(f"{path}: video decoding failed ({err})") from None


def decode_audio(path: Path) -> tuple[np.ndarray, int]:
    """(samples float32 [N] mono in [-1, 1], rate) of the first audio stream (wav, m4a/aac, mp4, ...)."""
    import av

    with _open(path) as container:
        if not container.streams.audio:
            raise InvalidFileError(f"{path}: has no audio stream")
        rate = container.streams.audio[0].codec_context.sample_rate
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks = []
        try:
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as err:
            raise InvalidFileError(f"{path}: audio decoding failed ({err})") from None
    if not chunks:
        raise InvalidFileError(f"{path}: audio stream holds no samples")
    return np.concatenate(chunks).astype(np.float32), int(rate)
