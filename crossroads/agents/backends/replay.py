"""Replay models: serve recorded per-prompt outcomes (and responses, where recorded) with recorded prices.

Two row formats are read (JSONL, optionally gzip-compressed):

- LLMRouter style: ``prompt``, ``task``, ``scores`` ({model: score}), ``price_per_1m_tokens``
  ({model: {input, output}}), optional ``ground_truth``.
- RouteLLM style: ``prompt``, ``task``, ``correct`` ({model: bool}), optional ``responses``
  ({model: text}); prices come from a separate JSON file.

Per-model dict fields may be JSON objects or Python-literal strings (as published).
"""

from __future__ import annotations

import ast
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..._io import iter_jsonl
from ...data import DATA_DIR
from ...errors import ConfigError, TargetError, UnknownNameError
from ...types import CostModel, Message
from ..models import ChatModelBase, ModelResponse
from ..tokens import count_tokens

__all__ = ["BUILTIN_DATASETS", "PRICE_EXAMPLE", "RecordedOutcomes", "RecordedRow", "ReplayModel", "read_prices"]

_ROUTING = DATA_DIR / "routing"
BUILTIN_DATASETS: dict[str, tuple[Path, Path | None]] = {
    "llmrouter-9models": (_ROUTING / "llmrouter_9models_train.jsonl.gz", None),
    "routellm-2models": (_ROUTING / "routellm_2models_dev.jsonl.gz", _ROUTING / "routellm_2models_prices.json"),
}
"""Datasets shipped in the package, by name: (rows, prices or None when rows carry prices)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedRow:
    """One prompt with every model's recorded outcome."""

    id: str
    prompt: str
    task: str
    scores: Mapping[str, float]
    responses: Mapping[str, str] = field(default_factory=dict)
    ground_truth: str | None = None
    line: int = 0


def _dict_field(row: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = row.get(key)
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError) as exc:
            raise ConfigError(f"{where}: field {key!r} is not a valid mapping: {exc}") from exc
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: field {key!r} must map model names to values, got {type(value).__name__}")
    return dict(value)


PRICE_EXAMPLE = '{"gpt-4o": {"input": 2.5, "output": 10.0}, "llama-3-8b": {"input": 0.2, "output": 0.2}}'
"""A prices file (``--prices``): one object per model, USD per 1M input and output tokens."""


def _cost_model(p: Any, where: str, model: str) -> CostModel:
    """``{"input": x, "output": y}`` (USD per 1M tokens) as a :class:`CostModel`; anything else is a ConfigError
    naming ``where``, the model and the expected shape."""
    shape = (f"expected one object per model with its USD price per 1M input and output tokens, e.g. "
             f"{PRICE_EXAMPLE}")
    if not isinstance(p, Mapping) or "input" not in p or "output" not in p:
        raise ConfigError(f"{where}: model {model!r} has price {p!r}; {shape}")
    try:
        cin, cout = float(p["input"]), float(p["output"])
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: model {model!r} has price {dict(p)!r}: 'input' and 'output' must be numbers; "
                          f"{shape}") from None
    if not (math.isfinite(cin) and math.isfinite(cout)) or cin < 0 or cout < 0:
        raise ConfigError(f"{where}: model {model!r} has price {dict(p)!r}: 'input' and 'output' must be finite "
                          f"and >= 0; {shape}")
    return CostModel(input_per_mtok=cin, output_per_mtok=cout)


def read_prices(prices: str | Path | Mapping[str, Any]) -> dict[str, CostModel]:
    """A prices file or mapping {model: {input, output}} (USD per 1M tokens; keys starting with ``_`` are
    comments) as CostModels."""
    if isinstance(prices, (str, Path)):
        where = f"prices file {prices}"
        try:
            raw: Any = json.loads(Path(prices).read_text())
        except FileNotFoundError:
            raise ConfigError(f"{where} does not exist; write it as JSON, e.g. {PRICE_EXAMPLE}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{where} is not readable JSON ({exc}); write it as e.g. {PRICE_EXAMPLE}") from exc
    else:
        where, raw = "prices", prices
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a JSON object of models, got {type(raw).__name__}; e.g. {PRICE_EXAMPLE}")
    return {str(m): _cost_model(p, where, str(m)) for m, p in raw.items() if not str(m).startswith("_")}


class RecordedOutcomes:
    """Rows of recorded outcomes plus per-model prices, indexed by prompt.

    Example::

        data = RecordedOutcomes.builtin("llmrouter-9models")
        data.models                 # ['llama3-chatqa-1.5-8b', ...]
        data.rows[0].scores         # {'llama3-chatqa-1.5-8b': 0.0, ...}
    """

    def __init__(self, rows: Sequence[RecordedRow], prices: Mapping[str, CostModel], *, source: str = "") -> None:
        if not rows:
            raise ConfigError(f"{source or 'recorded outcomes'}: no rows")
        self.rows = list(rows)
        self.prices = dict(prices)
        self.source = source
        self.models = sorted({m for r in self.rows for m in r.scores})
        missing = [m for m in self.models if m not in self.prices]
        if missing:
            raise ConfigError(f"{source}: no price for model(s) {', '.join(missing)}; add them to the prices file")
        self._by_prompt: dict[str, RecordedRow] = {}
        for r in self.rows:
            self._by_prompt.setdefault(r.prompt.strip(), r)

    @classmethod
    def builtin(cls, name: str) -> RecordedOutcomes:
        """A dataset shipped with crossroads (see :data:`BUILTIN_DATASETS`)."""
        try:
            rows, prices = BUILTIN_DATASETS[name]
        except KeyError:
            raise UnknownNameError("built-in dataset", name, BUILTIN_DATASETS) from None
        return cls.load(rows, prices=prices)

    @classmethod
    def load(cls, path: str | Path, *, prices: str | Path | Mapping[str, Any] | None = None) -> RecordedOutcomes:
        """Read a JSONL(.gz) file; ``prices`` is a JSON file or mapping {model: {input, output}} (per 1M tokens)."""
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"recorded outcomes file {path} does not exist")
        price_map: dict[str, CostModel] = {}
        if prices is not None:
            for m, cost in read_prices(prices).items():
                price_map[m] = cost
        rows: list[RecordedRow] = []
        for where, n, row in iter_jsonl(path):
            for key in ("prompt",):
                if not isinstance(row.get(key), str) or not row[key].strip():
                    raise ConfigError(f"{where}: missing or empty field {key!r}")
            if "scores" in row:
                scores = {m: float(v) for m, v in _dict_field(row, "scores", where).items()}
                if "price_per_1m_tokens" in row:
                    for m, p in _dict_field(row, "price_per_1m_tokens", where).items():
                        price_map.setdefault(m, _cost_model(p, f"{where}: field 'price_per_1m_tokens'", m))
            elif "correct" in row:
                scores = {m: 1.0 if v else 0.0 for m, v in _dict_field(row, "correct", where).items()}
            else:
                raise ConfigError(f"{where}: a row needs 'scores' ({{model: score}}) or 'correct' ({{model: bool}})")
            bad = [m for m, v in scores.items() if not math.isfinite(v)]
            if bad:
                raise ConfigError(f"{where}: non-finite score for {', '.join(bad)}")
            responses = _dict_field(row, "responses", where) if row.get("responses") else {}
            rows.append(RecordedRow(id=str(row.get("id", f"{path.stem}-{n}")), prompt=row["prompt"],
                                    task=str(row.get("task", "")), scores=scores,
                                    responses={k: str(v) for k, v in responses.items()},
                                    ground_truth=row.get("ground_truth"), line=n))
        return cls(rows, price_map, source=str(path))

    def find(self, prompt: str) -> RecordedRow | None:
        """The row recorded for ``prompt`` (exact match after stripping), if any."""
        return self._by_prompt.get(prompt.strip())

    def model(self, name: str) -> ReplayModel:
        """A chat model that replays ``name``'s recorded outcomes."""
        if name not in self.models:
            raise UnknownNameError(f"model in {self.source}", name, self.models)
        return ReplayModel(self, name)

    def __len__(self) -> int:
        return len(self.rows)


class ReplayModel(ChatModelBase):
    """Serves one model's recorded outcome for a known prompt, at the recorded price.

    The reply is the recorded response when one exists; otherwise a marker naming the recorded
    outcome. ``ModelResponse.score`` always carries the recorded score. An unknown prompt is a
    :class:`TargetError`.
    """

    def __init__(self, data: RecordedOutcomes, model: str) -> None:
        self.data = data
        self.model = model
        self.name = model
        self.cost = data.prices[model]

    def complete(self, messages: Sequence[Message], **_: Any) -> ModelResponse:
        started = time.perf_counter()
        prompt = next((m.content for m in reversed(messages) if m.role == "user"), "")
        row = self.data.find(prompt)
        if row is None:
            raise TargetError(
                f"replay model {self.model!r} has no recorded outcome for prompt {prompt[:80]!r}; replay models "
                f"answer only the {len(self.data)} prompts of {self.data.source}",
                target=self.model,
            )
        score = row.scores[self.model]
        text = row.responses.get(self.model) or f"[recorded outcome of {self.model}: score {score:g}; no response text recorded]"
        tin = count_tokens(row.prompt)
        tout = count_tokens(row.responses[self.model]) if self.model in row.responses else 0
        return ModelResponse(text=text, model=self.model, input_tokens=tin, output_tokens=tout,
                             cost_usd=self.cost.estimate(tin, tout), latency_ms=(time.perf_counter() - started) * 1e3,
                             score=score)

    async def acomplete(self, messages: Sequence[Message], **kwargs: Any) -> ModelResponse:
        """A lookup: no I/O, so no worker thread."""
        return self.complete(messages, **kwargs)

    def __repr__(self) -> str:
        return f"ReplayModel({self.model!r}, {len(self.data)} prompts)"
