"""Utilities: network summary (parameters, multiply-adds), ONNX export, int8 quantization,
oneDNN fusion, devices, atomic writes."""
from .context import as_context_list, parse_ctx
from .fileio import atomic_open, atomic_paths
from .fusion import fuse
from .onnx_export import export_onnx
from .quantize import compare_int8, load_quantized, quantize_int8, save_quantized
from .summary import summary

__all__ = ["as_context_list", "atomic_open", "atomic_paths", "compare_int8", "export_onnx", "fuse",
           "load_quantized", "parse_ctx", "quantize_int8", "save_quantized", "summary"]
