"""Benchmarks against gluon-face 1.0.2 (``python -m bench``); see bench/common.py."""
