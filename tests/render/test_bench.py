"""`emosplat bench`: the render table on a tiny configuration, and the parts not written yet."""

from __future__ import annotations

import argparse

import pytest

from emo_backend.commands import bench
from emo_backend.errors import EmoSplatError
from emo_backend.render.bench_scene import HEAD_SEMI_AXES, head_scene
from emo_backend.render.camera import project_points


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_bench_render_prints_a_table(capsys):
    assert bench.run(_args("render", "--backends", "cpu", "torch", "--repeats", "1", "--counts", "300", "900",
                           "--sizes", "32", "--no-avatar")) == 0
    out = capsys.readouterr().out
    assert "numba threads:" in out
    rows = [line.split() for line in out.splitlines() if line.strip().split(" ")[0].isdigit()]
    assert [r[:2] for r in rows] == [["300", "32x32"], ["900", "32x32"]]
    assert all(float(ms) > 0 for r in rows for ms in r[2:4])


def test_missing_avatar_is_a_clear_error(tmp_path):
    with pytest.raises(EmoSplatError, match="does not exist|avatar"):
        bench.run(_args("render", "--backends", "cpu", "--repeats", "1", "--counts", "50", "--sizes", "16",
                        "--avatar", str(tmp_path / "nope")))


def test_head_scene_fills_85_percent_of_the_frame():
    scene = head_scene(4000, 128, 96)
    pixels, z = project_points(scene.means, scene.viewmat, scene.K)
    assert (z > 0).all()
    # the silhouette of the ellipsoid's middle (z = 0) section spans 85% of the height
    middle = scene.means[:, 2].abs() < 0.01
    height = pixels[middle, 1].max() - pixels[middle, 1].min()
    assert abs(height.item() / 96 - 0.85) < 0.03
    assert scene.scales.min() >= 0.001 and scene.scales.max() <= 0.003
    assert scene.opacities.min() >= 0.3 and scene.opacities.max() <= 1.0
    assert abs(scene.means[:, 1].abs().max().item() - HEAD_SEMI_AXES[1]) < 0.01
