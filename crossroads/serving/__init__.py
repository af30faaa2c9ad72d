"""Serving: an OpenAI-compatible HTTP API over a flow's targets and routers."""

from .app import LOOPBACK_HOSTS, ServeConfigError, build_app, check_bind

__all__ = ["LOOPBACK_HOSTS", "ServeConfigError", "build_app", "check_bind"]
