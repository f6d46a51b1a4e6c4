"""Files that ship inside the installed packages, as paths the file responses can send."""

from __future__ import annotations

from importlib.resources.abc import Traversable
from pathlib import Path


def on_disk(resource: Traversable) -> Path:
    """The file behind a packaged resource. pip installs wheels unpacked, so it is one;
    from a zip import (which Teaser isn't made for) this says so instead of serving 404s."""
    if not isinstance(resource, Path):
        raise RuntimeError(f"{resource} is not a file on disk: install Teaser unpacked")
    return resource
