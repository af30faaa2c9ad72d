"""Time to first token served vs total, streaming a model target through ``crossroads serve``.

The backend is a local scripted OpenAI-compatible server that generates ``--words`` words, one every
``--delay`` seconds (a slow model): streamed, one chunk per word; not streamed, the whole answer at the end. A server that relays the backend's stream sends its first chunk
after about one word's delay; one that waits for the whole answer sends it only at the end.
Reported over ``--requests`` streamed requests: median time to the first content chunk, median total
time, and their ratio.

    python benchmarks/serve_streaming.py [--requests 10] [--words 20] [--delay 0.05] [--src PATH_TO_A_CHECKOUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from _serve_harness import ROOT, serve

from crossroads.testing import ScriptedOpenAIServer

FLOW_MODULE = '''
import os
from crossroads import CostModel, Flow, LiteLLMModel, model

def flow():
    llm = LiteLLMModel("openai/fake", api_base=os.environ["BENCH_BACKEND_URL"], api_key="sk-test", cost=CostModel())
    return Flow("streaming").add(model("gpt", llm))
'''


def _one(base: str) -> tuple[float, float, str]:
    t0 = time.perf_counter()
    first = None
    text = ""
    body = {"model": "gpt", "stream": True, "messages": [{"role": "user", "content": "tell me"}]}
    with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=300) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                ch = json.loads(line[6:])
                delta = (ch.get("choices") or [{}])[0].get("delta", {}).get("content") or ""
                if delta and first is None:
                    first = time.perf_counter() - t0
                text += delta
    return first if first is not None else float("nan"), time.perf_counter() - t0, text


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=10)
    ap.add_argument("--words", type=int, default=20)
    ap.add_argument("--delay", type=float, default=0.05)
    ap.add_argument("--src", type=Path, default=ROOT)
    args = ap.parse_args()
    src = args.src.resolve()
    answer = " ".join(f"w{i}" for i in range(args.words))
    backend = ScriptedOpenAIServer(stream_delay_s=args.delay)

    def reply(msgs: list[dict[str, object]]) -> str:
        if not backend.requests[-1].get("stream"):  # a non-streamed call waits for the whole answer
            time.sleep(args.words * args.delay)
        return answer

    backend.reply = reply
    with tempfile.TemporaryDirectory() as d, backend:
        (Path(d) / "bench_stream_flow.py").write_text(FLOW_MODULE)
        env = {"BENCH_BACKEND_URL": backend.url}
        with serve(src, Path("bench_stream_flow:flow"), Path(d) / "t.db", env=env, log=Path(d) / "log",
                   pythonpath=(d,)) as (base, _):
            _one(base)  # warm-up
            runs = [_one(base) for _ in range(args.requests)]
    firsts = [r[0] for r in runs]
    totals = [r[1] for r in runs]
    report = {
        "src": str(src), "requests": args.requests, "backend": f"{args.words} words, one every {args.delay}s",
        "answers_complete": sum(r[2] == answer for r in runs),
        "ttft_median_s": round(statistics.median(firsts), 3), "total_median_s": round(statistics.median(totals), 3),
        "ttft_over_total": round(statistics.median(firsts) / statistics.median(totals), 3),
        "note": "2 shared, loaded CPU cores",
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
