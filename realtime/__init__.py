"""Teaser's domain: messages, sites, fan-out and live sessions. Knows nothing about HTTP."""
