"""Utilities: network summary (parameters, multiply-adds), export, downloads."""
from .summary import summary

__all__ = ["summary"]
