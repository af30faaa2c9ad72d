"""The base of every router whose policy is an LLM (the reasoning router, Router-R1).

One place for what every LLM router needs:

- **Cards → prompt.** Candidates are described from their :class:`~crossroads.types.TargetInfo`
  (name, description, example utterances, price, latency, quality), so onboarding an agent or a
  model is adding a target, with no retraining.
- **Constrained output.** The reply is constrained on every backend that allows it: a JSON schema
  (compiled to a GBNF grammar) on llama.cpp, ``response_format`` where a backend accepts it, a
  ``route`` tool (function calling) on litellm providers and OpenAI-compatible servers.
- **A score for every candidate.** Label log-probabilities where the backend exposes them
  (:meth:`LlamaCppModel.score_labels <crossroads.agents.backends.llama_cpp_model.LlamaCppModel.score_labels>`:
  one prompt evaluation plus one short continuation per label), else rank-derived scores; the
  decision's ``metadata["score_kind"]`` says which (``label_prob`` or ``rank``).
- **Garbled output.** Unparseable output, a non-candidate or an empty set raises
  :class:`~crossroads.errors.RouterOutputError` naming the raw output; the router re-asks a bounded
  number of times, then the configured ``fallback`` router decides and a ``routing_error`` event is
  traced. Without a fallback the error propagates (the run fails, traced as failed): never a silent default.
- **Large pools.** An embedding shortlist (the top-``shortlist`` cards by cosine similarity on the
  local MiniLM) before the LLM, so 150 or 1,500 agents fit a small model's context. Candidates cut
  by the shortlist score 0. ``shortlist_index: examples`` scores a candidate by its nearest card
  text *or example utterance* (more examples than the prompt shows: ``card_examples``), and
  ``shortlist_order: score`` lists the shortlist most similar first, so the LLM sees the retriever's
  ranking (default ``pool``: the pool's order).
- **Traced.** The router's own model calls are returned as trace records (tokens, cost, latency) by
  :meth:`LLMRouter.trace_records`, which the orchestrator writes next to the decision; the reasoning
  text is the decision's ``rationale``.
"""

from __future__ import annotations

import inspect
import json
import math
import threading
import time
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from ..errors import ConfigError, RouterOutputError
from ..tracing.records import CallRecord, DecisionRecord, EventRecord, TraceRecord
from ..types import CallUsage, Decision, Message, RouteContext, TargetInfo, TargetKind
from ._embedding import UsesEmbedder
from .base import Router

__all__ = [
    "DEFAULT_MAX_REASKS",
    "LLMRouter",
    "ParsedOutput",
    "build_router_model",
    "constrained_complete",
    "extract_json",
    "rank_scores",
    "render_card",
]

DEFAULT_MAX_REASKS = 1
"""Re-asks after a garbled reply before the fallback router decides."""
DEFAULT_MAX_TOKENS = 160
"""Tokens the router's model may generate per attempt (reasoning + the set)."""
SCORE_KIND_LABEL = "label_prob"
SCORE_KIND_RANK = "rank"

_MODEL_SPEC_KEYS = {"provider", "name", "api_base", "api_key_env", "dataset", "prices", "path", "timeout_s",
                    "retries", "fallbacks", "max_tokens", "n_ctx"}


SHORTLIST_INDEXES = ("card", "examples")
"""What a candidate is found by: its card text as one string, or its nearest card text / example utterance."""
SHORTLIST_ORDERS = ("pool", "score")
"""How the shortlist is listed in the prompt: the pool's order, or most similar first."""
DEFAULT_CARD_EXAMPLES = 3
"""Example utterances a prompt card shows (the shortlist index may use more)."""


def build_router_model(spec: Any) -> Any:
    """A chat model for a router: a ChatModel instance, or a YAML-style spec
    (``{provider: llama_cpp|litellm|replay, name, path, api_base, api_key_env, timeout_s, ...}``).
    ``None`` is the local SmolLM2-135M-Instruct on llama.cpp."""
    if spec is None:
        spec = {"provider": "llama_cpp"}
    if not isinstance(spec, Mapping):
        if not callable(getattr(spec, "complete", None)):
            raise ConfigError(f"router model must be a chat model or a mapping spec, got {type(spec).__name__}")
        return spec
    unknown = sorted(set(spec) - _MODEL_SPEC_KEYS)
    if unknown:
        raise ConfigError(f"router model spec: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_MODEL_SPEC_KEYS))}")
    if "provider" not in spec:
        raise ConfigError("router model spec needs 'provider' (llama_cpp, litellm or replay)")
    if spec["provider"] == "llama_cpp":  # the router's own limits (context, output length)
        from ..agents.backends.llama_cpp_model import LlamaCppModel

        return LlamaCppModel(path=spec.get("path"), name=spec.get("name"), n_ctx=int(spec.get("n_ctx", 4096)),
                             max_tokens=int(spec.get("max_tokens", DEFAULT_MAX_TOKENS)))
    from ..agents.backends.factory import build_chat_model

    ns = SimpleNamespace(**{"name": None, "api_base": None, "api_key_env": None, "dataset": None, "prices": None,
                            "path": None, "timeout_s": 60.0, "retries": 0, "fallbacks": [], **dict(spec)})
    return build_chat_model(ns)


def render_card(info: TargetInfo, *, examples: Sequence[str] = (), max_examples: int = 3) -> str:
    """One candidate as a prompt line: name, description, examples and descriptors."""
    parts = [f"- {info.name}"]
    if info.description:
        parts.append(f": {info.description}")
    ex = list(examples) or list(info.metadata.get("examples", ()) if isinstance(info.metadata, Mapping) else ())
    ex = ex[: max(0, max_examples)]
    if ex:
        parts.append(" Examples: " + "; ".join(f'"{e}"' for e in ex) + ".")
    desc = []
    c = info.cost
    if c.input_per_mtok or c.output_per_mtok:
        desc.append(f"price ${c.input_per_mtok:g}/${c.output_per_mtok:g} per 1M in/out tokens")
    if c.per_call:
        desc.append(f"${c.per_call:g} per call")
    if info.expected_latency_ms is not None:
        desc.append(f"latency ~{info.expected_latency_ms:g} ms")
    if info.quality is not None:
        desc.append(f"quality {info.quality:.2f}")
    if desc:
        parts.append(" [" + ", ".join(desc) + "]")
    return "".join(parts)


def extract_json(raw: str) -> Any:
    """The first JSON object in ``raw`` (code fences and surrounding prose allowed); raises
    :class:`RouterOutputError` naming the raw output when there is none."""
    start = raw.find("{")
    while start != -1:
        try:
            obj, _ = json.JSONDecoder().raw_decode(raw[start:])
            return obj
        except json.JSONDecodeError:
            start = raw.find("{", start + 1)
    raise RouterOutputError(f"router output is not JSON: {raw[:300]!r}")


def rank_scores(chosen: Sequence[str], names: Sequence[str]) -> dict[str, float]:
    """Rank-derived scores: the i-th chosen (0-based) scores 1/(i+1), every other candidate 0."""
    pos = {n: i for i, n in enumerate(chosen)}
    return {n: (1.0 / (pos[n] + 1) if n in pos else 0.0) for n in names}


def _param_names(fn: Any) -> tuple[set[str], bool]:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return set(), False
    return {p.name for p in params}, any(p.kind is p.VAR_KEYWORD for p in params)


def _primary(model: Any) -> Any:
    inner = getattr(model, "models", None)  # ResilientModel: the primary decides what is accepted
    return inner[0] if isinstance(inner, list) and inner else model


def constraint_kind(model: Any) -> str:
    """How ``model`` can be constrained: ``json_schema`` (llama.cpp: schema → GBNF),
    ``response_format``, ``tools`` (function calling) or ``none``."""
    names, _ = _param_names(_primary(model).complete)
    for kind in ("json_schema", "response_format", "tools"):
        if kind in names:
            return kind
    return "none"


def constrained_complete(model: Any, messages: Sequence[Message], schema: Mapping[str, Any], *,
                         tool_name: str = "route", max_tokens: int | None = None) -> tuple[Any, str, str]:
    """Call ``model`` with its output constrained to ``schema``; returns (response, raw text, constraint).

    The raw text is the tool call's arguments when the model answered with the ``route`` tool."""
    kind = constraint_kind(model)
    kw: dict[str, Any] = {}
    if kind == "json_schema":
        kw["json_schema"] = dict(schema)
        if max_tokens:
            kw["max_tokens"] = max_tokens
    elif kind == "response_format":
        kw["response_format"] = {"type": "json_schema", "json_schema": {"name": tool_name, "schema": dict(schema)}}
    elif kind == "tools":
        kw["tools"] = [{"type": "function", "function": {
            "name": tool_name, "description": "Report the routing decision.", "parameters": dict(schema)}}]
    resp = model.complete(list(messages), **kw)
    raw = resp.text or ""
    for call in getattr(resp, "tool_calls", ()) or ():
        if call.get("name") == tool_name and call.get("arguments"):
            raw = str(call["arguments"])
            break
    return resp, raw, kind


def usage_of(resp: Any, *, target: str) -> dict[str, Any]:
    """A JSON-friendly record of one model call (kept in the decision's metadata)."""
    return {"target": target, "model": getattr(resp, "model", None), "input_tokens": int(resp.input_tokens),
            "output_tokens": int(resp.output_tokens), "cost_usd": float(resp.cost_usd),
            "latency_ms": float(resp.latency_ms)}


@dataclass(frozen=True, slots=True, kw_only=True)
class ParsedOutput:
    """A router reply that parsed: the chosen names (in order) and the reasoning text."""

    chosen: tuple[str, ...]
    reasoning: str = ""
    out_of_scope: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)


class LLMRouter(UsesEmbedder, Router):
    """Base class of LLM routers: prompt from cards, constrained call, parse, re-ask, fallback, scores.

    Subclasses implement :meth:`messages`, :meth:`schema` and :meth:`parse`, and may override
    :meth:`label_prefix` (the assistant text after which candidate names are scored) and :meth:`finish`.
    """

    def __init__(
        self,
        *,
        model: Any = None,
        fallback: Any = None,
        max_reasks: int = DEFAULT_MAX_REASKS,
        shortlist: int | None = None,
        examples: Mapping[str, Sequence[str]] | None = None,
        label_scores: bool = True,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        embedder: Any = None,
        label: str | None = None,
        shortlist_index: str = "card",
        shortlist_order: str = "pool",
        card_examples: int = DEFAULT_CARD_EXAMPLES,
    ) -> None:
        super().__init__(label=label)
        if shortlist_index not in SHORTLIST_INDEXES:
            raise ConfigError(f"{self.name} router: shortlist_index must be one of {', '.join(SHORTLIST_INDEXES)}, "
                              f"got {shortlist_index!r}")
        if shortlist_order not in SHORTLIST_ORDERS:
            raise ConfigError(f"{self.name} router: shortlist_order must be one of {', '.join(SHORTLIST_ORDERS)}, "
                              f"got {shortlist_order!r}")
        if card_examples < 0:
            raise ConfigError(f"{self.name} router: card_examples must be >= 0 (0: no examples in the prompt), "
                              f"got {card_examples}")
        self.shortlist_index = shortlist_index
        self.shortlist_order = shortlist_order
        self.card_examples = card_examples
        if max_reasks < 0:
            raise ConfigError(f"{self.name} router: max_reasks must be >= 0, got {max_reasks}")
        if shortlist is not None and shortlist < 1:
            raise ConfigError(f"{self.name} router: shortlist must be >= 1 (or null for none), got {shortlist}")
        self._model_spec = model
        self._model: Any = None
        self.fallback = self._build_fallback(fallback)
        self.max_reasks = max_reasks
        self.shortlist = shortlist
        self.examples = {k: list(v) for k, v in (examples or {}).items()}
        self.label_scores = label_scores
        self.max_tokens = max_tokens
        self._embedder = embedder
        self._card_index: dict[tuple[str, ...], Any] = {}
        self._lock = threading.Lock()

    # -- configuration -------------------------------------------------------------------------
    def _build_fallback(self, spec: Any) -> Router | None:
        if spec is None or isinstance(spec, Router):
            return spec
        from .registry import create_router

        if isinstance(spec, str):
            return create_router(spec, label=f"{self.label}.fallback")
        if isinstance(spec, Mapping) and "type" in spec:
            return create_router(spec["type"], spec.get("params") or {}, label=f"{self.label}.fallback")
        raise ConfigError(f"{self.name} router: fallback must be a router, a router type name or "
                          f"{{type: ..., params: ...}}, got {spec!r}")

    @property
    def model(self) -> Any:
        """The router's chat model, built on first use (building a router never loads a model)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = build_router_model(self._model_spec)
        return self._model

    def referenced_targets(self) -> set[str]:
        return self.fallback.referenced_targets() if self.fallback is not None else set()

    # -- subclass hooks ------------------------------------------------------------------------
    @abstractmethod
    def messages(self, ctx: RouteContext, candidates: Sequence[TargetInfo]) -> list[Message]:
        """The prompt for this decision."""

    @abstractmethod
    def schema(self, candidates: Sequence[TargetInfo]) -> dict[str, Any]:
        """The JSON schema the reply is constrained to."""

    @abstractmethod
    def parse(self, raw: str, candidates: Sequence[TargetInfo]) -> ParsedOutput:
        """Parse a reply; raise :class:`RouterOutputError` (naming ``raw``) when it is garbled."""

    def label_prefix(self, parsed: ParsedOutput) -> str | None:
        """Assistant text after which each label is scored (``None``: no label scoring)."""
        return None

    def score_labels(self, parsed: ParsedOutput, candidates: Sequence[TargetInfo]) -> list[str]:
        """The labels scored after :meth:`label_prefix` (default: the candidate names)."""
        return [c.name for c in candidates]

    def label_suffix(self) -> str:
        """Text that ends a label in the reply (scored with it, so a label that is a prefix of another
        does not win by being short)."""
        return '"'

    def map_label_scores(self, probs: Mapping[str, float], ctx: RouteContext) -> dict[str, float]:
        """Label probabilities → a score for every candidate (0 for those outside the shortlist)."""
        return {c.name: float(probs.get(c.name, 0.0)) for c in ctx.candidates}

    def finish(self, ctx: RouteContext, parsed: ParsedOutput, scores: dict[str, float],
               metadata: dict[str, Any]) -> Decision:
        """Turn a parsed reply into the decision."""
        return Decision(targets=parsed.chosen, scores=scores, rationale=parsed.reasoning, router=self.label,
                        cost_usd=sum(c["cost_usd"] for c in metadata["router_calls"]), metadata=metadata)

    # -- shortlist -----------------------------------------------------------------------------
    def examples_of(self, c: TargetInfo) -> list[str]:
        """A candidate's example utterances: the router's ``examples`` for it, else its card's."""
        return self.examples.get(c.name) or list(c.metadata.get("examples", ()) if isinstance(c.metadata, Mapping) else ())

    def card_text(self, c: TargetInfo) -> str:
        """The text a card is embedded as with ``shortlist_index: card``: name, description, 5 examples."""
        return " ".join([c.name.replace("_", " ").replace(":", " "), c.description, *self.examples_of(c)[:5]]).strip()

    def index_texts(self, c: TargetInfo) -> list[str]:
        """The texts a candidate is found by: its card text (``card``), or its name and description plus
        each of its example utterances (``examples``: the candidate scores its nearest one)."""
        if self.shortlist_index == "card":
            return [self.card_text(c)]
        head = " ".join([c.name.replace("_", " ").replace(":", " "), c.description]).strip()
        return [head, *self.examples_of(c)]

    def shortlist_similarities(self, queries: Any, candidates: Sequence[TargetInfo]) -> Any:
        """Cosine similarity of each embedded query (rows of ``queries``) to each candidate: an
        ``(n_queries, n_candidates)`` array, a candidate scoring its best index text."""
        import numpy as np

        key = tuple(c.name for c in candidates)
        with self._lock:
            entry = self._card_index.get(key)
        if entry is None:
            texts: list[str] = []
            starts: list[int] = []
            for c in candidates:
                starts.append(len(texts))
                texts.extend(self.index_texts(c))
            entry = (np.asarray(self.embedder.embed(texts), dtype=np.float32), np.asarray(starts))
            with self._lock:
                self._card_index[key] = entry
        vecs, starts_arr = entry
        sims = np.atleast_2d(np.asarray(queries, dtype=np.float32)) @ vecs.T
        return np.maximum.reduceat(sims, starts_arr, axis=1)

    def shortlist_of(self, ctx: RouteContext, candidates: Sequence[TargetInfo]) -> list[TargetInfo]:
        """The top-``shortlist`` candidates by cosine similarity of query and index texts (all, in pool
        order, when the pool is small), in pool order or most similar first (``shortlist_order``)."""
        if self.shortlist is None or len(candidates) <= self.shortlist:
            return list(candidates)
        import numpy as np

        q = np.asarray(self.embedder.embed_one(ctx.query), dtype=np.float32)
        sims = self.shortlist_similarities(q, candidates)[0]
        top = np.argsort(-sims, kind="stable")[: self.shortlist]
        order = top if self.shortlist_order == "score" else sorted(top)
        return [candidates[i] for i in order]

    # -- the decision --------------------------------------------------------------------------
    def candidates_of(self, ctx: RouteContext) -> list[TargetInfo]:
        """The candidates the LLM chooses among (available ones; all when every one is down)."""
        return list(ctx.available_candidates())

    def route(self, ctx: RouteContext) -> Decision:
        started = time.perf_counter()
        pool = self.candidates_of(ctx)
        cands = self.shortlist_of(ctx, pool)
        msgs = self.messages(ctx, cands)
        schema = self.schema(cands)
        calls: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        parsed: ParsedOutput | None = None
        constraint = "none"
        for attempt in range(self.max_reasks + 1):
            try:
                resp, raw, constraint = constrained_complete(self.model, msgs, schema, max_tokens=self.max_tokens)
            except RouterOutputError:
                raise
            except Exception as exc:  # noqa: BLE001 - the model call failed (timeout, provider error): no re-ask
                errors.append({"attempt": attempt, "error": f"{type(exc).__name__}: {exc}"[:500], "raw_output": None})
                break
            calls.append(usage_of(resp, target=f"router:{self.label}"))
            try:
                parsed = self.parse(raw, cands)
                break
            except RouterOutputError as exc:
                errors.append({"attempt": attempt, "error": str(exc)[:500], "raw_output": raw[:2000]})
                msgs = [*msgs, Message(role="assistant", content=raw),
                        Message(role="user", content=f"That reply is invalid: {exc}. Reply again with only JSON "
                                                     f"matching this schema: {json.dumps(schema)}")]
        meta: dict[str, Any] = {"router_calls": calls, "constraint": constraint,
                                "shortlist": [c.name for c in cands] if len(cands) < len(pool) else None}
        if errors:
            meta["routing_errors"] = errors
        if parsed is None:
            return self._fallback(ctx, errors, meta, started)
        scores, kind = self._scores(ctx, msgs, parsed, cands)
        meta["score_kind"] = kind
        if parsed.extra:
            meta.update(parsed.extra)
        decision = self.finish(ctx, parsed, scores, meta)
        return _with_latency(decision, started)

    def _scores(self, ctx: RouteContext, msgs: Sequence[Message], parsed: ParsedOutput,
                cands: Sequence[TargetInfo]) -> tuple[dict[str, float], str]:
        names = [c.name for c in ctx.candidates]
        prefix = self.label_prefix(parsed)
        scorer = getattr(self.model, "score_labels", None)
        if self.label_scores and prefix is not None and callable(scorer):
            from ..agents.backends.llama_cpp_model import softmax_scores

            labels = self.score_labels(parsed, cands)
            probs = softmax_scores(scorer(msgs, labels, prefix=prefix, suffix=self.label_suffix()))
            return self.map_label_scores(probs, ctx), SCORE_KIND_LABEL
        return rank_scores(parsed.chosen, names), SCORE_KIND_RANK

    def _fallback(self, ctx: RouteContext, errors: list[dict[str, Any]], meta: dict[str, Any],
                  started: float) -> Decision:
        last: dict[str, Any] = errors[-1] if errors else {"error": "no reply", "raw_output": None}
        if self.fallback is None:
            raise RouterOutputError(
                f"router {self.label!r} got no valid decision after {len(errors)} attempt(s); last error: "
                f"{last['error']}; configure fallback: <router> to decide instead",
                router=self.label, candidates=ctx.candidate_names)
        fb = self.fallback.route(ctx)
        meta = {**meta, "fallback": self.fallback.label, "fallback_metadata": dict(fb.metadata),
                "score_kind": f"fallback:{fb.metadata.get('score_kind', self.fallback.name)}"}
        decision = Decision(targets=fb.targets, scores=dict(fb.scores), router=self.label,
                            rationale=f"LLM output unusable ({last['error'][:200]}); fallback {self.fallback.label}: "
                                      f"{fb.rationale}",
                            cost_usd=sum(c["cost_usd"] for c in meta["router_calls"]) + fb.cost_usd, metadata=meta)
        return _with_latency(decision, started)

    # -- tracing -------------------------------------------------------------------------------
    def trace_records(self, decision: Decision, *, run_id: str, source: str) -> list[TraceRecord]:
        """Records to write beside ``decision``: the router's own calls and its routing errors."""
        return decision_trace_records(decision, run_id=run_id, source=source)


def decision_trace_records(decision: Decision, *, run_id: str, source: str) -> list[TraceRecord]:
    """Calls (``metadata["router_calls"]``), ``routing_error`` events (``metadata["routing_errors"]``)
    and sub-decisions (``metadata["rounds"]``, Router-R1) of an LLM router's decision as trace records.

    A router's call carries its decision's id in ``step_id`` (the decision is the step it belongs to)."""
    out: list[TraceRecord] = []
    meta = decision.metadata
    for c in meta.get("router_calls") or ():
        out.append(CallRecord(run_id=run_id, step_id=decision.decision_id, usage=CallUsage(
            target=c["target"], kind=TargetKind(c.get("kind", "model")), model=c.get("model"),
            input_tokens=c["input_tokens"], output_tokens=c["output_tokens"], cost_usd=c["cost_usd"],
            latency_ms=c["latency_ms"], error=c.get("error"))))
    errors = meta.get("routing_errors") or ()
    for e in errors:
        out.append(EventRecord(kind="routing_error", run_id=run_id, decision_id=decision.decision_id,
                               detail={"router": decision.router, "source": source, "attempt": e.get("attempt"),
                                       "message": e.get("error"), "raw_output": e.get("raw_output"),
                                       "fallback": meta.get("fallback")}))
    for r in meta.get("rounds") or ():
        if r.get("model") is None:
            continue
        sub = Decision(targets=(r["model"],), scores=dict(r.get("scores") or {r["model"]: 1.0}),
                       rationale=r.get("think", ""), router=decision.router, decision_id=r["decision_id"],
                       latency_ms=float(r.get("latency_ms", 0.0)), cost_usd=float(r.get("policy_cost_usd", 0.0)),
                       metadata={"round": r["round"], "sub_query": r.get("sub_query"), "parent": decision.decision_id})
        out.append(DecisionRecord(run_id=run_id, source=f"{source}/round{r['round']}", decision=sub,
                                  query=r.get("sub_query") or ""))
    return out


def _with_latency(decision: Decision, started: float) -> Decision:
    import dataclasses

    return dataclasses.replace(decision, latency_ms=(time.perf_counter() - started) * 1e3)


def finite(x: float) -> float:
    """``x`` when finite, else 0.0 (scores must be finite)."""
    return x if math.isfinite(x) else 0.0
