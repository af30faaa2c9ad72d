"""Model layer: overhead over raw litellm, embeddings throughput, local LLM speed, CLI start-up.

All measured in one run on this machine; ratios are against a baseline measured in the same run.

- crossroads model call (LiteLLMModel, and a model target inside a traced flow) vs. a raw
  ``litellm.completion`` to the same local OpenAI-compatible server (target <= 1.1x).
- MiniLM embeddings: sentences/s in batches and single-query latency.
- SmolLM2-135M-Instruct (llama.cpp): tokens/s, time to first token, label-scoring latency per decision.
- ``crossroads --help`` wall time (target < 1 s).

    python benchmarks/model_layer.py [--calls 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def timeit(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def model_overhead(calls: int) -> dict:
    import litellm

    from crossroads import CostModel, Flow, Message, SQLRecorder
    from crossroads.agents import model as model_target
    from crossroads.agents.backends import LiteLLMModel
    from crossroads.testing import ScriptedOpenAIServer

    litellm.suppress_debug_info = True
    with ScriptedOpenAIServer() as srv, tempfile.TemporaryDirectory() as d:
        msgs = [{"role": "user", "content": "hello there"}]
        raw = lambda: litellm.completion(model="openai/fake", api_base=srv.url, api_key="sk-bench", messages=msgs,  # noqa: E731
                                         max_retries=0, num_retries=0)
        m = LiteLLMModel("openai/fake", api_base=srv.url, api_key="sk-bench", cost=CostModel(input_per_mtok=1))
        ours = lambda: m.complete([Message(role="user", content="hello there")])  # noqa: E731
        rec = SQLRecorder(str(Path(d) / "b.db"))
        app = Flow("bench").add(model_target("m", m)).compile(recorder=rec)
        flow_call = lambda: app.invoke("hello there")  # noqa: E731
        for f in (raw, ours, flow_call):
            timeit(f, 20)  # warm-up
        rounds = {"raw": [], "model": [], "flow": []}
        for _ in range(5):  # interleave to share the machine's noise fairly
            rounds["raw"] += timeit(raw, calls // 5)
            rounds["model"] += timeit(ours, calls // 5)
            rounds["flow"] += timeit(flow_call, calls // 5)
        rec.close()
    med = {k: statistics.median(v) * 1e3 for k, v in rounds.items()}
    return {"raw_litellm_ms": round(med["raw"], 3), "crossroads_model_ms": round(med["model"], 3),
            "crossroads_flow_traced_ms": round(med["flow"], 3),
            "ratio_model": round(med["model"] / med["raw"], 3), "ratio_flow_traced": round(med["flow"] / med["raw"], 3)}


def embeddings() -> dict:
    from crossroads.agents.embeddings import MiniLMEmbedder

    t = time.perf_counter()
    emb = MiniLMEmbedder()
    load = time.perf_counter() - t
    texts = [f"routing request number {i}: please convert {i} km to miles and tell me the weather" for i in range(512)]
    emb.embed(texts[:32])
    t = time.perf_counter()
    emb.embed(texts)
    batch = time.perf_counter() - t
    single = timeit(lambda: emb.embed_one("how do I reset my card pin?"), 50)
    return {"load_s": round(load, 3), "batch_sentences_per_s": round(len(texts) / batch),
            "single_p50_ms": round(statistics.median(single) * 1e3, 2),
            "single_p99_ms": round(sorted(single)[int(0.99 * len(single)) - 1] * 1e3, 2)}


def local_llm() -> dict:
    try:
        from crossroads import Message
        from crossroads.agents.backends import LlamaCppModel
    except ImportError:
        return {"skipped": "llama-cpp-python not installed"}
    try:
        m = LlamaCppModel(max_tokens=64)
    except Exception as exc:  # noqa: BLE001
        return {"skipped": str(exc)}
    msgs = [Message(role="user", content="Write two sentences about rivers.")]
    m.complete(msgs, max_tokens=8)
    t = time.perf_counter()
    r = m.complete(msgs, max_tokens=64)
    gen = time.perf_counter() - t
    t = time.perf_counter()
    first = next(iter(m.stream(msgs, max_tokens=16)))
    ttft = time.perf_counter() - t
    labels = ["banking", "travel", "utility", "work", "home", "auto", "kitchen", "credit_cards", "meta", "small_talk"]
    route_msgs = [Message(role="user", content="Which domain is this request for? 'my card was declined at the store'")]
    m.score_labels(route_msgs, labels)
    scoring = timeit(lambda: m.score_labels(route_msgs, labels), 10)
    return {"model": m.name, "on_gpu": m.on_gpu, "tokens_per_s": round(r.output_tokens / gen, 1),
            "time_to_first_token_ms": round(ttft * 1e3, 1), "first_delta": first.text,
            "label_scoring_10_labels_p50_ms": round(statistics.median(scoring) * 1e3, 1)}


def cli_help() -> dict:
    runs = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "crossroads.cli", "--help"], capture_output=True, check=True)
        runs.append(time.perf_counter() - t)
    return {"crossroads_help_s": round(min(runs), 3), "target_s": 1.0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=200)
    args = ap.parse_args()
    result = {"model_overhead": model_overhead(args.calls), "embeddings": embeddings(),
              "local_llm": local_llm(), "cli": cli_help()}
    mo = result["model_overhead"]
    print(f"model call vs raw litellm (same local server): raw {mo['raw_litellm_ms']} ms, crossroads model "
          f"{mo['crossroads_model_ms']} ms ({mo['ratio_model']}x, target <= 1.1x), traced flow {mo['crossroads_flow_traced_ms']} ms "
          f"({mo['ratio_flow_traced']}x)")
    e = result["embeddings"]
    print(f"MiniLM int8 (CPU): {e['batch_sentences_per_s']} sentences/s batched, single query p50 {e['single_p50_ms']} ms, "
          f"p99 {e['single_p99_ms']} ms, load {e['load_s']} s")
    print(f"local LLM: {result['local_llm']}")
    print(f"crossroads --help: {result['cli']['crossroads_help_s']} s (target < 1 s)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
