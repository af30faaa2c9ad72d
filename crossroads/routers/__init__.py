"""Routers: the protocol, the registry and the built-in router families."""

from .base import Router
from .registry import available_routers, create_router, get_router_class, register_router
from .human import HumanRouter
from .pheromone import PheromoneRouter
from .learned import ClassifierRouter, LearnedRouter, TrainedRouter
from .rules import RulesRouter
from .llm_base import LLMRouter
from .reasoning import ReasoningRouter
from .router_r1 import RouterR1Router
from .self_healing import SelfHealingRouter
from .semantic import SemanticRouter
from .simple import CheapestRouter, FixedRouter, MostCapableRouter, RandomRouter

__all__ = [
    "CheapestRouter",
    "ClassifierRouter",
    "FixedRouter",
    "HumanRouter",
    "LLMRouter",
    "LearnedRouter",
    "MostCapableRouter",
    "PheromoneRouter",
    "RandomRouter",
    "ReasoningRouter",
    "RouterR1Router",
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
