"""Teaser's domain, knowing nothing of HTTP: six wings (platform, fanout, accounts,
delivery, targeting, insight) wired into one worker by runtime.py; docs/layout.md maps them."""
