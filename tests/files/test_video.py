import numpy as np
import pytest

from emo_backend.errors import EmoSplatError
from emo_backend.files.video import fps_fraction, mp4_writer, probe_video


def test_mp4_with_audio_roundtrip(tmp_path):
    path = tmp_path / "clip.mp4"
    rate = 16000
    audio = (0.2 * np.sin(2 * np.pi * 220 * np.arange(rate) / rate)).astype(np.float32)
    with mp4_writer(path, 25, 64, 48, audio=audio, audio_rate=rate) as write:
        for i in range(25):
            frame = np.zeros((48, 64, 3), np.uint8)
            frame[:, : (i * 2) % 64] = 255
            write(frame)
    info = probe_video(path)
    assert info == {"frames": 25, "width": 64, "height": 48, "fps": 25.0, "has_audio": True}


def test_interrupted_write_leaves_no_file(tmp_path):
    path = tmp_path / "clip.mp4"
    with pytest.raises(RuntimeError):
        with mp4_writer(path, 25, 32, 32) as write:
            write(np.zeros((32, 32, 3), np.uint8))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_odd_size_is_a_clear_error(tmp_path):
    with pytest.raises(EmoSplatError, match="even"):
        with mp4_writer(tmp_path / "x.mp4", 25, 33, 32):
            pass


def test_ntsc_rates():
    assert fps_fraction(23.976) == fps_fraction(24000 / 1001) and float(fps_fraction(23.976)) == pytest.approx(23.976, abs=1e-3)
    assert fps_fraction(25) == 25
