"""The widget every visitor downloads stays within its size budget."""

from __future__ import annotations

import gzip

from tests.support import ROOT

BUDGET_BYTES = 8 * 1024


def test_the_widget_is_at_most_8_kb_gzipped() -> None:
    source = (ROOT / "widget" / "widget.js").read_bytes()
    assert len(gzip.compress(source, compresslevel=9)) <= BUDGET_BYTES
