"""Writes tests/data/trace_v1.db: a trace DB written by schema v1 (crossroads at commit b7ae448).

Run once against that commit's code (``PYTHONPATH=<checkout of b7ae448> python tests/data/make_trace_v1.py``);
the committed file is the fixture the migration tests upgrade. Deterministic content, real writers:
SQLRecorder, EvalStore and LangGraph's SqliteSaver checkpoints in the same file, as v1 wrote them.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

from crossroads import END, START, CallUsage, Flow, RulesRouter, SQLRecorder, TraceStore, agent
from crossroads.tracing import EvalStore, EventRecord
from crossroads.types import TargetResult

OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("trace_v1.db")


def main() -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(str(OUT) + suffix).unlink(missing_ok=True)
    store = TraceStore(OUT)
    rec = SQLRecorder(store)

    def billing(text: str) -> TargetResult:
        return TargetResult(output=f"billing answer to {text}",
                            calls=(CallUsage(target="billing", model="m-small", input_tokens=10, output_tokens=5,
                                             cost_usd=0.25),))

    def tech(text: str) -> TargetResult:
        return TargetResult(output=f"tech answer to {text}",
                            calls=(CallUsage(target="tech", model="m-big", input_tokens=20, output_tokens=8,
                                             cost_usd=0.5),))

    calls = {"n": 0}

    def flaky(text: str) -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("flaky failed once")
        return "recovered"

    flow = Flow("support").add(agent("billing", billing), agent("tech", tech))
    flow.route(START, RulesRouter(rules=[{"when": {"regex": "invoice|refund"}, "route": "billing"}], default="tech"),
               candidates=["billing", "tech"])
    app = flow.compile(recorder=rec, checkpointer=str(OUT))
    for i, q in enumerate(["refund my invoice", "wifi is down", "invoice copy", "reset password please"]):
        app.invoke(q, thread_id=f"t{i}", metadata={"n": str(i)})
    fl = Flow("flaky").add(agent("step", flaky))
    fl.edge(START, "step").edge("step", END)
    fapp = fl.compile(recorder=rec, checkpointer=str(OUT))
    try:
        fapp.invoke("try me", thread_id="flaky-1")
    except RuntimeError:
        pass
    rec.record(EventRecord(kind="learning_update", target="billing", detail={"reward": 1.0}))
    rec.flush()
    EvalStore(store).save({"id": "eval-v1-0001", "suite": "mini", "kind": "agent_selection", "created_at": 1.0e9,
                           "duration_s": 1.5, "code_version": "b7ae448", "config": {"limit": 3},
                           "data_hashes": {"x": "abc"}, "summary": {"best": "knn"}},
                          {"knn": {"top1_accuracy": 0.5}, "centroid": {"top1_accuracy": 0.25}})
    rec.close()
    store.close()
    conn = sqlite3.connect(OUT)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    for suffix in ("-wal", "-shm"):
        Path(str(OUT) + suffix).unlink(missing_ok=True)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
