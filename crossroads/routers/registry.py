"""Name → router class registry, with third-party routers loaded from entry points.

Third-party packages expose routers under the ``crossroads.routers`` entry-point group::

    [project.entry-points."crossroads.routers"]
    myrouter = "mypkg.routing:MyRouter"
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any, TypeVar

from ..errors import ConfigError, UnknownRouterError
from .base import Router

__all__ = ["ENTRY_POINT_GROUP", "available_routers", "create_router", "get_router_class", "register_router"]

ENTRY_POINT_GROUP = "crossroads.routers"

R = TypeVar("R", bound=type[Router])

_registry: dict[str, type[Router]] = {}
_entry_points_loaded = False
_lock = threading.Lock()


def register_router(name: str | None = None) -> Callable[[R], R]:
    """Class decorator that registers a router under ``name`` (default: the class's ``name``)."""

    def deco(cls: R) -> R:
        key = name or cls.name
        if not key:
            raise ConfigError(f"router class {cls.__name__} needs a name to be registered")
        existing = _registry.get(key)
        if existing is not None and existing is not cls:
            raise ConfigError(
                f"router name {key!r} is already registered by {existing.__module__}.{existing.__qualname__}"
            )
        _registry[key] = cls
        return cls

    return deco


def _load_entry_points() -> None:
    global _entry_points_loaded
    with _lock:
        if _entry_points_loaded:
            return
        _entry_points_loaded = True
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in _registry:
                continue
            try:
                cls = ep.load()
            except Exception as exc:  # a broken plugin must not hide the built-ins
                raise ConfigError(
                    f"router plugin {ep.name!r} ({ep.value}) failed to import: {exc}"
                ) from exc
            if not (isinstance(cls, type) and issubclass(cls, Router)):
                raise ConfigError(f"router plugin {ep.name!r} ({ep.value}) is not a Router subclass")
            _registry[ep.name] = cls


def available_routers() -> list[str]:
    """Sorted names of every registered router, built-in and plugin."""
    _load_entry_points()
    return sorted(_registry)


def get_router_class(name: str) -> type[Router]:
    """The router class registered as ``name``; raises :class:`UnknownRouterError` listing the known ones."""
    if name not in _registry:
        _load_entry_points()
    try:
        return _registry[name]
    except KeyError:
        raise UnknownRouterError(name, _registry) from None


def create_router(name: str, params: Mapping[str, Any] | None = None, *, label: str | None = None) -> Router:
    """Instantiate the router registered as ``name`` with keyword ``params``."""
    cls = get_router_class(name)
    try:
        return cls(label=label, **dict(params or {}))
    except TypeError as exc:
        raise ConfigError(f"router {name!r} ({cls.__name__}) rejected its parameters: {exc}") from exc
