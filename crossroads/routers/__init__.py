"""Routers: the protocol, the registry and the built-in router families."""

from .base import Router
from .registry import available_routers, create_router, get_router_class, register_router
from .human import HumanRouter
from .pheromone import PheromoneRouter
from .learned import ClassifierRouter, LearnedRouter, TrainedRouter
from .cascade import CascadeRouter
from .bandit import LinUCBRouter
from .rules import RulesRouter
from .self_healing import SelfHealingRouter
from .semantic import SemanticRouter
from .simple import CheapestRouter, FixedRouter, MostCapableRouter, RandomRouter

__all__ = [
    "CascadeRouter",
    "CheapestRouter",
    "ClassifierRouter",
    "FixedRouter",
    "HumanRouter",
    "LearnedRouter",
    "LinUCBRouter",
    "MostCapableRouter",
    "PheromoneRouter",
    "RandomRouter",
    "Router",
    "RulesRouter",
    "SelfHealingRouter",
    "SemanticRouter",
    "TrainedRouter",
    "available_routers",
    "create_router",
    "get_router_class",
    "register_router",
]
