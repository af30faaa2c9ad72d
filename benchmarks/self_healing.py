"""Self-healing path recompute on a 1,000-node tool graph, against two networkx baselines in the same run.

The graph is layered (100 layers x 10 tools, consecutive layers fully connected: 9,900 edges); each
decision starts at a random tool with 1-4 random tools failed. Figures (p50/p99 ms per decision):

- warm: the monitors' penalties are unchanged, so the router's cached search index is reused;
- cold: every decision comes with a new monitor penalty (one tool's latency penalty changed): the
  router runs plain A* on its penalty-free index (still an admissible heuristic);
- rebuild: the second decision in a new penalty state, which builds that state's index;
- probed: decisions through a ProbeMonitor over every tool (a thread pool), with probe results cached
  per health interval (``--interval`` seconds) and, for contrast, uncached (a probe round per decision).

Baselines, both on the same penalised weights: networkx A* with the heuristic the router uses
(the exact distance to the goal with no failures and no penalties, computed once), and networkx
Dijkstra with a weight function that hides the failed tools (not ``restricted_view``). Every path cost is checked against both.

    python benchmarks/self_healing.py [--layers 100] [--width 10] [--trials 1000] [--cold 200] [--probed 200]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

import networkx as nx

from crossroads.routers.self_healing import ProbeMonitor, SelfHealingRouter, ToolGraph


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return round(s[min(len(s) - 1, max(0, round(q / 100 * len(s)) - 1))], 4)


def weight_fn(failed: set[str], pen: Mapping[str, float]) -> Callable[[str, str, dict[str, Any]], float | None]:
    def w(u: str, v: str, d: dict[str, Any]) -> float | None:
        return None if v in failed else d["weight"] * (1.0 + pen.get(v, 0.0))
    return w


class AStarBaseline:
    """networkx A* with the router's heuristic: the exact distance to the goal with no failures and no
    penalties (cached once; penalties only lengthen paths, so it stays admissible)."""

    def __init__(self, dg: nx.DiGraph, goal: str) -> None:
        self.dg, self.goal = dg, goal
        self.h = nx.single_source_dijkstra_path_length(dg.reverse(copy=True), goal)

    def __call__(self, src: str, failed: set[str], pen: Mapping[str, float]) -> float | None:
        h = self.h
        try:
            return float(nx.astar_path_length(self.dg, src, self.goal, heuristic=lambda n, _g: h.get(n, 0.0),
                                              weight=weight_fn(failed, pen)))
        except nx.NetworkXNoPath:
            return None


def dijkstra(dg: nx.DiGraph, src: str, goal: str, failed: set[str], pen: Mapping[str, float]) -> float | None:
    try:
        return float(nx.dijkstra_path_length(dg, src, goal, weight=weight_fn(failed, pen)))
    except nx.NetworkXNoPath:
        return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=100)
    ap.add_argument("--width", type=int, default=10)
    ap.add_argument("--trials", type=int, default=1000, help="warm decisions")
    ap.add_argument("--cold", type=int, default=200, help="decisions after a penalty change")
    ap.add_argument("--probed", type=int, default=200, help="decisions through a probe monitor")
    ap.add_argument("--interval", type=float, default=1.0, help="probe health interval, seconds")
    args = ap.parse_args()
    rng = random.Random(0)
    layers = [["Start"]] + [[f"L{i}T{j}" for j in range(args.width)] for i in range(args.layers)] + [["Goal"]]
    edges = {(u, v): rng.uniform(0.1, 1.0) for a, b in itertools.pairwise(layers) for u in a for v in b}
    g = ToolGraph([n for layer in layers for n in layer], edges, "Start", "Goal")
    dg = nx.DiGraph()
    dg.add_weighted_edges_from((u, v, c) for (u, v), c in edges.items())
    tools = [n for n in g.nodes if n not in ("Start", "Goal")]

    def case() -> tuple[str, set[str]]:
        src = rng.choice(tools[: len(tools) // 2] + ["Start"])
        return src, set(rng.sample([t for t in tools if t != src], rng.randint(1, 4)))

    def timed(fn: Callable[..., Any], *a: Any, **k: Any) -> tuple[Any, float]:
        t = time.perf_counter()
        out = fn(*a, **k)
        return out, (time.perf_counter() - t) * 1e3

    def same(a: Any, b: float | None) -> bool:
        return (a is None) == (b is None) and (a is None or abs(a[1] - b) < 1e-9)  # type: ignore[operator]

    res: dict[str, Any] = {"nodes": len(g.nodes), "edges": len(edges)}
    # warm, cold and rebuild: the three methods interleaved per decision, to share the machine's noise
    for phase, n in (("warm", args.trials), ("cold", args.cold), ("rebuild", args.cold)):
        router = SelfHealingRouter(g)
        astar = AStarBaseline(dg, "Goal")
        pen: dict[str, float] = {}
        router.shortest_path("Start", penalties=pen)
        router.shortest_path("Start", penalties=pen)  # the penalty-free index, built once
        ours, theirs_a, theirs_d = [], [], []
        builds = router.index_builds
        for _ in range(n):
            src, failed = case()
            if phase != "warm":  # a monitor's latency penalty changed
                pen = {rng.choice(tools): round(rng.uniform(0.01, 2.0), 6)}
            if phase == "rebuild":  # the state's first decision (untimed); the timed one rebuilds the index
                router.shortest_path(src, blocked=failed, penalties=pen)
            mine, t0 = timed(router.shortest_path, src, blocked=failed, penalties=pen)
            a, t1 = timed(astar, src, failed, pen)
            d, t2 = timed(dijkstra, dg, src, "Goal", failed, pen)
            assert same(mine, a) and same(mine, d), (src, failed, mine, a, d)
            ours.append(t0)
            theirs_a.append(t1)
            theirs_d.append(t2)
        res[phase] = {"decisions": n, "index_builds": router.index_builds - builds,
                      "crossroads_p50_ms": pct(ours, 50), "crossroads_p99_ms": pct(ours, 99),
                      "nx_astar_p50_ms": pct(theirs_a, 50), "nx_astar_p99_ms": pct(theirs_a, 99),
                      "nx_dijkstra_p50_ms": pct(theirs_d, 50), "nx_dijkstra_p99_ms": pct(theirs_d, 99),
                      "ratio_p50_vs_astar": round(statistics.median(ours) / statistics.median(theirs_a), 4),
                      "ratio_p50_vs_dijkstra": round(statistics.median(ours) / statistics.median(theirs_d), 4)}
    # probed: decisions that gather the monitors' penalties themselves
    down = set(rng.sample(tools, 3))
    for label, interval in (("probed_cached", args.interval), ("probed_uncached", 0.0)):
        probe = ProbeMonitor(lambda t: t not in down, interval=interval)
        router = SelfHealingRouter(g, monitors=[probe])
        router.shortest_path("Start")
        lat = []
        for _ in range(args.probed):
            src, failed = case()
            _, ms = timed(router.shortest_path, src, blocked=failed)
            lat.append(ms)
        router.close()
        res[label] = {"decisions": args.probed, "interval_s": interval, "probe_rounds": probe.rounds - 1,
                      "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99)}
    res["costs_match_networkx"] = True
    print(f"{res['nodes']}-node graph, {res['edges']} edges (every path cost equals both baselines').")
    for name, m in (("warm", res["warm"]), ("cold (first decision after a penalty change)", res["cold"]),
                    ("rebuild (second decision: the state's index is built)", res["rebuild"])):
        print(f"  {name}: crossroads p50 {m['crossroads_p50_ms']} / p99 {m['crossroads_p99_ms']} ms; "
              f"networkx A* (same heuristic) {m['nx_astar_p50_ms']} / {m['nx_astar_p99_ms']} ms; "
              f"networkx Dijkstra (weight function) {m['nx_dijkstra_p50_ms']} / {m['nx_dijkstra_p99_ms']} ms; "
              f"p50 ratio {m['ratio_p50_vs_astar']}x vs A*, {m['ratio_p50_vs_dijkstra']}x vs Dijkstra; "
              f"{m['index_builds']} index builds")
    for label in ("probed_cached", "probed_uncached"):
        m = res[label]
        print(f"  {label} (interval {m['interval_s']} s, {m['probe_rounds']} probe rounds in {m['decisions']} decisions): "
              f"p50 {m['p50_ms']} / p99 {m['p99_ms']} ms")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
