"""Broker backends, one module each, imported by URL scheme only when chosen."""

from realtime.fanout.backends.base import RESYNC, BrokerBackend, Event

__all__ = ["RESYNC", "BrokerBackend", "Event"]
