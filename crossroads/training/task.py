"""What an LLM-router training run needs from a routing task (agent selection, model routing).

A task turns a suite's *training* data into (1) SFT rows in exactly the prompt format the router builds
at run time (the router's own ``messages()``), (2) GRPO prompts with the columns its reward functions
read, and (3) an evaluation that drives the router with a given model through the router protocol on the
suite's *test* split. The trainer (:mod:`crossroads.training.llm_router`) knows nothing task-specific.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["LLMRouterTask", "RewardFunc", "completion_text"]

RewardFunc = Callable[..., list[float]]
"""trl's reward-function signature: ``f(prompts, completions, **columns) -> list[float]`` (one per
completion; ``completions`` are conversational: ``[[{"role": "assistant", "content": ...}], ...]``)."""


def completion_text(completion: Any) -> str:
    """The text of a trl completion: a string, or conversational ``[{"role": "assistant", "content": ...}]``."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        return str(completion.get("content") or "")
    if isinstance(completion, Sequence):
        return "".join(str(m.get("content") or "") for m in completion if isinstance(m, Mapping))
    return str(completion)


@runtime_checkable
class LLMRouterTask(Protocol):
    """A routing task an LLM router is trained on."""

    name: str
    """``agent_selection`` (the reasoning router) or ``model_routing`` (Router-R1)."""
    router_type: str
    """The registered router type that runs the trained model (``reasoning``, ``router_r1``)."""

    def sft_rows(self, *, limit: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
        """Conversational prompt-completion rows for trl's SFTTrainer:
        ``{"prompt": [system, user messages as dicts], "completion": [{"role": "assistant", "content": ...}]}``."""
        ...

    def grpo_rows(self, *, limit: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
        """Rows for trl's GRPOTrainer: ``{"prompt": [...messages], <columns the reward functions read>}``."""
        ...

    def reward_funcs(self) -> Sequence[RewardFunc]:
        """The reward functions (thin trl adapters over the public ones in :mod:`crossroads.routers.rewards`)."""
        ...

    def evaluate(self, model_spec: Mapping[str, Any], *, samples: int, seed: int = 0) -> dict[str, Any]:
        """Metrics of the router running ``model_spec`` (e.g. ``{"provider": "llama_cpp", "path": ...}``)
        on a seeded sample of the test split, driven through ``router.route(ctx)``."""
        ...

    def data_hashes(self) -> dict[str, str]:
        """sha256 of every data file the rows came from (for the model card)."""
        ...
