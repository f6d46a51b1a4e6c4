"""widget.js, the one script a shop embeds, its TypeScript declarations and the demo page.

A package only so that these files ship in the wheel and are found through
importlib.resources wherever Teaser is installed; api/pages.py serves them as they are.
"""

from importlib.resources import files

FILES = files(__name__)

__all__ = ["FILES"]
