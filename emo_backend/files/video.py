"""MP4 output through PyAV: H.264 video, optional AAC audio, written atomically.

The file appears under its final name only once it is complete, so an
interrupted render never leaves a truncated video that looks finished.
"""

from __future__ import annotations

import contextlib
import os
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from emo_backend.errors import EmoSplatError
from emo_backend.files.atomic import atomic_path


def fps_fraction(fps: float) -> Fraction:
    """25 -> 25, 23.976 -> 24000/1001, 29.97 -> 30000/1001 (the NTSC rates an editor expects)."""
    for base in (24, 30, 60):
        ntsc = Fraction(base * 1000, 1001)
        if abs(float(ntsc) - fps) < 1e-3:
            return ntsc
    return Fraction(fps).limit_denominator(1001)


@contextlib.contextmanager
def mp4_writer(
    path: str | os.PathLike,
    fps: float,
    width: int,
    height: int,
    audio: np.ndarray | None = None,  # [T] float32 mono in [-1, 1]
    audio_rate: int = 16000,
    crf: int = 18,
) -> Iterator["callable"]:
    """Yield `write(rgb_uint8[H, W, 3])`; on clean exit the MP4 is complete under `path`."""
    import av

    if width % 2 or height % 2:
        raise EmoSplatError(f"H.264 needs an even frame size; got {width}x{height}. Use an even width and height.")
    with atomic_path(path) as tmp:
        container = av.open(str(tmp), mode="w", format="mp4")
        try:
            video = container.add_stream("libx264", rate=fps_fraction(fps))
            video.width, video.height, video.pix_fmt = width, height, "yuv420p"
            video.options = {"crf": str(crf), "preset": "medium"}
            audio_stream = None
            if audio is not None and len(audio):
                audio_stream = container.add_stream("aac", rate=audio_rate, layout="mono")

            def write(rgb: np.ndarray) -> None:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb, dtype=np.uint8), format="rgb24")
                for packet in video.encode(frame):
                    container.mux(packet)

            yield write
            for packet in video.encode():
                container.mux(packet)
            if audio_stream is not None:
                _encode_audio(container, audio_stream, np.asarray(audio, dtype=np.float32), audio_rate)
        finally:
            container.close()


def _encode_audio(container, stream, samples: np.ndarray, rate: int) -> None:
    import av

    chunk = 1024 * 8
    for start in range(0, len(samples), chunk):
        block = np.clip(samples[start : start + chunk], -1, 1)[None, :]
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format="flt", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def probe_video(path: str | os.PathLike) -> dict:
    """Frame count, size, fps and whether there is audio — for tests and reports."""
    import av

    with av.open(str(Path(path))) as container:
        v = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video=0))
        return {
            "frames": frames,
            "width": v.codec_context.width,
            "height": v.codec_context.height,
            "fps": float(v.average_rate) if v.average_rate else None,
            "has_audio": bool(container.streams.audio),
        }
