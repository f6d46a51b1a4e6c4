"""The printed tables and the targets, met or missed, from a run's results dict."""

from bench.report.cells import Row, med
from bench.report.page import render

__all__ = ["Row", "med", "render"]
