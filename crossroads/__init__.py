"""crossroads: routed agent graphs on LangGraph.

Targets (agents, tools, models) are composed into a :class:`Flow`; every edge with a choice is
decided at run time by a :class:`Router`, and every decision is recorded in one trace schema.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:  # the real imports, for type checkers and IDEs
    from .agents import (
        ChatModel,
        FunctionModel,
        HealthTracker,
        ModelResponse,
        Target,
        agent,
        llm_agent,
        model,
        tool,
    )
    from .agents.backends import (
        AllModelsFailedError,
        LiteLLMModel,
        LlamaCppModel,
        ModelCatalogue,
        ModelDescriptor,
        OpenAIClientModel,
        RecordedOutcomes,
        ReplayModel,
        ResilientModel,
    )
    from .agents.backends.failures import classify_error, is_transport_error
    from .agents.backends.optional import missing_backend_note, optional_backend_available
    from .agents.backends.resilience import StreamBrokenError
    from .agents.embeddings import MiniLMEmbedder
    from .agents.lc import LangChainChatModel
    from .agents.models import ChatModelBase, ModelChunk
    from .errors import (
        BudgetExceededError,
        ConfigError,
        CrossroadsError,
        DeadlineExceededError,
        FeedbackError,
        FlowError,
        InputError,
        InputTooLargeError,
        MalformedResponseError,
        RouterOutputError,
        RoutingError,
        SkillError,
        StepLimitError,
        TargetError,
        ThreadFinishedError,
        TraceSchemaVersionError,
        TraceStoreCorruptError,
        TraceStoreError,
        TraceStoreForeignError,
        TraceStoreLockedError,
        TraceStoreReadOnlyError,
        UnknownNameError,
        UnknownRouterError,
        UnknownTargetError,
    )
    from .orchestrator import CompiledFlow, Flow, RunResult
    from .orchestrator.compiled import RunDecision
    from .orchestrator.config import load_flow
    from .orchestrator.state import FlowState, FlowStateModel
    from .orchestrator.streaming import StreamChunk, StreamUsage
    from .routers import (
        CheapestRouter,
        FixedRouter,
        HumanRouter,
        MostCapableRouter,
        RandomRouter,
        Router,
        RulesRouter,
        SemanticRouter,
        available_routers,
        create_router,
        get_router_class,
        register_router,
    )
    from .routers.bandit import LinUCBRouter
    from .routers.cascade import CascadeRouter
    from .routers.intent import (
        CentroidRouter,
        ClassifierRouter,
        KNNIntentRouter,
        NearestRouter,
        calibrate_oos_threshold,
        load_intent_router,
        train_intent_router,
    )
    from .routers.learned import LearnedRouter
    from .routers.llm_base import LLMRouter
    from .routers.reasoning import ReasoningRouter
    from .routers.rewards import agent_selection_reward, router_r1_replay_reward, router_r1_reward
    from .routers.router_r1 import RouterR1Router, router_r1_agent
    from .skills import Skill, SkillRegistry, SkillRouter, load_skills, skill_agent, skill_from_callable
    from .tracing import MemoryRecorder, NullRecorder, Recorder, SQLRecorder, TraceStore
    from .training.agent_task import AgentSelectionTask
    from .training.encoder import EncoderTrainConfig, train_encoder_router
    from .training.gguf_io import export_gguf, load_base
    from .training.llm_router import train_llm_router
    from .training.r1_task import ModelRoutingTask
    from .types import (
        END,
        START,
        CallUsage,
        CostModel,
        Decision,
        Feedback,
        Health,
        HealthStatus,
        Message,
        RouteContext,
        RunEvent,
        TargetInfo,
        TargetKind,
        TargetRequest,
        TargetResult,
        run_cost,
    )

_EXPORTS = {
    "agents": ["ChatModel", "FunctionModel", "HealthTracker", "ModelResponse", "Target", "agent", "llm_agent", "model", "tool"],
    "agents.backends": ["AllModelsFailedError", "LiteLLMModel", "LlamaCppModel", "ModelCatalogue", "ModelDescriptor",
                        "OpenAIClientModel", "RecordedOutcomes", "ReplayModel", "ResilientModel"],
    "agents.backends.failures": ["classify_error", "is_transport_error"],
    "agents.backends.optional": ["missing_backend_note", "optional_backend_available"],
    "agents.backends.resilience": ["StreamBrokenError"],
    "agents.models": ["ChatModelBase", "ModelChunk"],
    "agents.embeddings": ["MiniLMEmbedder"],
    "errors": ["ConfigError", "CrossroadsError", "DeadlineExceededError", "FeedbackError", "FlowError",
               "MalformedResponseError", "RouterOutputError", "RoutingError",
               "StepLimitError", "TargetError", "TraceSchemaVersionError", "TraceStoreCorruptError", "TraceStoreError",
               "UnknownNameError", "UnknownRouterError", "UnknownTargetError",
               "BudgetExceededError", "InputError", "InputTooLargeError", "ThreadFinishedError",
               "TraceStoreForeignError", "TraceStoreLockedError", "TraceStoreReadOnlyError", "SkillError"],
    "observability": ["MetricsRecorder", "OTelRecorder"],
    "orchestrator": ["CompiledFlow", "Flow", "RunResult"],
    "orchestrator.compiled": ["RunDecision"],
    "orchestrator.state": ["FlowState", "FlowStateModel"],
    "orchestrator.streaming": ["StreamChunk", "StreamUsage"],
    "agents.lc": ["LangChainChatModel"],
    "orchestrator.config": ["load_flow"],
    "routers": ["CheapestRouter", "FixedRouter", "HumanRouter", "MostCapableRouter", "RandomRouter", "Router", "RulesRouter", "SemanticRouter",
                "available_routers", "create_router", "get_router_class", "register_router"],
    "routers.intent": ["CentroidRouter", "ClassifierRouter", "KNNIntentRouter", "NearestRouter", "calibrate_oos_threshold",
                       "load_intent_router", "train_intent_router"],
    "routers.llm_base": ["LLMRouter"],
    "routers.reasoning": ["ReasoningRouter"],
    "routers.rewards": ["agent_selection_reward", "router_r1_replay_reward", "router_r1_reward"],
    "routers.router_r1": ["RouterR1Router", "router_r1_agent"],
    "skills": ["Skill", "SkillRegistry", "SkillRouter", "load_skills", "skill_agent", "skill_from_callable"],
    "tracing": ["MemoryRecorder", "NullRecorder", "Recorder", "SQLRecorder", "TraceStore"],
    "routers.learned": ["LearnedRouter"],
    "routers.cascade": ["CascadeRouter"],
    "routers.bandit": ["LinUCBRouter"],
    "training.agent_task": ["AgentSelectionTask"],
    "training.llm_router": ["train_llm_router"],
    "training.encoder": ["EncoderTrainConfig", "train_encoder_router"],
    "training.gguf_io": ["export_gguf", "load_base"],
    "training.r1_task": ["ModelRoutingTask"],
    "types": ["END", "START", "CallUsage", "CostModel", "Decision", "Feedback", "Health", "HealthStatus", "Message",
              "RouteContext", "RunEvent", "TargetInfo", "TargetKind", "TargetRequest", "TargetResult",
              "run_cost"],
}
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}


def __getattr__(name: str) -> Any:
    # Lazy exports keep `import crossroads` (and `crossroads --help`) free of LangGraph/SQLAlchemy.
    try:
        module = _WHERE[name]
    except KeyError:
        raise AttributeError(f"module 'crossroads' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "END",
    "START",
    "__version__",
    "AgentSelectionTask",
    "AllModelsFailedError",
    "CallUsage",
    "CascadeRouter",
    "CentroidRouter",
    "ChatModel",
    "ChatModelBase",
    "CheapestRouter",
    "ClassifierRouter",
    "CompiledFlow",
    "ConfigError",
    "CostModel",
    "CrossroadsError",
    "DeadlineExceededError",
    "Decision",
    "Feedback",
    "FeedbackError",
    "FixedRouter",
    "Flow",
    "FlowError",
    "FunctionModel",
    "Health",
    "HealthStatus",
    "HealthTracker",
    "HumanRouter",
    "KNNIntentRouter",
    "LLMRouter",
    "LearnedRouter",
    "LinUCBRouter",
    "EncoderTrainConfig",
    "train_encoder_router",
    "LiteLLMModel",
    "LlamaCppModel",
    "MalformedResponseError",
    "ModelChunk",
    "MemoryRecorder",
    "MetricsRecorder",
    "Message",
    "MiniLMEmbedder",
    "ModelCatalogue",
    "ModelDescriptor",
    "ModelResponse",
    "MostCapableRouter",
    "NearestRouter",
    "NullRecorder",
    "OTelRecorder",
    "OpenAIClientModel",
    "RandomRouter",
    "ReasoningRouter",
    "RecordedOutcomes",
    "Recorder",
    "ReplayModel",
    "ResilientModel",
    "RouteContext",
    "Router",
    "RouterOutputError",
    "RouterR1Router",
    "RoutingError",
    "RulesRouter",
    "RunEvent",
    "RunResult",
    "SQLRecorder",
    "Skill",
    "SkillError",
    "SkillRegistry",
    "SkillRouter",
    "SemanticRouter",
    "StepLimitError",
    "StreamBrokenError",
    "Target",
    "TargetError",
    "TargetInfo",
    "TargetKind",
    "TargetRequest",
    "TargetResult",
    "TraceSchemaVersionError",
    "TraceStore",
    "TraceStoreCorruptError",
    "TraceStoreError",
    "TraceStoreForeignError",
    "TraceStoreLockedError",
    "TraceStoreReadOnlyError",
    "UnknownNameError",
    "UnknownRouterError",
    "UnknownTargetError",
    "agent",
    "agent_selection_reward",
    "available_routers",
    "calibrate_oos_threshold",
    "classify_error",
    "create_router",
    "get_router_class",
    "is_transport_error",
    "llm_agent",
    "load_flow",
    "load_intent_router",
    "missing_backend_note",
    "model",
    "optional_backend_available",
    "register_router",
    "router_r1_agent",
    "router_r1_reward",
    "tool",
    "train_llm_router",
    "train_intent_router",
    "BudgetExceededError",
    "InputError",
    "InputTooLargeError",
    "ThreadFinishedError",
    "RunDecision",
    "FlowState",
    "FlowStateModel",
    "StreamChunk",
    "StreamUsage",
    "LangChainChatModel",
    "run_cost",
    "load_skills",
    "skill_agent",
    "skill_from_callable",
    "export_gguf",
    "load_base",
    "ModelRoutingTask",
    "router_r1_replay_reward",
]
