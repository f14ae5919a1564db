"""PNG and depth-EXR files: exact round trips, atomic writes, clear errors on bad files."""

from __future__ import annotations

import numpy as np
import OpenEXR
import pytest
import torch
from PIL import Image

from emo_backend.errors import InvalidFileError
from emo_backend.files.images import read_exr_depth, read_png, write_exr_depth, write_png


@pytest.mark.parametrize("channels", [3, 4])
def test_png_round_trip_is_exact(tmp_path, channels):
    rng = np.random.default_rng(channels)
    image = rng.integers(0, 256, size=(17, 23, channels), dtype=np.uint8)
    path = tmp_path / "sub" / "frame_0001.png"
    write_png(path, image)
    np.testing.assert_array_equal(read_png(path), image)
    assert Image.open(path).mode == ("RGB" if channels == 3 else "RGBA")
    assert [p.name for p in path.parent.iterdir()] == ["frame_0001.png"]  # no temp file left behind


def test_png_accepts_torch_and_rejects_bad_arrays(tmp_path):
    write_png(tmp_path / "t.png", torch.zeros(4, 5, 3, dtype=torch.uint8))
    assert read_png(tmp_path / "t.png").shape == (4, 5, 3)
    with pytest.raises(ValueError, match="uint8"):
        write_png(tmp_path / "f.png", np.zeros((4, 5, 3), np.float32))
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        write_png(tmp_path / "g.png", np.zeros((4, 5), np.uint8))
    assert not (tmp_path / "f.png").exists() and not (tmp_path / "g.png").exists()


def test_failed_png_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "keep.png"
    old = np.full((3, 3, 3), 7, np.uint8)
    write_png(path, old)

    def explode(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", explode)
    with pytest.raises(OSError, match="disk full"):
        write_png(path, np.zeros((3, 3, 3), np.uint8))
    monkeypatch.undo()
    np.testing.assert_array_equal(read_png(path), old)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.png"]


def test_read_png_errors_name_the_file(tmp_path):
    with pytest.raises(InvalidFileError, match="missing.png"):
        read_png(tmp_path / "missing.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(InvalidFileError, match="bad.png"):
        read_png(bad)


def test_depth_exr_round_trip_with_v_channel(tmp_path):
    depth = np.random.default_rng(0).uniform(0.3, 5.0, size=(19, 31)).astype(np.float32)
    depth[0, :4] = np.inf  # empty pixels
    path = tmp_path / "frame_0001.exr"
    write_exr_depth(path, depth)
    np.testing.assert_array_equal(read_exr_depth(path), depth)
    with OpenEXR.File(str(path)) as exr:  # what Blender sees: one FLOAT channel named V
        channels = exr.channels()
        assert list(channels) == ["V"]
        assert channels["V"].pixels.dtype == np.float32
    assert [p.name for p in tmp_path.iterdir()] == ["frame_0001.exr"]


def test_depth_exr_errors(tmp_path):
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        write_exr_depth(tmp_path / "d.exr", np.zeros((2, 3, 1), np.float32))
    with pytest.raises(InvalidFileError, match="nothing.exr"):
        read_exr_depth(tmp_path / "nothing.exr")
    garbage = tmp_path / "garbage.exr"
    garbage.write_bytes(b"\x76\x2f\x31\x01 truncated")
    with pytest.raises(InvalidFileError, match="garbage.exr"):
        read_exr_depth(garbage)
    colour = tmp_path / "colour.exr"
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {"R": np.zeros((2, 2), np.float32)}) as exr:
        exr.write(str(colour))
    with pytest.raises(InvalidFileError, match="no depth channel"):
        read_exr_depth(colour)
