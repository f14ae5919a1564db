"""The open head is deterministic, cached, and rebuilt when its cache is damaged."""

from __future__ import annotations

import json

import torch

from emo_backend.head.open_head import build_open_head
from emo_backend.head.open_head.build import OPEN_HEAD_VERSION, cache_stem

FIELDS = ("v_template", "faces", "shapedirs", "exprdirs", "j_regressor", "parents", "lbs_weights",
          "landmark_faces", "landmark_bary", "vertex_colors")


def _same(a, b) -> bool:
    same_fields = all(torch.equal(getattr(a, k), getattr(b, k)) for k in FIELDS)
    same_regions = a.regions.keys() == b.regions.keys() and all(
        torch.equal(a.regions[k], b.regions[k]) for k in a.regions
    )
    return a.model_id == b.model_id and same_fields and same_regions


def test_builds_are_identical_cached_and_repaired(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "open_head_v0.9_0123456789ab_s0.safetensors").write_bytes(b"an old build")
    first = build_open_head(cache_dir=tmp_path / "a")
    stem = cache_stem(0)
    # Only the current build is kept: stale ones from older generators are removed.
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [f"{stem}.json", f"{stem}.safetensors"]
    meta = json.loads((tmp_path / "a" / f"{stem}.json").read_text())
    assert meta["version"] == OPEN_HEAD_VERSION and meta["model_id"] == "open-head-v1"
    fresh = build_open_head(cache_dir=tmp_path / "b")   # generated again from scratch
    assert _same(first, fresh)
    assert _same(first, build_open_head(cache_dir=tmp_path / "a"))  # loaded from the cache

    # Other seeds: same geometry, other colours, made from the cached seed-0 build.
    other = build_open_head(seed=3, cache_dir=tmp_path / "a")
    assert other.model_id == "open-head-v1+s3"
    assert torch.equal(first.v_template, other.v_template) and torch.equal(first.exprdirs, other.exprdirs)
    assert not torch.equal(first.vertex_colors, other.vertex_colors)
    # A damaged cache file is rebuilt, not trusted; so is one from another version of the generator.
    (tmp_path / "a" / f"{cache_stem(3)}.safetensors").write_bytes(b"not a safetensors file")
    assert _same(other, build_open_head(seed=3, cache_dir=tmp_path / "a"))
    meta_path = tmp_path / "a" / f"{cache_stem(3)}.json"
    meta_path.write_text(json.dumps(dict(json.loads(meta_path.read_text()), version="0.0")))
    assert _same(other, build_open_head(seed=3, cache_dir=tmp_path / "a"))
