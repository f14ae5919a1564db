"""The open head is deterministic, cached, and rebuilt when its cache is damaged."""

from __future__ import annotations

import json

import torch

from emo_backend.head.open_head import build_open_head
from emo_backend.head.open_head.build import OPEN_HEAD_VERSION


def _same(a, b) -> bool:
    fields = ("v_template", "faces", "shapedirs", "exprdirs", "j_regressor", "parents", "lbs_weights",
              "landmark_faces", "landmark_bary", "vertex_colors")
    return all(torch.equal(getattr(a, k), getattr(b, k)) for k in fields) and a.regions.keys() == b.regions.keys() \
        and all(torch.equal(a.regions[k], b.regions[k]) for k in a.regions)


def test_builds_are_identical_and_the_cache_is_used_and_repaired(tmp_path):
    first = build_open_head(cache_dir=tmp_path / "a")
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == [f"open_head_v{OPEN_HEAD_VERSION}_s0.json", f"open_head_v{OPEN_HEAD_VERSION}_s0.safetensors"]
    meta = json.loads((tmp_path / "a" / files[0]).read_text())
    assert meta["version"] == OPEN_HEAD_VERSION and meta["model_id"] == "open-head-v1"
    fresh = build_open_head(cache_dir=tmp_path / "b")   # generated again from scratch
    assert _same(first, fresh)
    cached = build_open_head(cache_dir=tmp_path / "a")  # loaded
    assert _same(first, cached)
    # A damaged cache is rebuilt, not trusted.
    (tmp_path / "a" / files[1]).write_bytes(b"not a safetensors file")
    repaired = build_open_head(cache_dir=tmp_path / "a")
    assert _same(first, repaired)


def test_seed_changes_only_the_appearance(tmp_path):
    base = build_open_head(cache_dir=tmp_path)
    other = build_open_head(seed=3, cache_dir=tmp_path)
    assert other.model_id == "open-head-v1+s3"
    assert torch.equal(base.v_template, other.v_template) and torch.equal(base.exprdirs, other.exprdirs)
    assert not torch.equal(base.vertex_colors, other.vertex_colors)
