"""load_audio: formats, rates, channels, bounded memory and clear errors for bad files."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from emo_backend.audio.loading import load_audio
from emo_backend.errors import InvalidFileError


def _tone(rate: int, seconds: float, channels: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    left = 0.5 * np.sin(2 * np.pi * freq * t)
    cols = [left] + [0.25 * np.sin(2 * np.pi * freq * t)] * (channels - 1)
    return np.stack(cols, axis=1).astype(np.float32)


@pytest.mark.parametrize(
    "fmt,subtype,ext",
    [("WAV", "PCM_16", "wav"), ("WAV", "FLOAT", "wav"), ("FLAC", "PCM_24", "flac"),
     ("OGG", "VORBIS", "ogg"), ("MP3", "MPEG_LAYER_III", "mp3")],
)
@pytest.mark.parametrize("rate,channels", [(44100, 2), (8000, 1), (48000, 6)])
def test_formats_rates_channels_become_mono_16k(tmp_path, fmt, subtype, ext, rate, channels):
    if ext in ("mp3", "ogg") and channels == 6:
        pytest.skip("lossy surround: MP3 holds two channels at most, Vorbis low-passes the LFE channel")
    path = tmp_path / f"tone.{ext}"
    sf.write(path, _tone(rate, 1.5, channels), rate, format=fmt, subtype=subtype)
    samples, out_rate = load_audio(path)
    assert out_rate == 16000 and samples.dtype == np.float32 and samples.ndim == 1
    assert abs(samples.shape[0] - 24000) <= 16 * 1.5 + 1200 * (ext == "mp3")  # mp3 frames pad the end
    # Downmix is the channel mean: 0.5 and 0.25 amplitude channels in phase.
    expected = (0.5 + 0.25 * (channels - 1)) / channels
    rms = np.sqrt(np.mean(samples[2000:-2000] ** 2))
    tolerance = 0.05 if ext in ("ogg", "mp3") else 0.005
    assert rms == pytest.approx(expected / np.sqrt(2), rel=tolerance)


def test_resampling_keeps_pitch(tmp_path):
    path = tmp_path / "tone.wav"
    sf.write(path, _tone(44100, 1.0, 1, freq=1000.0), 44100)
    samples, _ = load_audio(path)
    spectrum = np.abs(np.fft.rfft(samples))
    assert np.argmax(spectrum) * 16000 / samples.shape[0] == pytest.approx(1000.0, abs=2.0)


def test_other_target_rate(tmp_path):
    path = tmp_path / "tone.wav"
    sf.write(path, _tone(16000, 1.0, 1), 16000)
    samples, rate = load_audio(path, target_rate=22050)
    assert rate == 22050 and abs(samples.shape[0] - 22050) <= 2


def test_real_speech_clip(arctic_path):
    samples, rate = load_audio(arctic_path)
    assert rate == 16000
    assert samples.shape[0] / rate == pytest.approx(4.0, abs=0.01)
    assert np.isfinite(samples).all() and 0.05 < np.abs(samples).max() <= 1.0


def test_m4a_through_pyav(tmp_path):
    av = pytest.importorskip("av")
    path = tmp_path / "clip.m4a"
    rate = 48000
    tone = _tone(rate, 2.0, 1)[:, 0]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=rate, layout="stereo")
        frame = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    samples, out_rate = load_audio(path)
    assert out_rate == 16000
    assert samples.shape[0] / 16000 == pytest.approx(2.0, abs=0.05)  # AAC frames pad by < 1024 + 1024 samples
    assert np.sqrt(np.mean(samples[4000:-4000] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)


def test_silence_loads_as_zeros(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros((8000, 2), np.float32), 8000)
    samples, _ = load_audio(path)
    assert samples.shape[0] == 16000 and np.all(samples == 0)


def test_ten_minute_clip_in_bounded_memory(tmp_path):
    """Peak traced memory stays near the output; reading the whole file first would double it."""
    rate, seconds = 8000, 600
    path = tmp_path / "long.wav"
    tone = (0.3 * np.sin(2 * np.pi * 200 * np.arange(rate * seconds) / rate)).astype(np.float32)
    sf.write(path, np.stack([tone, tone], axis=1), rate, subtype="PCM_16")
    del tone
    tracemalloc.start()
    try:
        samples, _ = load_audio(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert abs(samples.shape[0] - 16000 * seconds) <= 2
    # Whole-file decoding would hold 38 MB stereo float + 19 MB mono + 38 MB output.
    assert peak < samples.nbytes * 1.35, f"peak {peak / 1e6:.1f} MB for a {samples.nbytes / 1e6:.1f} MB output"


def _write_bad(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _wav_bytes(tmp_path) -> bytes:
    good = tmp_path / "good.wav"
    sf.write(good, _tone(16000, 1.0, 1), 16000, subtype="PCM_16")
    return good.read_bytes()


@pytest.mark.parametrize(
    "name,make,expected",
    [
        ("missing.wav", None, "does not exist"),
        ("zero.wav", lambda wav: b"", "empty"),
        ("junk.wav", lambda wav: bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)), "convert it to WAV"),
        ("text.mp3", lambda wav: b"this is not audio\n" * 50, "convert it to WAV"),
        ("header_only.wav", lambda wav: wav[:30], "convert it to WAV"),
        ("truncated.wav", lambda wav: wav[: len(wav) // 2], "truncated"),
    ],
)
def test_bad_files_raise_clear_error(tmp_path, name, make, expected):
    path = tmp_path / name
    if make is not None:
        path.write_bytes(make(_wav_bytes(tmp_path)))
    with pytest.raises(InvalidFileError) as info:
        load_audio(path)
    message = str(info.value)
    assert str(path) in message and expected in message


def test_zero_sample_file(tmp_path):
    path = tmp_path / "nothing.wav"
    sf.write(path, np.zeros((0, 1), np.float32), 16000)
    with pytest.raises(InvalidFileError, match="no samples"):
        load_audio(path)


def test_truncated_flac(tmp_path):
    good = tmp_path / "good.flac"
    sf.write(good, _tone(16000, 2.0, 1), 16000, format="FLAC")
    bad = _write_bad(tmp_path, "cut.flac", good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InvalidFileError, match="cut.flac"):
        load_audio(bad)


def test_image_file_has_no_audio(tmp_path):
    from PIL import Image

    path = tmp_path / "picture.png"
    Image.new("RGB", (8, 8)).save(path)
    with pytest.raises(InvalidFileError, match="picture.png"):
        load_audio(path)


def test_folder_is_rejected(tmp_path):
    with pytest.raises(InvalidFileError, match="folder"):
        load_audio(tmp_path)
