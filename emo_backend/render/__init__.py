"""Splatting: one entry point, `rasterize`, with gsplat (CUDA), numba (CPU) and torch backends."""

from emo_backend.render.rasterize import BACKENDS, cuda_works, rasterize, resolve_backend

__all__ = ["BACKENDS", "cuda_works", "rasterize", "resolve_backend"]
