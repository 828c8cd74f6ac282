"""Rendering of counts and comparisons: tables, plots, HTML (planned)."""
