"""LLM routers in the eval suites, driven through the router protocol (``router.route(ctx)``).

- Agent selection (CLINC150, Banking77): the reasoning router chooses a set among the agent cards
  (or out-of-scope); top-1, set accuracy, mean set size, OOS precision/recall, shortlist recall@m
  (on every test row), decision latency p50/p99 and router tokens per decision. LLM decisions are
  slow on a CPU, so they run on a seeded sample of ``samples`` test rows (``n_sampled`` says how many).
- Query routing (LLMRouter 9 models, RouteLLM 2 models): Router-R1 over the replay pool. A route
  action returns the recorded outcome and price of the *original* query: sub-query rewriting has no
  effect on recorded outcomes. Quality is the recorded score of the model the policy consulted last
  (0 when it consulted none); cost is the recorded prompt price of every consulted model, relative to
  the best single model's cost on the same sampled rows.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import ConfigError, RouterOutputError
from ..types import RouteContext, TargetInfo
from .metrics import percentile
from .selection_metrics import selection_metrics

__all__ = ["LLM_AGENT_ROUTERS", "LLM_QUERY_ROUTERS", "evaluate_reasoning_router", "evaluate_router_r1",
           "router_r1_candidates"]

LLM_AGENT_ROUTERS = {"reasoning": "reasoning router (TCAndon-style): an LLM writes a reasoning, then a set of up to k agents"}
LLM_QUERY_ROUTERS = {"router_r1": "Router-R1: think/route rounds over the replay pool, then an answer"}
DEFAULT_SAMPLES = 30
DEFAULT_SHORTLIST = 10
OOS = "oos"


def _tokens(meta: Mapping[str, Any]) -> tuple[int, int]:
    calls = [c for c in meta.get("router_calls") or () if str(c.get("target", "")).startswith("router:")]
    return sum(c["input_tokens"] for c in calls), sum(c["output_tokens"] for c in calls)


def evaluate_reasoning_router(train: Any, test: Any, params: Mapping[str, Any], embedder: Any, *,
                              seed: int = 0, router: Any = None) -> dict[str, Any]:
    """Score the reasoning router on a seeded sample of ``test`` (``IntentData``)."""
    from ..routers.reasoning import ReasoningRouter
    from .agent_selection import agent_cards

    params = dict(params)
    samples = int(params.pop("samples", DEFAULT_SAMPLES))
    m = params.pop("shortlist", DEFAULT_SHORTLIST)
    has_oos = OOS in set(train.labels) | set(test.labels)
    cards = agent_cards(train, seed=seed, examples=int(params.pop("examples", 3)))
    infos = [TargetInfo(name=a, description=c["description"], metadata={"examples": c["examples"]})
             for a, c in cards.items()]
    if has_oos:
        infos.append(TargetInfo(name=OOS, description="out of scope"))
    if router is None:
        router = ReasoningRouter(out_of_scope=OOS if has_oos else None, shortlist=m, embedder=embedder, **params)
    cands = tuple(infos)
    agent_infos = [c for c in infos if c.name != OOS]
    # shortlist recall@m on every in-scope test row (embeddings only: cheap)
    pick = np.sort(np.random.default_rng(seed).choice(len(test), size=min(samples, len(test)), replace=False))
    recall = rank1 = rank1_sample = None
    if router.shortlist is not None and router.shortlist < len(agent_infos):
        # the shortlist alone (embeddings only: cheap): recall@m and the accuracy of its rank-1
        # candidate, on every in-scope test row; rank-1 on the sample is what copying it would score
        Q = np.asarray(embedder.embed(list(test.texts)), dtype=np.float32)
        top = np.argsort(-router.shortlist_similarities(Q, agent_infos), axis=1, kind="stable")[:, : router.shortlist]
        names = np.asarray([c.name for c in agent_infos])
        hit = np.asarray([g in names[top[i]] for i, g in enumerate(test.labels)])
        first = names[top[:, 0]] == np.asarray(test.labels)
        ins = np.asarray([g != OOS for g in test.labels])
        recall = float(hit[ins].mean()) if ins.any() else float("nan")
        rank1 = float(first[ins].mean()) if ins.any() else float("nan")
        rank1_sample = float(first[pick].mean())
    gold, chosen, lat, tin, tout = [], [], [], [], []
    garbled = fell_back = 0
    for i in pick:
        t0 = time.perf_counter()
        try:
            d = router.route(RouteContext(query=test.texts[i], candidates=cands))
            sel = list(d.targets)
            a, b = _tokens(d.metadata)
            garbled += bool(d.metadata.get("routing_errors"))
            fell_back += "fallback" in d.metadata
        except RouterOutputError:
            sel, a, b = [], 0, 0
            garbled += 1
        lat.append((time.perf_counter() - t0) * 1e3)
        gold.append(test.labels[i])
        chosen.append(sel)
        tin.append(a)
        tout.append(b)
    out = selection_metrics(gold, chosen, oos_label=OOS)
    out.update({"n_sampled": len(pick), "shortlist_m": router.shortlist, "shortlist_recall_at_m": recall,
                "shortlist_rank1_accuracy": rank1, "shortlist_rank1_top1_on_sample": rank1_sample,
                "latency_p50_ms": percentile(lat, 50), "latency_p99_ms": percentile(lat, 99),
                "router_input_tokens_per_decision": float(np.mean(tin)) if tin else float("nan"),
                "router_output_tokens_per_decision": float(np.mean(tout)) if tout else float("nan"),
                "garbled_rate": garbled / max(1, len(pick)), "fallback_rate": fell_back / max(1, len(pick)),
                "chance_top1": 1.0 / (len(agent_infos) + (1 if has_oos else 0))})
    return out


def router_r1_candidates(train: Any, prices: Mapping[str, Any]) -> tuple[TargetInfo, ...]:
    """The pool as Router-R1 sees it in a query-routing suite: one card per model of ``train``
    (``QueryData``) with its price (``prices``: model -> CostModel) and its mean recorded score on the
    training rows. Router-R1 training builds its prompts from the same cards, so training and
    evaluation prompts are identical."""
    quality = train.Y.mean(axis=0)
    return tuple(TargetInfo(name=m, description=f"LLM {m}", cost=prices[m], quality=float(quality[j]))
                 for j, m in enumerate(train.models))


def evaluate_router_r1(train: Any, test: Any, outcomes: Any, params: Mapping[str, Any], *, seed: int = 0,
                       router: Any = None) -> dict[str, Any]:
    """Score Router-R1 over the replay pool on a seeded sample of ``test`` (``QueryData``); ``outcomes``
    (``RecordedOutcomes``) must hold the test rows: the replayed pool answers the test prompts."""
    from ..routers.router_r1 import RouterR1Router
    from .metrics import CurvePoint, aiq

    params = dict(params)
    samples = int(params.pop("samples", 20))
    models = list(test.models)
    quality = train.Y.mean(axis=0)
    infos = router_r1_candidates(train, outcomes.prices)
    if router is None:
        if "pool" in params:
            raise ConfigError("router_r1 in a query-routing suite: the pool is the suite's replayed models; remove 'pool'")
        router = RouterR1Router(pool={m: outcomes.model(m) for m in models}, send="original", **params)
    pick = np.sort(np.random.default_rng(seed).choice(len(test), size=min(samples, len(test)), replace=False))
    best = int(np.argmax(quality))
    q, cost, lat, rounds, routed, tin, tout = [], [], [], [], [], [], []
    stops: dict[str, int] = {}
    fmt_errors = 0
    for i in pick:
        t0 = time.perf_counter()
        d = router.route(RouteContext(query=test.prompts[i], candidates=infos))
        lat.append((time.perf_counter() - t0) * 1e3)
        rs = [r for r in d.metadata["rounds"] if r.get("model")]
        last = rs[-1]["model"] if rs else None
        q.append(float(test.Y[i, models.index(last)]) if last else 0.0)
        cost.append(float(sum(test.C[i, models.index(r["model"])] for r in rs)))
        rounds.append(len(d.metadata["rounds"]))
        routed.append(len(rs))
        stops[d.metadata["stopped_by"]] = stops.get(d.metadata["stopped_by"], 0) + 1
        fmt_errors += int(d.metadata["format_errors"])
        a, b = _tokens(d.metadata)
        tin.append(a)
        tout.append(b)
    ref_cost = float(test.C[pick, best].sum()) or 1.0
    rel = float(np.sum(cost)) / ref_cost
    qual = float(np.mean(q))
    pts = [CurvePoint(cost=rel, quality=qual)]
    return {
        "points": [{"cost": rel, "quality": qual, "setting": None}],
        "aiq": aiq(pts, max(rel, 1.0)),  # the suite recomputes it against the run's shared max cost
        "best_quality": qual, "best_quality_cost": rel, "best_quality_ci95": None,
        "quality_at_half_cost": qual if rel <= 0.5 else float("nan"), "quality_at_half_cost_cost": rel if rel <= 0.5 else float("nan"),
        "cost_to_95pct_best_single": float("nan"), "cost_to_100pct_best_single": float("nan"), "train_s": 0.0,
        "latency_p50_ms": percentile(lat, 50), "latency_p99_ms": percentile(lat, 99),
        "n_sampled": len(pick), "sample_best_single_quality": float(test.Y[pick, best].mean()),
        "sample_oracle_quality": float(test.Y[pick].max(axis=1).mean()),
        "sample_random_quality": float(test.Y[pick].mean()),
        "mean_rounds": float(np.mean(rounds)), "mean_models_consulted": float(np.mean(routed)),
        "no_model_consulted_rate": float(np.mean([r == 0 for r in routed])), "stopped_by": stops,
        "format_errors_per_query": fmt_errors / max(1, len(pick)),
        "router_input_tokens_per_decision": float(np.mean(tin)), "router_output_tokens_per_decision": float(np.mean(tout)),
        "note": "replay pool: a route returns the recorded outcome of the original query; sub-query rewriting has no effect",
    }
