"""Eval reports: Markdown tables plus PNG plots (matplotlib, headless)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

__all__ = ["write_report"]


def _f(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if isinstance(x, (list, tuple)) and len(x) == 2:
        return f"[{_f(x[0], digits)}, {_f(x[1], digits)}]"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _query_section(run: dict[str, Any], out: Path) -> list[str]:
    res = run["results"]
    routers = res["routers"]
    two = any("apgr" in m for m in routers.values())
    lines = [f"Split: {res.get('split', 'seeded split')}. Best single model (chosen on train): "
             f"**{res['best_single_model']}**, test quality {_f(res['best_single_quality'])}; costs are relative to "
             f"its cost on the test rows (${_f(res['reference_cost_usd'], 4)}). Train rows: {res['n_train']}, "
             f"test rows: {res['n_test']}.", "",
             f"Protocol: {res.get('protocol', '—')}. Headline points (best quality; best quality at ≤ 0.5 cost) "
             "are chosen on the validation slice and reported on test once, with bootstrap 95% CIs; the curve "
             "(AIQ, APGR, cost to reach) uses every setting on test.", "",
             f"Cost basis: {res.get('cost_basis', 'input-only')}.", "",
             f"AIQ (RouterBench `calc_AIQ`): every router's hull extended flat to the run's largest hull cost "
             f"{_f(res.get('aiq_max_cost'), 3)}; comparable within this run only. Cost to reach: lowest cost on the "
             "router's achievable curve (measured points, or the hull between them: column 'via').", ""]
    head = ("| router | registered as | best quality [95% CI] | at cost | quality at ≤ 0.5 cost [95% CI] | at cost | AIQ | "
            "cost to 95% (via) | cost to 100% |")
    sep = "|---|---|---|---|---|---|---|---|---|"
    if two:
        head += " APGR | strong share for 50% PGR | for 80% PGR |"
        sep += "---|---|---|"
    head += " train s | decision p50 / p99 ms |"
    sep += "---|---|"
    lines += [head, sep]
    for name, m in routers.items():
        row = (f"| {name} | {m.get('registered_as', '—')} | {_f(m['best_quality'])} {_f(m['best_quality_ci95'])} | "
               f"{_f(m['best_quality_cost'], 2)} | {_f(m['quality_at_half_cost'])} {_f(m.get('quality_at_half_cost_ci95'))} | "
               f"{_f(m['quality_at_half_cost_cost'], 2)} | {_f(m['aiq'])} | "
               f"{_f(m['cost_to_95pct_best_single'], 3)} ({m.get('cost_to_95pct_via', '—')}) | "
               f"{_f(m['cost_to_100pct_best_single'], 3)} |")
        if two:
            row += f" {_f(m.get('apgr'))} | {_f(m.get('strong_share_for_50pct_pgr'))} | {_f(m.get('strong_share_for_80pct_pgr'))} |"
        row += f" {_f(m['train_s'], 1)} | {_f(m['latency_p50_ms'], 1)} / {_f(m['latency_p99_ms'], 1)} |"
        lines.append(row)
    evalonly = [n for n, m in routers.items() if m.get("registered_as") == "eval-only"]
    if evalonly:
        lines += ["", f"Eval-only (not a deployable router): {', '.join(evalonly)}."]
    loaded = {n: m for n, m in routers.items() if m.get("loaded_from")}
    if loaded:
        lines += ["", "Scored from trained files (trained outside this run, so no train s): "
                  + "; ".join(f"{n} ← `{m['loaded_from']}` (sha256 {str(m.get('file_sha256', ''))[:12]})"
                              for n, m in loaded.items())
                  + ". A file trained on rows of this run's test split scores too high: train it on the suite's "
                  "training rows only."]
        for n, m in loaded.items():
            seen = m.get("test_rows_in_training_file")
            if seen:
                lines.append(f"**Warning:** {n} was trained on {seen} of the {res['n_test']} test rows (its kNN "
                             "file holds their embeddings): its figures are inflated.")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for name, m in routers.items():
        pts = sorted(m["points"], key=lambda p: p["cost"])
        xs, ys = [p["cost"] for p in pts], [p["quality"] for p in pts]
        if len(pts) > 1:
            ax.plot(xs, ys, marker="o", markersize=3, label=name)
        else:
            ax.scatter(xs, ys, marker="*" if name in ("oracle", "best_single") else "s", s=80, label=name, zorder=3)
    ax.axvline(0.5, color="grey", ls=":", lw=1)
    ax.axhline(res["best_single_quality"], color="grey", ls="--", lw=1)
    ax.set_xlabel("cost relative to the best single model")
    ax.set_ylabel("mean quality")
    ax.set_xscale("log")
    ax.set_title(f"{run['suite']}: cost-quality")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "cost_quality.png", dpi=120)
    plt.close(fig)
    lines += ["", "![cost-quality curves](cost_quality.png)"]
    return lines


def _selection_section(run: dict[str, Any], out: Path) -> list[str]:
    res = run["results"]
    routers = res["routers"]
    rows = (f"{res.get('agents')} agents; fit rows {res.get('n_fit', res.get('n_train'))}, validation rows "
            f"{res.get('n_validation', '—')}, test rows {res.get('n_test')} (out-of-scope: {res.get('n_test_oos', '—')}).")
    how = ("Every router is the registered router object (its type in brackets), trained on the fit rows, its "
           "out-of-scope threshold calibrated on the validation rows for the stated precision target; top-1 counts "
           "out-of-scope rows (right only when the router says out of scope). "
           + ("Conflict rate: " + str(res["conflict"]) + "." if res.get("conflict") else ""))
    lines = [rows, "", f"Protocol: {res.get('protocol', 'train -> test')}.", "", how, "",
             "| router | top-1 [95% CI] | in-scope top-1 | set accuracy | mean set size | multi-agent share | OOS precision | OOS recall | OOS threshold | decision p50 / p99 ms |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, m in routers.items():
        multi = m.get("multi_agent_share", m.get("conflict_rate"))
        lines.append(f"| {name} ({m.get('router', '')}) | {_f(m['top1_accuracy'], 4)} {_f(m.get('top1_ci95'), 4)} | "
                     f"{_f(m['in_scope_top1_accuracy'], 4)} | {_f(m['set_accuracy'], 4)} | {_f(m['mean_set_size'], 2)} | "
                     f"{_f(multi, 3)} | {_f(m['oos_precision'])} | {_f(m['oos_recall'])} | {_f(m.get('oos_threshold'))} | "
                     f"{_f(m.get('latency_p50_ms'), 1)} / {_f(m.get('latency_p99_ms'), 1)} |")
    cal = next((m["calibration"] for m in routers.values() if m.get("calibration")), None)
    if cal:
        note = (f"Out-of-scope calibration: precision target {cal.get('oos_precision_target')} at an out-of-scope "
                f"share of {cal.get('oos_prior') or 'the validation rows’ own'}, on {cal.get('rows')} validation rows "
                f"({cal.get('oos_rows')} out of scope).")
        lines += ["", note]
    best = max(routers, key=lambda k: routers[k]["top1_accuracy"])
    conf = routers[best].get("top_confusions") or []
    if conf:
        lines += ["", f"Most frequent confusions of {best} (gold → chosen):", "", "| gold | chosen | count |", "|---|---|---|"]
        lines += [f"| {c['gold']} | {c['chosen']} | {c['count']} |" for c in conf]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    names = list(routers)
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], [routers[n]["top1_accuracy"] for n in names], width=0.4, label="top-1")
    ax.bar([x + 0.2 for x in xs], [routers[n]["set_accuracy"] for n in names], width=0.4, label="set accuracy")
    ax.set_xticks(list(xs), names, rotation=20)
    ax.set_ylim(0, 1)
    ax.set_title(f"{run['suite']}: agent selection")
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(out / "selection.png", dpi=120)
    plt.close(fig)
    lines += ["", "![selection accuracy](selection.png)"]
    return lines


def _step_section(run: dict[str, Any], out: Path) -> list[str]:
    res = run["results"]
    routers = res["routers"]
    lines = [f"{res.get('n_rows')} steps in {res.get('trajectories')} trajectories (TwinRouterBench static-track scoring).", "",
             "| router | case pass % | exact match % | trajectory pass % | cost savings % | combined % | errored | decision p50 / p99 ms |",
             "|---|---|---|---|---|---|---|---|"]
    for name, m in routers.items():
        lines.append(f"| {name} | {_f(m['case_pass'], 1)} | {_f(m['exact_match'], 1)} | {_f(m['trajectory_pass'], 1)} | "
                     f"{_f(m['cost_savings'], 1)} | {_f(m['combined'], 1)} | {m.get('errored', 0)} | "
                     f"{_f(m.get('latency_p50_ms'), 2)} / {_f(m.get('latency_p99_ms'), 2)} |")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    names = list(routers)
    keys = ["case_pass", "exact_match", "trajectory_pass", "cost_savings", "combined"]
    w = 0.8 / len(keys)
    for j, k in enumerate(keys):
        ax.bar([i + (j - 2) * w for i in range(len(names))], [routers[n][k] for n in names], width=w, label=k)
    ax.set_xticks(range(len(names)), names, rotation=20)
    ax.set_ylabel("%")
    ax.set_title(f"{run['suite']}: step-level routing")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(out / "step_scores.png", dpi=120)
    plt.close(fig)
    return lines + ["", "![step-level scores](step_scores.png)"]


def _tool_graph_section(run: dict[str, Any], out: Path) -> list[str]:
    res = run["results"]
    head = ("| controller | correct | reached | silent failures | escalations | dead ends | LLM calls | LLM calls where a path existed | "
            "reroutes | tool calls | suboptimal hops | knowable-optimal paths | full-knowledge cost | recompute p99 ms |")
    sep = "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"

    def rows(block: dict[str, Any]) -> list[str]:
        return [f"| {name} | {m['correct']}/{m['n']} | {m['reached']} | {m['silent_failures']} | {m['escalations']} | "
                f"{m['dead_ends']} | {m['llm_calls']} | {m['llm_calls_on_feasible']} | {m['reroutes']} | {m['tool_calls']} | "
                f"{m['suboptimal_hops']} | {m['optimal_paths']}/{block['feasible']} | {m['oracle_cost_paths']}/{block['feasible']} | "
                f"{_f(m.get('recompute_p99_ms'), 3)} |" for name, m in block["routers"].items()]

    lines = [("No controller is told which tools fail: each learns it by calling them and from a lagging probe, a "
              "noisy error-rate monitor and a status page. Every figure is computed by the evaluator from the record "
              "of tool calls, with networkx on the true graph. Knowable-optimal: every call was on a cheapest path "
              "given what was known then; full-knowledge cost: the path costs what the cheapest path does when every "
              "failure is known."), "",
             f"{res['n']} scenarios, {res['feasible']} with a feasible path.", "", head, sep, *rows(res)]
    wrong = {k: [s["id"] for s in m["scenarios"] if not s["correct"]] for k, m in res["routers"].items()}
    lines += ["", "Wrong outcomes: " + "; ".join(f"{k}: {', '.join(v) or 'none'}" for k, v in wrong.items())]
    for what, note in (res.get("skipped") or {}).items():
        lines += ["", f"{what}: {note}"]
    gen = res.get("generated")
    if gen:
        lines += ["", f"Generated scenarios (compound, late and tied failures): {gen['n']} ({gen['feasible']} feasible).", "",
                  head, sep, *rows(gen)]
    return lines


def _online_section(run: dict[str, Any], out: Path) -> list[str]:
    res = run["results"]
    routers = res["routers"]
    lines = [(f"A stream of {res['n']} interleaved prompts; every decision is followed by the replayed outcome. "
              f"Best single model {res['best_single_model']} (quality {_f(res['best_single_quality'])}); costs relative to it. "
              f"Windows of {res['window']} decisions."), "",
             "| router | stream quality | stream cost | first-window quality | last-window quality | last-window cost |",
             "|---|---|---|---|---|---|"]
    for name, m in routers.items():
        lines.append(f"| {name} | {_f(m['quality'])} | {_f(m['cost'])} | {_f(m['first_window_quality'])} | "
                     f"{_f(m['last_window_quality'])} | {_f(m['last_window_cost'])} |")
    lat = res.get("latency_learning_on_off")
    if lat:
        lines += ["", (f"Pheromone decision latency under concurrent requests: learning off p50 {_f(lat['p50_ms_off'])} ms / "
                       f"p99 {_f(lat['p99_ms_off'])} ms; learning on p50 {_f(lat['p50_ms_on'])} ms / p99 {_f(lat['p99_ms_on'])} ms.")]
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.5))
    for name, m in routers.items():
        a1.plot(m["curve_quality"], label=name)
        a2.plot(m["curve_cost"], label=name)
    a1.set_title("windowed quality over the stream")
    a2.set_title("windowed cost (relative to best single)")
    for a in (a1, a2):
        a.set_xlabel("stream position (sampled)")
        a.grid(alpha=0.3)
    a1.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "learning_curves.png", dpi=120)
    plt.close(fig)
    return lines + ["", "![learning curves](learning_curves.png)"]


def _skill_section(run: dict[str, Any]) -> list[str]:
    res = run["results"]
    lines = [f"{res.get('n_skills')} skills; {res.get('n_train')} training queries (rerank and abstain threshold "
             f"fitted there), {res.get('n_test')} test queries. Recall@k, MRR and nDCG@10 over test queries that "
             "have a gold skill (exact name match); abstaining over all test queries; latency per decision with "
             "the embedding cache off.", "",
             "| router | recall@1 | recall@5 | recall@10 | MRR | nDCG@10 | abstain P | abstain R | decision acc | "
             "p50 ms | p99 ms | index build s |", "|---" * 12 + "|"]
    for name, m in res["routers"].items():
        lines.append("| " + " | ".join([name] + [_f(m.get(k)) for k in (
            "recall@1", "recall@5", "recall@10", "mrr", "ndcg@10", "abstain_precision", "abstain_recall",
            "decision_accuracy")] + [_f(m.get("latency_p50_ms"), 1), _f(m.get("latency_p99_ms"), 1),
                                     _f(m.get("index_build_s"), 1)]) + " |")
    return lines + [""]


def write_report(run: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``report.md`` (and its PNGs) for a stored eval run; returns the Markdown path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"# {run['suite']} — eval run {run['id'][:12]}", "",
             f"Kind: {run['kind']}; code {run['code_version']}; {run['duration_s']:.1f} s.", "",
             "Data: " + ", ".join(f"`{k}` sha256 {v[:16]}…" for k, v in run["data_hashes"].items()), ""]
    if run["kind"] == "query_routing":
        lines += _query_section(run, out)
    elif run["kind"] == "step_routing":
        lines += _step_section(run, out)
    elif run["kind"] == "tool_graph":
        lines += _tool_graph_section(run, out)
    elif run["kind"] == "online_routing":
        lines += _online_section(run, out)
    elif run["kind"] == "skill_routing":
        lines += _skill_section(run)
    else:
        lines += _selection_section(run, out)
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
