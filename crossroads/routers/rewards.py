"""Rule-based rewards for training LLM routers (used by the training issue; unit-tested on hand-made completions).

- :func:`router_r1_reward`: Router-R1 (ulab-uiuc/Router-R1, 2025; ``docs/methods.md``): a format reward,
  an outcome reward (exact match of the ``<answer>``) and a cost reward, combined as
  ``(outcome + format) * (1 - c) + cost_reward * c``. As in the paper's hierarchy, a completion with a
  format violation gets ``format = -1`` and its outcome and cost rewards are set to 0.
- :func:`router_r1_replay_reward`: the same reward for ONE policy turn over a replayed pool (recorded
  outcomes and prices), as Router-R1 is trained offline on a query-routing dataset: the recorded score of
  the routed model stands in for the exact match of the final answer (see its docstring).
- :func:`agent_selection_reward`: the reasoning router's (TCAndon-Router) target, "is the gold agent in
  the chosen set", with the same format convention and an optional penalty per extra agent.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import RouterOutputError

__all__ = ["R1Trajectory", "agent_selection_reward", "exact_match", "normalize_answer", "parse_r1_completion",
           "router_r1_replay_reward", "router_r1_reward"]

_TAG = re.compile(r"<(/?)(think|search|information|answer)>")
_TURN = re.compile(r"\s*<think>[^<]*</think>\s*(?:<search>[^<]*</search>|<answer>[^<]*</answer>)\s*")
"""One policy turn as the run-time grammar (:meth:`RouterR1Router.grammar`) allows it."""


def normalize_answer(text: str) -> str:
    """SQuAD/NQ answer normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str | Sequence[str]) -> float:
    """1.0 when the normalised prediction equals any normalised gold answer, else 0.0."""
    golds = [gold] if isinstance(gold, str) else list(gold)
    p = normalize_answer(prediction)
    return 1.0 if any(p == normalize_answer(g) for g in golds) else 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class R1Trajectory:
    """A parsed Router-R1 completion: its route actions, answer and format verdict."""

    format_ok: bool
    answer: str | None = None
    routes: tuple[tuple[str, str], ...] = ()
    """(model, sub-query) per ``<search>``."""
    problems: tuple[str, ...] = field(default_factory=tuple)


def parse_r1_completion(completion: str, *, pool: Sequence[str] | None = None) -> R1Trajectory:
    """Check a whole Router-R1 trajectory: tags ``<think>``, ``<search>model: query</search>`` (each
    followed by the environment's ``<information>``), and exactly one final ``<answer>``; no nesting,
    nothing after the answer; with ``pool``, routed models must be in it."""
    problems: list[str] = []
    routes: list[tuple[str, str]] = []
    answer: str | None = None
    spans: list[tuple[str, str]] = []  # (tag, content)
    open_tag: str | None = None
    open_end = 0
    last_close = 0
    for m in _TAG.finditer(completion):
        closing, tag = m.group(1) == "/", m.group(2)
        if not closing:
            if open_tag is not None:
                problems.append(f"<{tag}> opened inside <{open_tag}>")
                break
            open_tag, open_end = tag, m.end()
        else:
            if open_tag != tag:
                problems.append(f"</{tag}> without a matching <{tag}>")
                break
            spans.append((tag, completion[open_end:m.start()]))
            open_tag, last_close = None, m.end()
    if open_tag is not None and not problems:
        problems.append(f"<{open_tag}> is never closed")
    if not problems:
        answers = [c for t, c in spans if t == "answer"]
        if len(answers) != 1:
            problems.append(f"{len(answers)} <answer> blocks; exactly one is required")
        elif spans[-1][0] != "answer":
            problems.append("<answer> is not the last block")
        elif completion[last_close:].strip():
            problems.append("text after </answer>")
        else:
            answer = answers[0].strip()
            if not answer:
                problems.append("empty <answer>")
        for i, (tag, content) in enumerate(spans):
            if tag != "search":
                continue
            model, sep, query = content.partition(":")
            if not sep or not model.strip() or not query.strip():
                problems.append(f"<search> must be 'model: query', got {content.strip()[:80]!r}")
                continue
            if pool is not None and model.strip() not in pool:
                problems.append(f"<search> names {model.strip()!r}, not in the pool")
            routes.append((model.strip(), query.strip()))
            if i + 1 >= len(spans) or spans[i + 1][0] != "information":
                problems.append("a <search> is not followed by <information>")
    return R1Trajectory(format_ok=not problems, answer=answer, routes=tuple(routes), problems=tuple(problems))


def router_r1_reward(
    completion: str,
    gold: str | Sequence[str],
    *,
    cost_usd: float = 0.0,
    cost_scale_usd: float = 1.0,
    c: float = 0.0,
    pool: Sequence[str] | None = None,
) -> float:
    """Router-R1's rule-based reward: ``(outcome + format) * (1 - c) + cost_reward * c``.

    ``format`` is 0 for a well-formed trajectory (:func:`parse_r1_completion`) and -1 otherwise;
    ``outcome`` is the exact match of the answer; ``cost_reward = 1 - min(cost_usd / cost_scale_usd, 1)``
    (cheaper is better). A format violation zeroes outcome and cost rewards (the paper's hierarchy).
    """
    _check_weights(c, cost_scale_usd)
    traj = parse_r1_completion(completion, pool=pool)
    if not traj.format_ok:
        return _combine(None, 0.0, cost_scale_usd, c)
    return _combine(exact_match(traj.answer or "", gold), cost_usd, cost_scale_usd, c)


def _check_weights(c: float, cost_scale_usd: float) -> None:
    if not 0.0 <= c <= 1.0:
        raise ValueError(f"c (the cost weight) must be in [0, 1], got {c}")
    if cost_scale_usd <= 0:
        raise ValueError(f"cost_scale_usd must be > 0, got {cost_scale_usd}")


def _combine(outcome: float | None, cost_usd: float, cost_scale_usd: float, c: float) -> float:
    """``(outcome + format) * (1 - c) + cost_reward * c``; ``outcome=None`` is a format violation
    (format -1, outcome and cost rewards 0)."""
    if outcome is None:
        return -1.0 * (1.0 - c)
    cost_reward = 1.0 - min(max(cost_usd, 0.0) / cost_scale_usd, 1.0)
    return (outcome + 0.0) * (1.0 - c) + cost_reward * c


def router_r1_replay_reward(
    completion: str,
    *,
    scores: Mapping[str, float],
    costs: Mapping[str, float],
    cost_scale_usd: float,
    c: float = 0.0,
    pool: Sequence[str] | None = None,
) -> float:
    """Router-R1's reward for one policy turn over a replayed pool: ``(outcome + format) * (1 - c) +
    cost_reward * c`` from the row's recorded ``scores`` and ``costs`` (USD) per model.

    - format: the turn must be what the run-time grammar allows, ``<think>...</think>`` then one
      ``<search>MODEL: sub-query</search>`` (MODEL in ``pool``, default the scored models; parsed by
      :func:`~crossroads.routers.router_r1.parse_r1_action`, as at run time) or one
      ``<answer>...</answer>``, nothing else; otherwise format = -1 and outcome and cost rewards are 0.
    - outcome: the routed model's recorded score. In a replayed pool the consulted model's reply is
      its recorded outcome, and the suite scores a Router-R1 episode by the recorded score of the
      model consulted last, so the recorded score stands in for the exact match of the final answer.
      An answer without consulting any model has outcome 0 (the replay has no gold answer to match;
      the suite scores it 0 too) and costs nothing.
    - cost_reward: ``1 - min(cost / cost_scale_usd, 1)`` (e.g. ``cost_scale_usd`` = the row's most
      expensive model: it gets 0, a free answer 1).
    """
    from ..errors import RouterOutputError
    from .router_r1 import parse_r1_action

    _check_weights(c, cost_scale_usd)
    names = list(pool) if pool is not None else list(scores)
    if not _TURN.fullmatch(completion):
        return _combine(None, 0.0, cost_scale_usd, c)
    try:
        kind, _, what, _ = parse_r1_action(completion, names)
    except RouterOutputError:
        return _combine(None, 0.0, cost_scale_usd, c)
    if kind == "answer":
        return _combine(0.0, 0.0, cost_scale_usd, c)
    if what not in scores or what not in costs:
        raise ValueError(f"router_r1_replay_reward: pool model {what!r} has no recorded score/cost in this row")
    return _combine(float(scores[what]), float(costs[what]), cost_scale_usd, c)


def agent_selection_reward(
    completion: str,
    gold: str,
    *,
    candidates: Sequence[str],
    k: int = 3,
    oos_label: str = "oos",
    size_penalty: float = 0.0,
) -> float:
    """Reward for a reasoning-router completion (``{"reasoning", "agents"}``): -1 for a garbled one
    (:func:`~crossroads.routers.reasoning.parse_agent_set` fails), else 1 when ``gold`` is in the set
    (``gold == oos_label`` matches out-of-scope), minus ``size_penalty`` per agent beyond the first."""
    from .reasoning import parse_agent_set

    try:
        parsed = parse_agent_set(completion, list(candidates), k=k, allow_oos=True)
    except RouterOutputError:
        return -1.0
    hit = (gold == oos_label) if parsed.out_of_scope else (gold in parsed.chosen)
    return (1.0 if hit else 0.0) - size_penalty * (len(parsed.chosen) - 1)
