"""The orchestrator: Flow builder, compilation to LangGraph, runs, YAML flows."""

from .compiled import CompiledFlow, RunResult
from .flow import DEFAULT_MAX_STEPS, Flow, Route
from .merge import MERGE_STRATEGIES

__all__ = ["DEFAULT_MAX_STEPS", "MERGE_STRATEGIES", "CompiledFlow", "Flow", "Route", "RunResult"]
