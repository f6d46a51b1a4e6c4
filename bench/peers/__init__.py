"""Minimal peers Teaser is measured against; used only by the benchmark."""
