"""Routers: the protocol, the registry and the built-in router families."""

from .base import Router
from .registry import available_routers, create_router, get_router_class, register_router
from .human import HumanRouter
from .rules import RulesRouter
from .semantic import SemanticRouter
from .simple import CheapestRouter, FixedRouter, MostCapableRouter, RandomRouter

__all__ = [
    "CheapestRouter",
    "FixedRouter",
    "HumanRouter",
    "MostCapableRouter",
    "RandomRouter",
    "Router",
    "RulesRouter",
    "SemanticRouter",
    "available_routers",
    "create_router",
    "get_router_class",
    "register_router",
]
