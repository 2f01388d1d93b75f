"""Sphinx configuration: the docs are Markdown pages read by MyST; warnings fail the build."""

project = "django_rb"
author = "django_rb developers"
extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
myst_heading_anchors = 3
exclude_patterns = ["_build"]
html_theme = "alabaster"
suppress_warnings: list[str] = []
