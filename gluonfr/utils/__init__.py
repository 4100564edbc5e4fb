"""Utilities: network summary (parameters, multiply-adds), ONNX export, devices, atomic writes."""
from .context import as_context_list, parse_ctx
from .fileio import atomic_open, atomic_paths
from .onnx_export import export_onnx
from .summary import summary

__all__ = ["as_context_list", "atomic_open", "atomic_paths", "export_onnx", "parse_ctx", "summary"]
