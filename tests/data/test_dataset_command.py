"""`emosplat dataset import/check` through the command module's own parser."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from emo_backend.commands import dataset as command
from emo_backend.errors import EmoSplatError, InvalidFileError

from test_importer_vhap import write_export


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return command.run(parser.parse_args(argv))


def test_import_then_check(tmp_path, capsys):
    write_export(tmp_path / "export")
    assert run(["import", "--from", "vhap", str(tmp_path / "export"), "--out", str(tmp_path / "ds"),
                "--emotion", "sad", "--intensity", "0.5"]) == 0
    assert "imported 3 clip(s), 9 frames" in capsys.readouterr().out
    assert run(["check", str(tmp_path / "ds")]) == 0
    assert capsys.readouterr().out.strip().endswith("ok")
    with pytest.raises(InvalidFileError, match="already holds a dataset"):
        run(["import", "--from", "vhap", str(tmp_path / "export"), "--out", str(tmp_path / "ds")])

    path = tmp_path / "ds" / "tracking" / "export_train_cam01.npz"
    with np.load(path) as npz:
        arrays = dict(npz)
    arrays["jaw"] = arrays.pop("pose")
    np.savez(path, **arrays)
    with pytest.raises(EmoSplatError, match="1 problem"):
        run(["check", str(tmp_path / "ds")])
    assert "clip 'export_train_cam01'" in capsys.readouterr().out


def test_bad_arguments(tmp_path):
    with pytest.raises(EmoSplatError, match="intensity"):
        run(["import", "--from", "vhap", str(tmp_path), "--out", str(tmp_path / "o"), "--intensity", "2"])
    with pytest.raises(EmoSplatError, match="--emotion 'bored' is not one of neutral"):
        run(["import", "--from", "vhap", str(tmp_path), "--out", str(tmp_path / "o"), "--emotion", "bored"])
    with pytest.raises(SystemExit):
        run(["import", "--from", "mead", str(tmp_path), "--out", str(tmp_path / "o"), "--resize", "big"])
