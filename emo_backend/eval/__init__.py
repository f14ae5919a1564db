"""Evaluation: image and landmark metrics, JSON reports and side-by-side videos."""
