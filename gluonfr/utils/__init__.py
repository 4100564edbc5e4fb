"""Utilities: network summary (parameters, multiply-adds), ONNX export, devices."""
from .onnx_export import export_onnx
from .summary import summary

__all__ = ["export_onnx", "summary"]
