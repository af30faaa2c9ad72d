"""Model descriptors (provider, context window, prices, capabilities) from litellm's bundled cost map.

The map is read from the JSON file that ships inside the litellm package, without importing litellm
(fast, and never fetched from the network). Entries can be overridden or added, e.g. from YAML. A
model that is in neither needs an explicit price: it never silently costs zero.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ...types import CostModel

__all__ = ["ModelCatalogue", "ModelDescriptor"]

_COST_MAP_FILE = "model_prices_and_context_window_backup.json"


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelDescriptor:
    """What is known about one model."""

    name: str
    provider: str = "unknown"
    cost: CostModel = field(default_factory=CostModel)
    context_window: int | None = None
    max_output_tokens: int | None = None
    capabilities: frozenset[str] = frozenset()
    """e.g. ``function_calling``, ``vision``, ``response_schema``."""
    typical_latency_ms: float | None = None


@functools.cache
def _bundled_cost_map() -> Mapping[str, Any]:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / _COST_MAP_FILE
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    data.pop("sample_spec", None)
    return data


def _from_entry(name: str, e: Mapping[str, Any]) -> ModelDescriptor:
    caps = frozenset(k.removeprefix("supports_") for k, v in e.items() if k.startswith("supports_") and v is True)
    return ModelDescriptor(
        name=name,
        provider=str(e.get("litellm_provider", "unknown")),
        cost=CostModel(input_per_mtok=float(e.get("input_cost_per_token") or 0.0) * 1e6,
                       output_per_mtok=float(e.get("output_cost_per_token") or 0.0) * 1e6),
        context_window=e.get("max_input_tokens") or e.get("max_tokens"),
        max_output_tokens=e.get("max_output_tokens"),
        capabilities=caps,
    )


class ModelCatalogue:
    """Look up model descriptors; overrides win over litellm's bundled map.

    Example::

        cat = ModelCatalogue()
        cat.describe("gpt-4o-mini").cost.input_per_mtok   # 0.15
        cat.add(ModelDescriptor(name="my-vllm-model", provider="openai", cost=CostModel(per_call=0)))
    """

    def __init__(self, overrides: Mapping[str, ModelDescriptor] | None = None, *, use_bundled: bool = True) -> None:
        self._overrides: dict[str, ModelDescriptor] = dict(overrides or {})
        self._use_bundled = use_bundled

    def add(self, descriptor: ModelDescriptor) -> None:
        """Add or replace a model."""
        self._overrides[descriptor.name] = descriptor

    def add_from_mapping(self, name: str, spec: Mapping[str, Any]) -> ModelDescriptor:
        """Add a model from a YAML-style mapping; fields not given keep the bundled values."""
        base = self.find(name)
        cost = spec.get("cost")
        d = ModelDescriptor(
            name=name,
            provider=spec.get("provider", base.provider if base else "unknown"),
            cost=CostModel(**cost) if isinstance(cost, Mapping) else (base.cost if base else CostModel()),
            context_window=spec.get("context_window", base.context_window if base else None),
            max_output_tokens=spec.get("max_output_tokens", base.max_output_tokens if base else None),
            capabilities=frozenset(spec.get("capabilities", base.capabilities if base else ())),
            typical_latency_ms=spec.get("typical_latency_ms", base.typical_latency_ms if base else None),
        )
        if base is None and not isinstance(cost, Mapping):
            raise ConfigError(
                f"model {name!r} is not in litellm's bundled cost map; give its price explicitly, e.g. "
                "cost: {input_per_mtok: 0.5, output_per_mtok: 1.5} (or {per_call: 0} for a free local model)"
            )
        self._overrides[name] = d
        return d

    def find(self, name: str) -> ModelDescriptor | None:
        """The descriptor, or ``None`` when the model is unknown."""
        if name in self._overrides:
            return self._overrides[name]
        if not self._use_bundled:
            return None
        data = _bundled_cost_map()
        entry = data.get(name)
        if entry is None and "/" in name:  # "openai/gpt-4o-mini" → "gpt-4o-mini"
            entry = data.get(name.split("/", 1)[1])
        return _from_entry(name, entry) if entry is not None else None

    def describe(self, name: str) -> ModelDescriptor:
        """The descriptor; an unknown model is a :class:`ConfigError` asking for an explicit price."""
        d = self.find(name)
        if d is None:
            raise ConfigError(
                f"model {name!r} is not in litellm's bundled cost map nor in the catalogue overrides; "
                "give its price explicitly (cost: {input_per_mtok: ..., output_per_mtok: ...}) so its "
                "cost is never silently zero"
            )
        return d

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.find(name) is not None

    def __len__(self) -> int:
        return len(set(_bundled_cost_map() if self._use_bundled else ()) | set(self._overrides))
