"""Build ``crossroads/data/skills/`` (the ``bfcl-skills`` suite's data) from BFCL v4.

Source: the Berkeley Function-Calling Leaderboard v4 data (gorilla-llm, Apache-2.0), the single-turn
categories. The pool is every distinct function (by name; the first definition seen wins) across those
categories; each query's gold skills are the function names of its ``possible_answer`` ground truth;
irrelevance queries (no function fits) have no gold and must be abstained on. Each query is assigned
to the ``train`` or ``test`` half by a hash of its id (stable across runs and machines).

    python scripts/vendor_bfcl_skills.py ../shared/data/tools/bfcl_v4
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import sys
from pathlib import Path

CATEGORIES = [
    "simple_python", "simple_java", "simple_javascript", "multiple", "parallel", "parallel_multiple",
    "live_simple", "live_multiple", "live_parallel", "live_parallel_multiple", "irrelevance", "live_irrelevance",
]
ABSTAIN = {"irrelevance", "live_irrelevance"}
OUT = Path(__file__).resolve().parents[1] / "crossroads" / "data" / "skills"


def _query_text(question: list) -> str:
    turn = question[0] if question and isinstance(question[0], list) else question
    return "\n".join(m["content"] for m in turn if m.get("role") == "user").strip()


def _split(qid: str) -> str:
    return "test" if int(hashlib.sha256(qid.encode()).hexdigest(), 16) % 2 else "train"


def main(src: Path) -> None:
    pool: dict[str, dict] = {}
    queries: list[dict] = []
    for cat in CATEGORIES:
        rows = [json.loads(line) for line in (src / f"BFCL_v4_{cat}.json").open()]
        answers = {}
        if cat not in ABSTAIN:
            for line in (src / "possible_answer" / f"BFCL_v4_{cat}.json").open():
                a = json.loads(line)
                answers[a["id"]] = a["ground_truth"]
        for row in rows:
            for fn in row.get("function") or []:
                pool.setdefault(fn["name"], {
                    "name": fn["name"], "description": fn.get("description", ""),
                    "parameters": fn.get("parameters", {}), "tags": [cat],
                })
            gold: list[str] = []
            if cat not in ABSTAIN:
                for call in answers[row["id"]]:
                    gold += [n for n in call if n not in gold]
            text = _query_text(row["question"])
            if text:
                queries.append({"id": row["id"], "category": cat, "query": text, "gold": gold,
                                "split": _split(row["id"])})
    missing = {g for q in queries for g in q["gold"] if g not in pool}
    if missing:
        raise SystemExit(f"gold functions missing from the pool: {sorted(missing)[:5]}")
    OUT.mkdir(parents=True, exist_ok=True)
    with gzip.open(OUT / "bfcl_skills.jsonl.gz", "wt", encoding="utf-8") as f:
        for s in pool.values():
            f.write(json.dumps(s, sort_keys=True) + "\n")
    with gzip.open(OUT / "bfcl_queries.jsonl.gz", "wt", encoding="utf-8") as f:
        for q in queries:
            f.write(json.dumps(q, sort_keys=True) + "\n")
    shutil.copy(src / "LICENSE", OUT / "LICENSE.bfcl_Apache-2.0")
    print(f"{len(pool)} skills, {len(queries)} queries "
          f"({sum(1 for q in queries if not q['gold'])} irrelevance) -> {OUT}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/tools/bfcl_v4"))
