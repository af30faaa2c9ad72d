"""Step-level routing, TwinRouterBench static track: the question-bank format and its exact scoring.

A bank row: ``id, benchmark, scenario, instance_id, step_index, total_steps, messages`` (the agent's
prefix at that step), ``target_tier`` in {low, mid, mid_high, high} and ``target_tier_id`` 0..3 (the
cheapest tier that still succeeds), optional ``functions``. A router predicts a tier id per row
(``None`` for an errored prediction, which counts as a failure). Scores (percent):

1. case pass = #(pred >= gold) / N
2. exact match = #(pred == gold) / N
3. trajectory pass = rows of trajectories (by ``instance_id``) whose every step has pred >= gold and no error, / N
4. cost savings = sum over benchmarks b of (rows_b / N) * 100 * N_b / D_b, where D_b is the cost of always
   using the high tier over b's steps and N_b adds (high cost - predicted cost) for each step of a passed
   trajectory and subtracts the predicted cost for each step of a failed one
5. combined = mean of the four (NaN if any is NaN)

Step cost = (cache_read * cr + cache_write * cw + output * out) / 1e6 USD with per-tier prices per 1M
tokens. Prompt tokens are all cache writes on a trajectory's first step, on a tier switch, when the
same tier was last used more than 3 steps ago, or when the previous step's messages are not a prefix;
otherwise the previous prefix is a cache read and only the new part a cache write. Output tokens of a
step = tokens of the new assistant messages in the next step's prefix, +4 per message; the last step
uses the trajectory's mean (500 if none). Tokenizer: ``cl100k_base``.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._io import iter_jsonl
from ..agents.tokens import count_tokens
from ..errors import ConfigError

__all__ = ["TIERS", "TIER_PRICES", "BankRow", "fixtures_to_bank", "load_bank", "score_bank", "step_costs"]

TIERS = ("low", "mid", "mid_high", "high")
TIER_PRICES: dict[str, tuple[float, float, float]] = {
    "low": (0.13, 0.26, 0.5),
    "mid": (0.059, 0.30, 2.0),
    "mid_high": (0.05, 0.08333, 5.0),
    "high": (0.50, 6.25, 25.0),
}
"""(cache read, cache write, output) USD per 1M tokens per tier."""
CACHE_TTL_STEPS = 3
DEFAULT_OUTPUT_TOKENS = 500
MESSAGE_OVERHEAD_TOKENS = 4


@dataclass(frozen=True, slots=True)
class BankRow:
    """One step of one trajectory."""

    id: str
    benchmark: str
    scenario: str
    instance_id: str
    step_index: int
    total_steps: int
    messages: tuple[Mapping[str, Any], ...]
    target_tier_id: int
    functions: tuple[Mapping[str, Any], ...] = ()

    @property
    def target_tier(self) -> str:
        return TIERS[self.target_tier_id]


_REQUIRED = ("id", "benchmark", "instance_id", "step_index", "messages")


def _row(d: Mapping[str, Any], where: str) -> BankRow:
    for k in _REQUIRED:
        if k not in d:
            raise ConfigError(f"{where}: missing field {k!r}")
    if "target_tier_id" in d:
        tid = d["target_tier_id"]
    elif d.get("target_tier") in TIERS:
        tid = TIERS.index(d["target_tier"])
    else:
        raise ConfigError(f"{where}: needs target_tier ({', '.join(TIERS)}) or target_tier_id (0..3)")
    if not isinstance(tid, int) or not 0 <= tid <= 3:
        raise ConfigError(f"{where}: target_tier_id must be 0..3, got {tid!r}")
    if "target_tier" in d and d["target_tier"] != TIERS[tid]:
        raise ConfigError(f"{where}: target_tier {d['target_tier']!r} disagrees with target_tier_id {tid}")
    if not isinstance(d["messages"], list):
        raise ConfigError(f"{where}: messages must be a list")
    return BankRow(id=str(d["id"]), benchmark=str(d["benchmark"]), scenario=str(d.get("scenario", "")),
                   instance_id=str(d["instance_id"]), step_index=int(d["step_index"]),
                   total_steps=int(d.get("total_steps", 0)), messages=tuple(d["messages"]), target_tier_id=tid,
                   functions=tuple(d.get("functions") or ()))


def load_bank(path: str | Path) -> list[BankRow]:
    """Read a question bank (JSONL, optionally gzip-compressed)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"question bank {path} does not exist")
    rows = [_row(d, where) for where, _, d in iter_jsonl(path)]
    if not rows:
        raise ConfigError(f"{path}: empty question bank")
    return rows


def fixtures_to_bank(paths: Sequence[str | Path]) -> list[BankRow]:
    """Turn TwinRouterBench fixture tasks into bank rows: step k's prefix is the initial messages plus,
    for each earlier step, an assistant turn and its observation (as a tool message). Fixtures do not
    record the assistant's words, so its turn only numbers the step: the fixture's ``hint`` (a tier-like
    label) is never put in a prefix, since a router would read the answer from it."""
    rows: list[BankRow] = []
    for p in paths:
        data = json.loads(Path(p).read_text())
        for t in data.get("tasks", []):
            msgs: list[Mapping[str, Any]] = list(t["initial_messages"])
            steps = t["steps"]
            for k, step in enumerate(steps):
                tier = step.get("minimum_tier")
                if tier not in TIERS:
                    raise ConfigError(f"{p}: task {t.get('instance_id')} step {k}: minimum_tier {tier!r} not in {TIERS}")
                rows.append(BankRow(id=f"{t['instance_id']}:{k}", benchmark=t["benchmark"], scenario=t.get("scenario", ""),
                                    instance_id=t["instance_id"], step_index=k, total_steps=len(steps),
                                    messages=tuple(msgs), target_tier_id=TIERS.index(tier),
                                    functions=tuple(t.get("functions") or ())))
                msgs = msgs + [{"role": "assistant", "content": f"Step {k + 1}: tool call."},
                               {"role": "tool", "content": step.get("observation", "")}]
    return rows


def _tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    return sum(count_tokens(str(m.get("content") or "")) + MESSAGE_OVERHEAD_TOKENS for m in messages)


def _is_prefix(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]]) -> bool:
    return len(a) <= len(b) and all(x == y for x, y in zip(a, b, strict=False))


def step_costs(steps: Sequence[BankRow], tiers: Sequence[str]) -> list[float]:
    """USD cost of each step of one trajectory (ordered by step_index) when run at ``tiers``."""
    prompt = [_tokens(s.messages) for s in steps]
    outputs: list[int | None] = []
    for k in range(len(steps)):
        if k + 1 < len(steps) and _is_prefix(steps[k].messages, steps[k + 1].messages):
            new = steps[k + 1].messages[len(steps[k].messages):]
            outputs.append(sum(count_tokens(str(m.get("content") or "")) + MESSAGE_OVERHEAD_TOKENS
                               for m in new if m.get("role") == "assistant"))
        else:
            outputs.append(None)
    known = [o for o in outputs if o is not None]
    fill = sum(known) / len(known) if known else DEFAULT_OUTPUT_TOKENS
    outs = [o if o is not None else fill for o in outputs]
    last_used: dict[str, int] = {}
    costs = []
    for k, s in enumerate(steps):
        tier = tiers[k]
        cr, cw, out = TIER_PRICES[tier]
        all_write = (k == 0 or tiers[k - 1] != tier or k - last_used.get(tier, -10**9) > CACHE_TTL_STEPS
                     or not _is_prefix(steps[k - 1].messages, s.messages))
        if all_write:
            read, write = 0, prompt[k]
        else:
            read, write = prompt[k - 1], prompt[k] - prompt[k - 1]
        costs.append((read * cr + write * cw + outs[k] * out) / 1e6)
        last_used[tier] = k
    return costs


def score_bank(rows: Sequence[BankRow], predictions: Mapping[str, int | None]) -> dict[str, Any]:
    """The five static-track scores (percent) for tier-id predictions keyed by row id."""
    n = len(rows)
    if n == 0:
        raise ConfigError("cannot score an empty question bank")
    pred = {r.id: predictions.get(r.id) for r in rows}
    ok = {r.id: pred[r.id] is not None and 0 <= pred[r.id] <= 3 and pred[r.id] >= r.target_tier_id for r in rows}  # type: ignore[operator]
    case_pass = 100.0 * sum(ok.values()) / n
    exact = 100.0 * sum(1 for r in rows if pred[r.id] == r.target_tier_id) / n
    traj: dict[str, list[BankRow]] = defaultdict(list)
    for r in rows:
        traj[r.instance_id].append(r)
    passed = {iid: all(ok[s.id] for s in steps) for iid, steps in traj.items()}
    trajectory = 100.0 * sum(len(traj[i]) for i, p in passed.items() if p) / n
    by_bench: dict[str, dict[str, float]] = defaultdict(lambda: {"rows": 0, "N": 0.0, "D": 0.0})
    for iid, steps in traj.items():
        steps = sorted(steps, key=lambda s: s.step_index)
        high = step_costs(steps, ["high"] * len(steps))
        if all(pred[s.id] is not None and 0 <= pred[s.id] <= 3 for s in steps):  # type: ignore[operator]
            mine = step_costs(steps, [TIERS[pred[s.id]] for s in steps])  # type: ignore[index]
        else:  # an errored prediction: its step is charged at the high tier
            mine = step_costs(steps, [TIERS[pred[s.id]] if pred[s.id] is not None else "high" for s in steps])  # type: ignore[index]
        b = by_bench[steps[0].benchmark]
        b["rows"] += len(steps)
        b["D"] += sum(high)
        b["N"] += sum(h - m for h, m in zip(high, mine, strict=True)) if passed[iid] else -sum(mine)
    savings = sum((b["rows"] / n) * 100.0 * b["N"] / b["D"] for b in by_bench.values() if b["D"] > 0)
    parts = [case_pass, exact, trajectory, savings]
    combined = float("nan") if any(math.isnan(x) for x in parts) else sum(parts) / 4
    return {"case_pass": case_pass, "exact_match": exact, "trajectory_pass": trajectory, "cost_savings": savings,
            "combined": combined, "n": n, "trajectories": len(traj),
            "per_benchmark": {k: {"rows": v["rows"], "savings_pct": 100.0 * v["N"] / v["D"] if v["D"] else float("nan")}
                              for k, v in by_bench.items()}}


def tier_targets() -> tuple[Any, ...]:
    """The four tiers as route targets, described by their prices."""
    from ..types import CostModel, TargetInfo, TargetKind

    return tuple(TargetInfo(name=t, kind=TargetKind.MODEL, description=f"{t} tier",
                            cost=CostModel(input_per_mtok=TIER_PRICES[t][1], output_per_mtok=TIER_PRICES[t][2]),
                            quality=(i + 1) / 4) for i, t in enumerate(TIERS))


def predict_tiers(rows: Sequence[BankRow], kind: str, params: Mapping[str, Any], *, seed: int = 0) -> tuple[dict[str, int | None], list[float]]:
    """Tier-id predictions of one router: ``gold`` (upper bound), ``always`` (params.tier), ``random``,
    or any registered router over the four tier targets (it sees the last message as the query and the
    whole prefix as messages). A router that raises yields an errored (None) prediction for that row."""
    import random
    import time

    from ..routers.registry import create_router
    from ..types import Message, RouteContext

    lat: list[float] = []
    if kind == "gold":
        return {r.id: r.target_tier_id for r in rows}, lat
    if kind == "always":
        tier = params.get("tier", "high")
        if tier not in TIERS:
            raise ConfigError(f"always router: tier must be one of {', '.join(TIERS)}, not {tier!r}")
        return {r.id: TIERS.index(tier) for r in rows}, lat
    if kind == "random":
        rng = random.Random(seed)
        return {r.id: rng.randrange(4) for r in rows}, lat
    router = create_router(kind, params)
    cands = tier_targets()
    out: dict[str, int | None] = {}
    for r in rows:
        msgs = tuple(Message(role=m.get("role", "user") if m.get("role") in ("user", "assistant", "system", "tool") else "user",
                             content=str(m.get("content") or "")) for m in r.messages)
        ctx = RouteContext(query=msgs[-1].content if msgs else "", candidates=cands, messages=msgs,
                           input=msgs[0].content if msgs else "", step=r.step_index)
        t = time.perf_counter()
        try:
            out[r.id] = TIERS.index(router.route(ctx).targets[0])
        except Exception:  # noqa: BLE001 - an errored prediction is scored as a failure, by the benchmark's rule
            out[r.id] = None
        lat.append((time.perf_counter() - t) * 1e3)
    return out, lat
