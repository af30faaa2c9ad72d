"""``crossroads ui``: a local read-only web app over the trace DB (needs the ``ui`` extra)."""

from .app import build_ui_app, mermaid_path

__all__ = ["build_ui_app", "mermaid_path"]
