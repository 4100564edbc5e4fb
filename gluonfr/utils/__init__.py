"""Utilities: network summary (parameters, multiply-adds), ONNX export, devices."""
from .context import parse_ctx
from .onnx_export import export_onnx
from .summary import summary

__all__ = ["export_onnx", "parse_ctx", "summary"]
