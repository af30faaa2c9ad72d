"""Routers: the protocol, the registry and the built-in router families."""

from .bandit import LinUCBRouter
from .base import Router
from .cascade import CascadeRouter
from .human import HumanRouter
from .intent import CentroidRouter, ClassifierRouter, KNNIntentRouter, NearestRouter
from .learned import LearnedRouter, TrainedRouter
from .llm_base import LLMRouter
from .pheromone import PheromoneRouter
from .reasoning import ReasoningRouter
from .registry import available_routers, create_router, get_router_class, register_router
from .router_r1 import RouterR1Router
from .rules import RulesRouter
from .self_healing import SelfHealingRouter
from .semantic import SemanticRouter
from .simple import CheapestRouter, FixedRouter, MostCapableRouter, RandomRouter

__all__ = [
    "CascadeRouter",
    "CentroidRouter",
    "CheapestRouter",
    "ClassifierRouter",
    "FixedRouter",
    "HumanRouter",
    "KNNIntentRouter",
    "LLMRouter",
    "LearnedRouter",
    "LinUCBRouter",
    "MostCapableRouter",
    "NearestRouter",
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
