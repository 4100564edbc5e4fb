"""Sphinx configuration. ``make docs`` builds HTML with warnings as errors.

The model-zoo and performance tables are generated at build time (docs/gen_tables.py) from
the model registry and store, ``scripts/eval.py`` JSON results in docs/results/, and
bench/results.json — never typed by hand.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import gluonfr  # noqa: E402

project = "gluonfr"
author = "gluonfr developers"
copyright = "2026, gluonfr developers"
version = release = gluonfr.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
napoleon_numpy_docstring = True
napoleon_google_docstring = False
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": False}
autosummary_generate = False
templates_path = []
exclude_patterns = ["_build", "results/README.md"]
html_theme = "sphinx_rtd_theme"
html_static_path = ["_static"]
html_css_files = ["tables.css"]
nitpicky = False


def _generate_tables(app):
    import gen_tables

    gen_tables.write_all(os.path.join(HERE, "_generated"))


def setup(app):
    app.connect("builder-inited", _generate_tables)
