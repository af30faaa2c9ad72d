"""The reasoning router (TCAndon-Router style; ``type: reasoning``).

The LLM first writes a short natural-language reasoning, then names a **set** of up to ``k`` agents
(most relevant first), or out-of-scope. In a flow the set fans out in parallel and a refiner (an LLM
agent given every branch's answer) merges them; see ``examples/reasoning_router.yaml``.

Reference: TCAndon-Router (Tencent, 2026), digested in ``docs/methods.md``: agents described by cards
(id, name, description), reasoning chain then a set of up to 3 candidates or out-of-scope; scored by
whether the gold agent is in the chosen set.

Example::

    router = ReasoningRouter(model={"provider": "llama_cpp"}, k=2, out_of_scope="faq",
                             fallback={"type": "semantic"})
    decision = router.route(RouteContext(query="refund my order", candidates=(billing, tech, faq)))
    decision.targets, decision.rationale, decision.metadata["score_kind"]
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigError, RouterOutputError
from ..types import END, Decision, Message, RouteContext, TargetInfo
from .llm_base import DEFAULT_CARD_EXAMPLES, LLMRouter, ParsedOutput, extract_json, render_card
from .registry import register_router

__all__ = ["OUT_OF_SCOPE", "ReasoningRouter", "parse_agent_set"]

OUT_OF_SCOPE = "out_of_scope"
"""The label the LLM uses for a request no agent should handle."""
DEFAULT_K = 3
MAX_REASONING_CHARS = 400

SYSTEM = (
    "You are a router. You choose which agents should answer a user request.\n"
    "Agents:\n{cards}\n\n"
    "First write a short reasoning (one or two sentences) about what the request needs, then list up to {k} "
    "agent names that should answer it, the most relevant first{oos}. Use only the agent names listed above.\n"
    'Reply with JSON only: {{"reasoning": "...", "agents": ["name", ...]}}'
)


def parse_agent_set(raw: str, names: Sequence[str], *, k: int, allow_oos: bool) -> ParsedOutput:
    """Parse ``{"reasoning": ..., "agents": [...]}``; raises :class:`RouterOutputError` naming the raw
    output for unparseable JSON, a non-candidate, an empty set, more than ``k`` agents, or
    out-of-scope mixed with agents (or when out-of-scope is not allowed)."""
    obj = extract_json(raw)
    if not isinstance(obj, Mapping):
        raise RouterOutputError(f"router output is not a JSON object: {raw[:300]!r}")
    agents = obj.get("agents", obj.get("agent"))
    if isinstance(agents, str):
        agents = [agents]
    if not isinstance(agents, list) or not all(isinstance(a, str) for a in agents):
        raise RouterOutputError(f"router output has no 'agents' list of names: {raw[:300]!r}")
    by_lower = {n.lower(): n for n in names}
    chosen: list[str] = []
    for a in agents:
        key = a.strip()
        if key.lower() == OUT_OF_SCOPE:
            key = OUT_OF_SCOPE
        elif key not in names:
            if key.lower() not in by_lower:
                raise RouterOutputError(
                    f"router output names {a!r}, which is not a candidate; candidates: {', '.join(names)}; "
                    f"raw output: {raw[:300]!r}")
            key = by_lower[key.lower()]
        if key not in chosen:
            chosen.append(key)
    if not chosen:
        raise RouterOutputError(f"router output chose an empty set: {raw[:300]!r}")
    if OUT_OF_SCOPE in chosen:
        if not allow_oos:
            raise RouterOutputError(f"router output says out-of-scope, which this route does not allow: {raw[:300]!r}")
        if len(chosen) > 1:
            raise RouterOutputError(f"router output mixes out-of-scope with agents: {raw[:300]!r}")
    if len(chosen) > k:
        raise RouterOutputError(f"router output chose {len(chosen)} agents, more than k={k}: {raw[:300]!r}")
    reasoning = obj.get("reasoning", "")
    return ParsedOutput(chosen=tuple(chosen), reasoning=str(reasoning) if reasoning is not None else "",
                        out_of_scope=chosen == [OUT_OF_SCOPE])


@register_router()
class ReasoningRouter(LLMRouter):
    """An LLM writes a reasoning, then a set of up to ``k`` agents (or out-of-scope).

    ``out_of_scope``: the candidate that receives out-of-scope requests (an agent name, or ``END``);
    without it the LLM is not offered out-of-scope. ``shortlist``, ``shortlist_index``,
    ``shortlist_order``, ``card_examples``: see :class:`~crossroads.routers.llm_base.LLMRouter` (large pools). Scores: label probabilities of each candidate as
    the first agent of the set, given the reasoning (llama.cpp), else rank-derived.
    """

    name = "reasoning"

    def __init__(
        self,
        *,
        k: int = DEFAULT_K,
        out_of_scope: str | None = None,
        instructions: str | None = None,
        model: Any = None,
        fallback: Any = None,
        max_reasks: int = 1,
        shortlist: int | None = None,
        examples: Mapping[str, Sequence[str]] | None = None,
        label_scores: bool = True,
        max_tokens: int = 160,
        embedder: Any = None,
        label: str | None = None,
        shortlist_index: str = "card",
        shortlist_order: str = "pool",
        card_examples: int = DEFAULT_CARD_EXAMPLES,
    ) -> None:
        super().__init__(model=model, fallback=fallback, max_reasks=max_reasks, shortlist=shortlist,
                         examples=examples, label_scores=label_scores, max_tokens=max_tokens, embedder=embedder,
                         label=label, shortlist_index=shortlist_index, shortlist_order=shortlist_order,
                         card_examples=card_examples)
        if k < 1:
            raise ConfigError(f"reasoning router: k must be >= 1, got {k}")
        self.k = k
        self.oos_target = END if out_of_scope in ("END", "end") else out_of_scope
        self.instructions = instructions

    def referenced_targets(self) -> set[str]:
        own = {self.oos_target} if self.oos_target else set()
        return own | super().referenced_targets()

    def candidates_of(self, ctx: RouteContext) -> list[TargetInfo]:
        return [c for c in ctx.available_candidates() if c.name != self.oos_target]

    def messages(self, ctx: RouteContext, candidates: Sequence[TargetInfo]) -> list[Message]:
        cards = "\n".join(render_card(c, examples=self.examples.get(c.name, ()), max_examples=self.card_examples)
                          for c in candidates)
        oos = f', or ["{OUT_OF_SCOPE}"] when no agent fits' if self.oos_target else ""
        system = SYSTEM.format(cards=cards, k=self.k, oos=oos)
        if self.instructions:
            system = f"{self.instructions}\n\n{system}"
        return [Message(role="system", content=system), Message(role="user", content=ctx.query)]

    def schema(self, candidates: Sequence[TargetInfo]) -> dict[str, Any]:
        names = [c.name for c in candidates] + ([OUT_OF_SCOPE] if self.oos_target else [])
        return {"type": "object",
                "properties": {"reasoning": {"type": "string", "maxLength": MAX_REASONING_CHARS},
                               "agents": {"type": "array", "items": {"type": "string", "enum": names},
                                          "minItems": 1, "maxItems": self.k}},
                "required": ["reasoning", "agents"]}

    def parse(self, raw: str, candidates: Sequence[TargetInfo]) -> ParsedOutput:
        return parse_agent_set(raw, [c.name for c in candidates], k=self.k, allow_oos=self.oos_target is not None)

    def label_prefix(self, parsed: ParsedOutput) -> str | None:
        return '{"reasoning": ' + json.dumps(parsed.reasoning) + ', "agents": ["'

    def score_labels(self, parsed: ParsedOutput, candidates: Sequence[TargetInfo]) -> list[str]:
        return [c.name for c in candidates] + ([OUT_OF_SCOPE] if self.oos_target else [])

    def map_label_scores(self, probs: Mapping[str, float], ctx: RouteContext) -> dict[str, float]:
        scores = {c.name: float(probs.get(c.name, 0.0)) for c in ctx.candidates}
        if self.oos_target is not None and self.oos_target in scores:
            scores[self.oos_target] = float(probs.get(OUT_OF_SCOPE, 0.0))
        return scores

    def finish(self, ctx: RouteContext, parsed: ParsedOutput, scores: dict[str, float],
               metadata: dict[str, Any]) -> Decision:
        targets = (self.oos_target,) if parsed.out_of_scope and self.oos_target else parsed.chosen
        if metadata.get("score_kind") == "rank" and parsed.out_of_scope and self.oos_target in scores:
            scores = {**scores, self.oos_target: 1.0}
        metadata = {**metadata, "set": list(parsed.chosen), "out_of_scope": parsed.out_of_scope}
        return Decision(targets=tuple(t for t in targets if t), scores=scores, rationale=parsed.reasoning,
                        router=self.label, cost_usd=sum(c["cost_usd"] for c in metadata["router_calls"]),
                        metadata=metadata)
