"""The operator dashboard: static HTML, CSS and ES modules, no build step.

A package only so that these files ship in the wheel and are found through
importlib.resources wherever Teaser is installed; api/dashboard.py serves them.
"""

from importlib.resources import files

FILES = files(__name__)

__all__ = ["FILES"]
