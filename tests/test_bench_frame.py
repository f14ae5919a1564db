"""`emosplat bench frame`: runs the shot's per-frame path and prints every stage, on a tiny avatar."""

import importlib.util
from pathlib import Path

import pytest

from emo_backend.bench_frame import STAGES, bench_frame


@pytest.fixture(scope="module")
def avatar_path(tmp_path_factory) -> str:
    spec = importlib.util.spec_from_file_location("avatar_test_head",
                                                  Path(__file__).parent / "avatar" / "avatar_test_head.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from emo_backend.avatar.bundle import save_avatar
    from emo_backend.avatar.init import init_avatar_from_head
    from emo_backend.head.expressions import ACTION_UNITS

    head = module.synthetic_head(num_expressions=len(ACTION_UNITS), seed=0, subdivisions=2)
    avatar = init_avatar_from_head(head, 800, seed=0)
    return str(save_avatar(avatar, tmp_path_factory.mktemp("avatar") / "synthetic", overwrite=True))


@pytest.mark.parametrize("reference", [False, True])
def test_bench_frame_times_every_stage(avatar_path, capsys, reference):
    results = bench_frame(avatar_path, sizes=(32,), frames=3, repeats=1, device="cpu", chunk=2, reference=reference)
    out = capsys.readouterr().out
    for stage in STAGES:
        assert stage in out
    assert "freshly initialised" in out or "trained weights" in out  # says what it timed
    assert ("reference" in out) == reference
    row = results[32]
    assert set(row["wall"]) == set(STAGES) | {"total"}
    assert all(row["wall"][s] > 0 for s in ("a2et", "blendshapes", "stage2", "splat"))
    assert row["wall"]["total"] >= sum(row["wall"][s] for s in STAGES) * 0.99
    assert row["fps_best"] >= row["fps_median"] > 0


def test_bench_frame_command_rejects_bad_counts(avatar_path):
    import argparse

    from emo_backend.commands import bench
    from emo_backend.errors import EmoSplatError

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["frame", "--avatar", avatar_path, "--frames", "0"])
    with pytest.raises(EmoSplatError, match="--frames"):
        bench.run(args)
