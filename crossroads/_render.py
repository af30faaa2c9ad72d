"""Rich rendering of a run (used by ``crossroads trace show``)."""

from __future__ import annotations

import json
from typing import Any

from rich.markup import escape
from rich.tree import Tree

from .types import END, START

__all__ = ["render_run"]


def _short(text: str | None, n: int = 120) -> str:
    text = (text or "").replace("\n", " ")
    return escape(text if len(text) <= n else text[: n - 1] + "…")


def _node(name: str) -> str:
    return {START: "START", END: "END"}.get(name, name)


def render_run(run: dict[str, Any]) -> Tree:
    """A tree: the run, then its decisions, steps and events in time order."""
    dur = ((run.get("ended_at") or run["started_at"]) - run["started_at"]) * 1e3
    colour = {"succeeded": "green", "failed": "red", "running": "yellow", "interrupted": "yellow"}.get(run["status"], "white")
    root = Tree(
        f"[bold]run {run['id']}[/]  flow={escape(run['flow'])}  [{colour}]{run['status']}[/]  "
        f"{len(run['steps'])} steps  {len(run['decisions'])} decisions  ${run['cost_usd']:.6f}  {dur:.1f} ms"
    )
    root.add(f"[dim]input:[/] {_short(run['input'])}")
    items: list[tuple[float, str, dict[str, Any]]] = []
    items += [(d["created_at"], "decision", d) for d in run["decisions"]]
    items += [(s["started_at"], "step", s) for s in run["steps"]]
    items += [(e["created_at"], "event", e) for e in run["events"]]
    calls_by_step: dict[str, list[dict[str, Any]]] = {}
    for c in run["calls"]:
        calls_by_step.setdefault(c.get("step_id") or "", []).append(c)
    for _, kind, rec in sorted(items, key=lambda x: x[0]):
        if kind == "decision":
            chosen = ", ".join(_node(c) for c in rec["chosen"])
            branch = root.add(
                f"[bold cyan]decision[/] at {escape(_node(rec['source']))} by [bold]{escape(rec['router'])}[/] → "
                f"[bold green]{escape(chosen)}[/]  ({rec['latency_ms']:.2f} ms, ${rec['cost_usd']:.6f})"
            )
            if rec["rationale"]:
                branch.add(f"[dim]rationale:[/] {_short(rec['rationale'], 300)}")
            cands = branch.add("[dim]candidates[/]")
            for c in sorted(rec["candidates"], key=lambda c: -(c["score"] if c["score"] is not None else float("-inf"))):
                mark = "[green]✔[/]" if c["name"] in rec["chosen"] else " "
                score = "n/a" if c["score"] is None else f"{c['score']:.4f}"
                cands.add(f"{mark} {escape(_node(c['name']))}  score={score}")
            for c in calls_by_step.get(rec["id"], []):  # the router's own model calls (LLM routers)
                branch.add(f"[dim]router call[/] {escape(c['target'])} model={escape(c.get('model') or '')}  tokens "
                           f"{c['tokens_in']}→{c['tokens_out']}  ${c['cost_usd']:.6f}  {c['latency_ms']:.2f} ms")
            if rec.get("metadata"):
                branch.add(f"[dim]evidence:[/] {_short(json.dumps(rec['metadata'], default=str), 300)}")
        elif kind == "step":
            colour = "green" if rec["status"] == "succeeded" else "red"
            attempt = f"  attempt {rec['attempt']}" if rec.get("attempt", 1) > 1 else ""
            step = root.add(
                f"[bold]step[/] {escape(rec['node'])} ({rec['kind']})  [{colour}]{rec['status']}[/]{attempt}  "
                f"{rec['latency_ms']:.2f} ms  ${rec['cost_usd']:.6f}"
            )
            step.add(f"[dim]in:[/]  {_short(rec['input_summary'])}")
            if rec["status"] == "succeeded":
                step.add(f"[dim]out:[/] {_short(rec['output_summary'])}")
            else:
                step.add(f"[red]error:[/] {_short(rec['error'], 300)}")
            for c in calls_by_step.get(rec["id"], []):
                model = f" model={escape(c['model'])}" if c.get("model") else ""
                step.add(f"[dim]call[/] {escape(c['target'])}{model}  tokens {c['tokens_in']}→{c['tokens_out']}  "
                         f"${c['cost_usd']:.6f}  {c['latency_ms']:.2f} ms" + (f"  [red]{_short(c['error'])}[/]" if c.get("error") else ""))
        else:
            root.add(f"[bold magenta]event[/] {escape(rec['kind'])}" + (f" target={escape(rec['target'])}" if rec.get("target") else "")
                     + f"  {_short(json.dumps(rec['detail'], default=str), 200)}")
    if run.get("output") is not None:
        root.add(f"[dim]output:[/] {_short(run['output'], 300)}")
    if run.get("error"):
        root.add(f"[red]error:[/] {_short(run['error'], 300)}")
    return root
