"""Orchestration overhead: a routed 3-node loop run for 1,000 steps, crossroads vs. raw LangGraph.

Both graphs have the same state schema, the same node work and the same routing rule (loop back
to the first node until 1,000 node runs, then END). Printed: best-of-N wall times and ratios
against the raw LangGraph baseline measured in the same run. Targets: <= 1.15x without tracing,
<= 1.3x with tracing to SQLite.

    python benchmarks/orchestration_overhead.py [--steps 1000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from langgraph.graph import END as LG_END
from langgraph.graph import START as LG_START
from langgraph.graph import StateGraph

from crossroads import END, Flow, Router, SQLRecorder, agent
from crossroads.orchestrator.state import FlowState


def work(name: str, text: str) -> str:
    return f"{name}:{len(text)}"


def raw_langgraph(steps: int):
    def node(name):
        def fn(state):
            out = work(name, state.get("output") or state["input"])
            return {"messages": [{"role": "assistant", "content": out, "name": name}], "output": out,
                    "steps": 1, "cost_usd": 0.0}
        return fn

    def route(state):
        return "a" if state.get("steps", 0) < steps else LG_END

    g = StateGraph(FlowState)
    for n in "abc":
        g.add_node(n, node(n))
    g.add_edge(LG_START, "a")
    g.add_edge("a", "b")
    g.add_edge("b", "c")
    g.add_conditional_edges("c", route, ["a", LG_END])
    app = g.compile()

    def run():
        return app.invoke({"run_id": "", "input": "go", "metadata": {}, "output": None,
                           "messages": [{"role": "user", "content": "go", "name": None}]},
                          {"recursion_limit": steps * 2 + 10})
    return run


class LoopRouter(Router):
    name = "bench-loop"

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps = steps

    def route(self, ctx):
        again = ctx.step < self.steps
        return self.decide({"a": 1.0 if again else 0.0, END: 0.0 if again else 1.0})


def crossroads_flow(steps: int, recorder=None):
    flow = Flow("bench", max_steps=steps + 3)
    def node_fn(name):
        return lambda text: work(name, text)

    for n in "abc":
        flow.add(agent(n, node_fn(n)))
    flow.edge("__start__", "a").edge("a", "b").edge("b", "c")
    flow.route("c", LoopRouter(steps), candidates=["a", END])
    app = flow.compile(recorder=recorder)
    return lambda: app.invoke("go"), app


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    steps = args.steps - args.steps % 3  # whole loops of a -> b -> c

    with tempfile.TemporaryDirectory() as d:
        rec = SQLRecorder(str(Path(d) / "bench.db"))
        traced, _ = crossroads_flow(steps, rec)

        def traced_and_flushed():
            traced()
            rec.flush()  # count the trace writes too

        variants = {"base": raw_langgraph(steps), "plain": crossroads_flow(steps)[0], "traced": traced_and_flushed}
        for fn in variants.values():
            fn()  # warm-up
        times: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(args.repeats):  # interleaved, so machine drift hits every variant alike
            for name, fn in variants.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        rec.close()
    base, t_plain, t_traced = (min(times[k]) for k in ("base", "plain", "traced"))
    result = {
        "steps": steps,
        "langgraph_s": round(base, 4),
        "crossroads_s": round(t_plain, 4),
        "crossroads_traced_s": round(t_traced, 4),
        "ratio_untraced": round(t_plain / base, 3),
        "ratio_traced": round(t_traced / base, 3),
        "target_untraced": 1.15,
        "target_traced": 1.3,
    }
    print(f"routed 3-node loop, {steps} steps, best of {args.repeats} interleaved repetitions")
    print(f"  raw LangGraph (baseline) : {base * 1e3:8.1f} ms")
    print(f"  crossroads, no tracing   : {t_plain * 1e3:8.1f} ms  ratio {result['ratio_untraced']:.3f}x (target <= 1.15x)")
    print(f"  crossroads, SQLite trace : {t_traced * 1e3:8.1f} ms  ratio {result['ratio_traced']:.3f}x (target <= 1.3x)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
