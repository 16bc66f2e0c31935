"""Sphinx configuration of the flask-flexactions documentation.

Build: ``pip install -e ".[docs]" && sphinx-build -W --keep-going -b html docs docs/_build/html``.
The build needs no network: no intersphinx inventories are fetched.
"""

from importlib.metadata import version as _version

project = "flask-flexactions"
author = "the flask-flexactions contributors"
copyright = "2026, the flask-flexactions contributors"
release = _version("flask-flexactions")
version = release
language = "en"

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
root_doc = "index"
# examples/ holds the tested files the pages include; _generated/ the outputs tests write.
exclude_patterns = ["_build", "_generated", "examples"]

# Links to a section of another page: [text](security.md#who-is-calling).
myst_heading_anchors = 3
# Definition lists, for the configuration keys.
myst_enable_extensions = ["deflist"]

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "undoc-members": False}

html_theme = "furo"
html_title = f"flask-flexactions {release}"
