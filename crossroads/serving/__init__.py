"""Serving: an OpenAI-compatible HTTP API over a flow's targets, routers and the whole flow."""

from .app import (
    DEFAULT_MAX_BODY_BYTES,
    FLOW_PREFIX,
    LIVENESS_PATH,
    ROUTER_PREFIX,
    ServeConfigError,
    build_app,
    check_bind,
    is_loopback,
)
from .catalog import ServedModel, build_catalog
from .schemas import ChatCompletionRequest

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "FLOW_PREFIX",
    "LIVENESS_PATH",
    "ROUTER_PREFIX",
    "ChatCompletionRequest",
    "ServeConfigError",
    "ServedModel",
    "build_app",
    "build_catalog",
    "check_bind",
    "is_loopback",
]
