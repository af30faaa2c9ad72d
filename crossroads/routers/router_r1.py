"""Router-R1 (``type: router_r1``): an LLM policy that interleaves thinking with route actions.

Each round the policy writes ``<think>...</think>`` and then either a route action,
``<search>MODEL: sub-query</search>`` (the paper's format; ``route model=MODEL: sub-query`` is accepted
too), or ``<answer>...</answer>``. A route action calls that pool model through the model layer with the
sub-query and appends its reply as ``<information>...</information>``; after at most ``max_rounds``
rounds, or when the accumulated cost reaches ``budget_usd``, it stops. The pool is described to the
policy only by descriptors (description, price, latency, example performance: the candidates'
``TargetInfo``), so unseen models plug in.

Every round is a decision (traced as a sub-decision of the edge's decision) plus a call; the policy's
and the pool's calls are traced calls. On a routed edge the decision chooses the pool model the
policy consulted last (the composed answer is ``metadata["answer"]``); :func:`router_r1_agent` makes
the composed answer a node's output instead.

Reference: Router-R1 (UIUC, 2025, github ulab-uiuc/Router-R1), digested in ``docs/methods.md``;
the training reward is :func:`crossroads.routers.rewards.router_r1_reward`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._ids import new_id
from ..errors import ConfigError, RouterOutputError
from ..types import (
    CallUsage,
    Decision,
    Message,
    RouteContext,
    RunEvent,
    TargetInfo,
    TargetKind,
    TargetResult,
)
from .llm_base import (
    LLMRouter,
    ParsedOutput,
    _param_names,
    _primary,
    build_router_model,
    rank_scores,
    render_card,
    usage_of,
)
from .registry import register_router

__all__ = ["R1Result", "RouterR1Router", "parse_r1_action", "router_r1_agent"]

DEFAULT_MAX_ROUNDS = 4

SYSTEM = (
    "Answer the user's question. You can consult the models of a pool. Think inside <think> </think>. "
    "To consult a model write <search>MODEL: sub-query</search>; its reply comes back inside "
    "<information> </information>. Consult as few and as cheap models as the question allows. When you "
    "can answer, write <answer>the answer</answer>.\nPool:\n{cards}"
)

_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
_SEARCH = re.compile(r"<search>\s*([^:<]+?)\s*:\s*(.*?)</search>", re.DOTALL)
_ROUTE = re.compile(r"^\s*route\s+model=([^:\s]+)\s*:\s*(.+)$", re.MULTILINE)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def parse_r1_action(text: str, pool: Sequence[str]) -> tuple[str, str, str, str]:
    """The first action of a policy turn: ``(kind, think, model_or_answer, sub_query)`` with kind
    ``route`` or ``answer``; raises :class:`RouterOutputError` naming the raw text when there is none
    or the model is not in ``pool``."""
    found = []
    for kind, rx in (("route", _SEARCH), ("route", _ROUTE), ("answer", _ANSWER)):
        m = rx.search(text)
        if m:
            found.append((m.start(), kind, m))
    if not found:
        raise RouterOutputError(f"policy turn has no <search>MODEL: query</search> or <answer>: {text[:300]!r}")
    start, kind, m = min(found, key=lambda f: f[0])
    thinks = _THINK.findall(text[:start])
    think = " ".join(t.strip() for t in thinks) if thinks else text[:start].strip()
    if kind == "answer":
        return "answer", think, m.group(1).strip(), ""
    model, query = m.group(1).strip(), m.group(2).strip()
    if model not in pool:
        raise RouterOutputError(f"policy routed to {model!r}, which is not in the pool; pool: {', '.join(pool)}; "
                                f"raw output: {text[:300]!r}")
    if not query:
        raise RouterOutputError(f"policy route to {model!r} has an empty sub-query: {text[:300]!r}")
    return "route", think, model, query


@dataclass
class R1Result:
    """One Router-R1 episode."""

    answer: str | None
    rounds: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    stopped_by: str = "answer"
    """``answer``, ``max_rounds`` or ``budget``."""
    format_errors: int = 0
    transcript: str = ""

    @property
    def cost_usd(self) -> float:
        return sum(c["cost_usd"] for c in self.calls)

    @property
    def last_model(self) -> str | None:
        routed = [r["model"] for r in self.rounds if r.get("model")]
        return routed[-1] if routed else None


@register_router()
class RouterR1Router(LLMRouter):
    """Multi-round think/route policy over a pool of models (the route's candidates).

    ``pool`` maps each candidate name to its chat model (a ChatModel or a YAML model spec).
    ``send="original"`` sends the original query instead of the policy's sub-query (replayed pools
    answer only recorded prompts: sub-query rewriting has no effect on recorded outcomes).
    """

    name = "router_r1"

    def __init__(
        self,
        *,
        pool: Mapping[str, Any] | None = None,
        max_rounds: int = DEFAULT_MAX_ROUNDS,
        budget_usd: float | None = None,
        send: str = "sub_query",
        direct: str | None = None,
        model: Any = None,
        fallback: Any = None,
        label_scores: bool = True,
        max_tokens: int = 128,
        label: str | None = None,
    ) -> None:
        super().__init__(model=model, fallback=fallback, max_reasks=0, label_scores=label_scores,
                         max_tokens=max_tokens, label=label)
        if max_rounds < 1:
            raise ConfigError(f"router_r1: max_rounds must be >= 1, got {max_rounds}")
        if budget_usd is not None and budget_usd <= 0:
            raise ConfigError(f"router_r1: budget_usd must be > 0, got {budget_usd}")
        if send not in ("sub_query", "original"):
            raise ConfigError(f"router_r1: send must be 'sub_query' or 'original', not {send!r}")
        self._pool_specs = dict(pool or {})
        self._pool: dict[str, Any] = {}
        self.max_rounds = max_rounds
        self.budget_usd = budget_usd
        self.send = send
        self.direct = direct

    def referenced_targets(self) -> set[str]:
        return set(self._pool_specs) | ({self.direct} if self.direct else set()) | super().referenced_targets()

    def pool_model(self, name: str) -> Any:
        """The chat model behind pool member ``name`` (built on first use)."""
        if name not in self._pool:
            if name not in self._pool_specs:
                raise ConfigError(f"router_r1 {self.label!r}: candidate {name!r} has no pool model; "
                                  f"pool: {', '.join(self._pool_specs) or '(empty)'}; add pool: {{{name}: <model spec>}}")
            self._pool[name] = build_router_model(self._pool_specs[name])
        return self._pool[name]

    # -- LLMRouter hooks (one policy turn) -------------------------------------------------------
    def messages(self, ctx: RouteContext, candidates: Sequence[TargetInfo]) -> list[Message]:
        cards = "\n".join(render_card(c) for c in candidates)
        return [Message(role="system", content=SYSTEM.format(cards=cards)), Message(role="user", content=ctx.query)]

    def schema(self, candidates: Sequence[TargetInfo]) -> dict[str, Any]:
        return {}

    def parse(self, raw: str, candidates: Sequence[TargetInfo]) -> ParsedOutput:
        kind, think, what, query = parse_r1_action(raw, [c.name for c in candidates])
        return ParsedOutput(chosen=(what,) if kind == "route" else (), reasoning=think,
                            extra={"kind": kind, "sub_query": query, "answer": what if kind == "answer" else None})

    def grammar(self, candidates: Sequence[TargetInfo]) -> str:
        """GBNF for one policy turn: a think block, then a route to a pool model or an answer."""
        models = " | ".join('"' + c.name.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in candidates)
        return ('root ::= "<think>" [^<]* "</think>" ( search | answer )\n'
                f'search ::= "<search>" model ": " [^<]+ "</search>"\nmodel ::= {models}\n'
                'answer ::= "<answer>" [^<]+ "</answer>"\n')

    # -- the episode ---------------------------------------------------------------------------
    def _turn(self, msgs: list[Message], cands: Sequence[TargetInfo]) -> Any:
        model = self.model
        names, _ = _param_names(_primary(model).complete)
        kw: dict[str, Any] = {}
        if "grammar" in names:  # llama.cpp: the turn is constrained by a GBNF grammar
            kw = {"grammar": self.grammar(cands), "max_tokens": self.max_tokens}
        return model.complete(msgs, **kw)

    def _round_scores(self, msgs: list[Message], think: str, cands: Sequence[TargetInfo], chosen: str | None,
                      names: Sequence[str]) -> tuple[dict[str, float], str]:
        scorer = getattr(self.model, "score_labels", None)
        if self.label_scores and callable(scorer):
            from ..agents.backends.llama_cpp_model import softmax_scores

            probs = softmax_scores(scorer(msgs, [c.name for c in cands], prefix=f"<think>{think}</think><search>",
                                          suffix=":"))
            return {n: float(probs.get(n, 0.0)) for n in names}, "label_prob"
        return rank_scores([chosen] if chosen else [], names), "rank"

    def run(self, ctx: RouteContext) -> R1Result:
        """Play one episode for ``ctx.query`` over ``ctx``'s available candidates."""
        cands = list(ctx.available_candidates())
        names = [c.name for c in ctx.candidates]
        for c in cands:
            self.pool_model(c.name)  # fail before any call on a candidate without a pool model
        msgs = self.messages(ctx, cands)
        res = R1Result(answer=None)
        transcript: list[str] = []
        for rnd in range(self.max_rounds):
            if self.budget_usd is not None and res.cost_usd >= self.budget_usd:
                res.stopped_by = "budget"
                break
            t0 = time.perf_counter()
            resp = self._turn(msgs, cands)
            policy_call = usage_of(resp, target=f"router:{self.label}")
            res.calls.append(policy_call)
            raw = resp.text or ""
            try:
                kind, think, what, query = parse_r1_action(raw, [c.name for c in cands])
            except RouterOutputError as exc:
                res.format_errors += 1
                res.rounds.append({"round": rnd, "model": None, "error": str(exc)[:500], "raw_output": raw[:2000],
                                   "policy_cost_usd": policy_call["cost_usd"]})
                msgs = [*msgs, Message(role="assistant", content=raw),
                        Message(role="user", content=f"Invalid step: {exc}. Write <search>MODEL: sub-query</search> "
                                                     "or <answer>...</answer>.")]
                continue
            turn = raw[: raw.find("</search>") + len("</search>")] if kind == "route" and "</search>" in raw else raw
            transcript.append(turn)
            if kind == "answer":
                res.answer = what
                res.rounds.append({"round": rnd, "model": None, "think": think, "answer": what,
                                   "policy_cost_usd": policy_call["cost_usd"]})
                res.stopped_by = "answer"
                break
            scores, score_kind = self._round_scores(msgs, think, cands, what, names)
            sent = ctx.query if self.send == "original" else query
            reply = self.pool_model(what).complete([Message(role="user", content=sent)])
            call = usage_of(reply, target=what)
            res.calls.append(call)
            info = reply.text or ""
            transcript.append(f"<information>{info}</information>")
            res.rounds.append({"round": rnd, "decision_id": new_id(), "model": what, "think": think, "sub_query": query,
                               "sent": sent, "scores": scores, "score_kind": score_kind, "reply": info[:2000],
                               "score": getattr(reply, "score", None), "cost_usd": call["cost_usd"],
                               "policy_cost_usd": policy_call["cost_usd"],
                               "latency_ms": (time.perf_counter() - t0) * 1e3})
            msgs = [*msgs, Message(role="assistant", content=turn),
                    Message(role="user", content=f"<information>{info}</information>")]
        else:
            res.stopped_by = "max_rounds"
        if res.stopped_by != "answer" and res.answer is None:
            last = next((r for r in reversed(res.rounds) if r.get("model")), None)
            res.answer = last["reply"] if last else None
        res.transcript = "".join(transcript)
        return res

    def route(self, ctx: RouteContext) -> Decision:
        started = time.perf_counter()
        res = self.run(ctx)
        names = [c.name for c in ctx.candidates]
        target = res.last_model
        rationale = " | ".join(r.get("think", "") for r in res.rounds if r.get("think"))
        meta: dict[str, Any] = {"router_calls": res.calls, "rounds": res.rounds, "answer": res.answer,
                                "stopped_by": res.stopped_by, "format_errors": res.format_errors}
        errors = [{"attempt": r["round"], "error": r["error"], "raw_output": r["raw_output"]}
                  for r in res.rounds if r.get("error")]
        if errors:
            meta["routing_errors"] = errors
        if target is not None:
            last = next(r for r in reversed(res.rounds) if r.get("model") == target)
            meta["score_kind"] = last["score_kind"]
            return Decision(targets=(target,), scores=dict(last["scores"]), rationale=rationale, router=self.label,
                            cost_usd=res.cost_usd, metadata=meta, latency_ms=(time.perf_counter() - started) * 1e3)
        # the policy consulted no model: the fallback router, else the configured or cheapest candidate decides
        if self.fallback is not None:
            fb = self.fallback.route(ctx)
            meta.update(fallback=self.fallback.label, score_kind=f"fallback:{fb.metadata.get('score_kind', self.fallback.name)}")
            return Decision(targets=fb.targets, scores=dict(fb.scores), router=self.label, cost_usd=res.cost_usd + fb.cost_usd,
                            rationale=f"policy consulted no model ({res.stopped_by}); fallback {self.fallback.label}: "
                                      f"{fb.rationale}", metadata=meta, latency_ms=(time.perf_counter() - started) * 1e3)
        pick = self.direct or min(ctx.available_candidates(),
                                  key=lambda c: (c.cost.input_per_mtok + c.cost.output_per_mtok + c.cost.per_call)).name
        meta["score_kind"] = "rank"
        return Decision(targets=(pick,), scores=rank_scores([pick], names), router=self.label, cost_usd=res.cost_usd,
                        rationale=f"policy consulted no model ({res.stopped_by}); "
                                  f"{'configured direct target' if self.direct else 'cheapest candidate'} {pick!r}",
                        metadata=meta, latency_ms=(time.perf_counter() - started) * 1e3)


def router_r1_agent(name: str, router: RouterR1Router, candidates: Sequence[TargetInfo], *,
                    description: str = "Answers by consulting a pool of models (Router-R1)") -> Any:
    """A target whose output is Router-R1's composed answer; its calls (policy and pool) are the
    target's calls and each round is a ``r1_round`` event."""
    from ..agents.targets import agent

    cands = tuple(candidates)

    def run(request: Any) -> TargetResult:
        res = router.run(RouteContext(query=request.text, candidates=cands, input=request.input))
        calls = tuple(CallUsage(target=c["target"], kind=TargetKind.MODEL, model=c.get("model"),
                                input_tokens=c["input_tokens"], output_tokens=c["output_tokens"],
                                cost_usd=c["cost_usd"], latency_ms=c["latency_ms"]) for c in res.calls)
        events = tuple(RunEvent(kind="r1_round", target=r.get("model") or router.label,
                                detail={k: v for k, v in r.items() if k in ("round", "think", "sub_query", "error")})
                       for r in res.rounds)
        if res.answer is None:
            raise RouterOutputError(f"Router-R1 {router.label!r} produced no answer ({res.stopped_by}, "
                                    f"{res.format_errors} malformed turn(s))", router=router.label)
        return TargetResult(output=res.answer, calls=calls, events=events,
                            metadata={"stopped_by": res.stopped_by, "rounds": len(res.rounds)})

    fn: Callable[[Any], TargetResult] = run
    return agent(name, fn, description=description)
