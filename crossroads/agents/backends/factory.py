"""Build a chat model from a declarative spec (the YAML ``model:`` block)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ...types import CostModel
from ..models import ChatModel

__all__ = ["build_chat_model"]


def _one(spec: Any, cost: CostModel | None, base_dir: Path | None) -> ChatModel:
    if spec.provider == "litellm":
        from .litellm_model import LiteLLMModel

        if not spec.name:
            raise ConfigError("a litellm model needs 'name' (e.g. openai/gpt-4o-mini)")
        key = None
        if spec.api_key_env:
            key = os.environ.get(spec.api_key_env)
            if not key:
                raise ConfigError(f"env var {spec.api_key_env} (api_key_env of model {spec.name!r}) is not set")
        return LiteLLMModel(spec.name, api_base=spec.api_base, api_key=key, cost=cost, timeout_s=spec.timeout_s,
                            deadline_s=getattr(spec, "deadline_s", None))
    if spec.provider == "replay":
        from .replay import BUILTIN_DATASETS, RecordedOutcomes

        if not spec.dataset or not spec.name:
            raise ConfigError("a replay model needs 'dataset' (built-in name or JSONL path) and 'name'")
        data = _replay_data(spec.dataset, spec.prices, base_dir, BUILTIN_DATASETS, RecordedOutcomes)
        return data.model(spec.name)
    if spec.provider == "llama_cpp":
        from .llama_cpp_model import LlamaCppModel

        path = spec.path
        if path and base_dir is not None and not Path(path).is_absolute():
            path = str(base_dir / path)
        return LlamaCppModel(path=path, name=spec.name)
    raise ConfigError(f"unknown model provider {spec.provider!r}; known: litellm, replay, llama_cpp")


_replay_cache: dict[tuple[str, str | None], Any] = {}


def _replay_data(dataset: str, prices: str | None, base_dir: Path | None, builtin: Any, cls: Any) -> Any:
    key = (dataset, prices)
    if key not in _replay_cache:
        if dataset in builtin:
            _replay_cache[key] = cls.builtin(dataset)
        else:
            p = Path(dataset) if base_dir is None or Path(dataset).is_absolute() else base_dir / dataset
            pr = None if prices is None else (Path(prices) if base_dir is None else base_dir / prices)
            _replay_cache[key] = cls.load(p, prices=pr)
    return _replay_cache[key]


def _spec_cost(spec: Any) -> CostModel | None:
    c = getattr(spec, "cost", None)
    if c is None:
        return None
    return CostModel(input_per_mtok=c.input_per_mtok, output_per_mtok=c.output_per_mtok, per_call=c.per_call)


def build_chat_model(spec: Any, cost: CostModel | None = None, base_dir: Path | None = None) -> ChatModel:
    """The chat model for ``spec``; with ``fallbacks`` (or any litellm model), wrapped in a ResilientModel.

    The primary is priced by ``cost`` (the target's explicit price) or its own ``cost:``; each fallback
    by its own ``cost:`` (else the catalogue) and retried ``retries`` times if it sets them, else as
    often as the primary.
    """
    primary = _one(spec, cost or _spec_cost(spec), base_dir)
    if not spec.fallbacks and spec.provider != "litellm":
        return primary
    from .resilience import ResilientModel

    fallbacks = [_one(f, _spec_cost(f), base_dir) for f in spec.fallbacks]
    names = [primary.name] + [f.name for f in fallbacks]
    if len(set(names)) != len(names):
        raise ConfigError(f"model {spec.name!r}: a fallback repeats a model name ({names}); each model of a "
                          "fallback chain needs its own name")
    own = {m.name: f.retries for m, f in zip(fallbacks, spec.fallbacks, strict=True) if "retries" in f.model_fields_set}
    return ResilientModel([primary, *fallbacks], retries=spec.retries, model_retries=own, name=primary.name)
