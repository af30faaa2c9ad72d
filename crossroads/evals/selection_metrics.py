"""Agent-selection metrics as defined for TCAndon-Router (Tencent, 2026) in docs/routing-metrics.md
("Agent selection"): top-1 and set accuracy, mean set size, conflict rate, out-of-scope precision/recall.

Per utterance the router returns an ordered set of agents (its first is the top-1 choice) or the
out-of-scope label. Top-1 accuracy counts the first chosen agent, *including* out-of-scope rows (an
out-of-scope utterance is right only when the router says out of scope): that is CLINC150's headline
("accuracy over all 151 classes"). A conflict needs the agents' outputs: with them, the conflict rate
is the share of utterances where more than one agent was chosen and their outputs disagree; without
them only the multi-agent share (more than one agent chosen) is reported, never a conflict figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["selection_metrics"]


def selection_metrics(
    gold: Sequence[str],
    chosen: Sequence[Sequence[str]],
    *,
    outputs: Sequence[Mapping[str, str]] | None = None,
    oos_label: str = "oos",
) -> dict[str, Any]:
    """Top-1 accuracy (the first chosen agent; out-of-scope rows included), set accuracy (gold in the
    chosen set), mean set size, multi-agent share, conflict rate (only with ``outputs``: one mapping
    agent → output per utterance; ``None`` otherwise), out-of-scope precision/recall (NaN when
    undefined) and in-scope top-1 accuracy."""
    n = len(gold)
    if n == 0 or len(chosen) != n:
        raise ValueError("gold and chosen must be non-empty and of equal length")
    if outputs is not None and len(outputs) != n:
        raise ValueError("outputs must have one mapping per utterance")
    top1 = sum(1 for g, c in zip(gold, chosen, strict=True) if c and c[0] == g) / n
    set_acc = sum(1 for g, c in zip(gold, chosen, strict=True) if g in c) / n
    size = sum(len(c) for c in chosen) / n
    multi = [i for i, c in enumerate(chosen) if len(c) > 1]
    conflict: float | None = None
    if outputs is not None:
        missing = [(i, a) for i in multi for a in chosen[i] if a not in outputs[i]]
        if missing:
            i, a = missing[0]
            raise ValueError(f"utterance {i}: no output recorded for chosen agent {a!r}")
        conflict = sum(1 for i in multi if len({outputs[i][a] for a in chosen[i]}) > 1) / n
    pred_oos = [bool(c) and c[0] == oos_label for c in chosen]
    true_oos = [g == oos_label for g in gold]
    tp = sum(1 for p, t in zip(pred_oos, true_oos, strict=True) if p and t)
    oos_p = tp / sum(pred_oos) if sum(pred_oos) else float("nan")
    oos_r = tp / sum(true_oos) if sum(true_oos) else float("nan")
    in_scope = [i for i, t in enumerate(true_oos) if not t]
    in_top1 = sum(1 for i in in_scope if chosen[i] and chosen[i][0] == gold[i]) / len(in_scope) if in_scope else float("nan")
    return {"top1_accuracy": top1, "set_accuracy": set_acc, "mean_set_size": size, "multi_agent_share": len(multi) / n,
            "conflict_rate": conflict, "oos_precision": oos_p, "oos_recall": oos_r, "in_scope_top1_accuracy": in_top1,
            "n": n, "n_oos": sum(true_oos)}
