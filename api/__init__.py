"""Teaser's HTTP and WebSocket interface (Starlette). Thin: every decision is in realtime/."""
