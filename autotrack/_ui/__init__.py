"""``autotrack ui``: a local web app over the store (standard library HTTP server + static JS)."""

from __future__ import annotations

from ._server import make_server, serve, start_in_thread

__all__ = ["make_server", "serve", "start_in_thread"]
