"""Rendering of counts and comparisons: Table-6 text, Markdown, HTML, CSV, JSON and plots.

Nothing here counts: it renders what :mod:`energy` measured.
"""

from .render import table6_text
from .writer import write_comparison, write_report

__all__ = ["table6_text", "write_comparison", "write_report"]
