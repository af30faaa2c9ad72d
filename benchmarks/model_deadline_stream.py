"""Provider-call deadline, streaming and async concurrency, against a local scripted OpenAI-compatible server.

All measured in one run on this machine, each against a baseline measured in the same run:

- Trickle: the server sends one byte every 0.5 s for 20 s (a valid reply in the end), so no read
  ever times out. Baseline: a raw ``litellm.completion(timeout=2)`` (what ``LiteLLMModel`` did before
  it had a total deadline). Now: ``LiteLLMModel(timeout_s=2)`` (deadline defaults to 2 x timeout: 4 s), and
  wrapped in ``ResilientModel(retries=1)``: seconds held, error, events.
- Streaming: a 40-word reply, one word every 50 ms: time to the first chunk vs the whole reply, for
  ``stream`` (sync) and ``astream``, with usage from the last chunk.
- Async: 20 concurrent ``acomplete`` calls to a server that takes 1 s per reply, vs 20 sequential
  ``complete`` calls.

    python benchmarks/model_deadline_stream.py [--trickle-for 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

MSG = "hello there"


def trickle(trickle_for: float) -> dict:
    import litellm

    from crossroads import AllModelsFailedError, CostModel, Message, ResilientModel
    from crossroads.agents.backends import LiteLLMModel
    from crossroads.errors import DeadlineExceededError
    from crossroads.testing import ScriptedOpenAIServer

    litellm.suppress_debug_info = True
    out: dict = {}
    with ScriptedOpenAIServer() as ok:  # warm-up: litellm's one-off lazy imports, for both sides
        litellm.completion(model="openai/fake", api_base=ok.url, api_key="sk-bench", max_retries=0, num_retries=0,
                           messages=[{"role": "user", "content": MSG}])
        LiteLLMModel("openai/fake", api_base=ok.url, api_key="sk-bench", cost=CostModel()).complete(
            [Message(role="user", content=MSG)])
    with ScriptedOpenAIServer(default="trickle", trickle_s=0.5, trickle_for_s=trickle_for) as srv:
        t = time.perf_counter()
        raw = litellm.completion(model="openai/fake", api_base=srv.url, api_key="sk-bench", timeout=2.0,
                                 messages=[{"role": "user", "content": MSG}], max_retries=0, num_retries=0)
        out["before_raw_litellm_timeout_2s"] = {"held_s": round(time.perf_counter() - t, 2), "error": None,
                                                "events": [], "answer": raw.choices[0].message.content}
        m = LiteLLMModel("openai/fake", api_base=srv.url, api_key="sk-bench", cost=CostModel(), timeout_s=2.0)
        t = time.perf_counter()
        try:
            m.complete([Message(role="user", content=MSG)])
            err = None
        except DeadlineExceededError as exc:
            err = f"{type(exc).__name__}: {exc}"
        out["after_model_timeout_2s"] = {"held_s": round(time.perf_counter() - t, 2), "error": err}
        r = ResilientModel([m], retries=1, backoff_s=0.2)
        t = time.perf_counter()
        try:
            r.complete([Message(role="user", content=MSG)])
            err, events = None, []
        except AllModelsFailedError as exc:
            err = f"{type(exc).__name__}: {exc}"
            events = [{"kind": e.kind, **e.detail} for e in exc.events]
        out["after_resilient_retries_1"] = {"held_s": round(time.perf_counter() - t, 2), "error": err,
                                            "events": events}
    return out


def streaming() -> dict:
    from crossroads import CostModel, Message
    from crossroads.agents.backends import LiteLLMModel
    from crossroads.testing import ScriptedOpenAIServer

    words = " ".join(f"w{i}" for i in range(40))
    msgs = [Message(role="user", content=MSG)]
    with ScriptedOpenAIServer(stream_delay_s=0.05, reply=lambda _: words) as srv:
        m = LiteLLMModel("openai/fake", api_base=srv.url, api_key="sk-bench", cost=CostModel(input_per_mtok=1))
        list(m.stream(msgs))  # warm-up: litellm's lazy imports
        runs = []
        for _ in range(3):
            t = time.perf_counter()
            first = None
            for c in m.stream(msgs):
                if c.text and first is None:
                    first = time.perf_counter() - t
                if c.response is not None:
                    usage = (c.response.input_tokens, c.response.output_tokens)
            runs.append((first, time.perf_counter() - t))

        async def one() -> tuple[float, float]:
            t = time.perf_counter()
            first = None
            async for c in m.astream(msgs):
                if c.text and first is None:
                    first = time.perf_counter() - t
            return first or 0.0, time.perf_counter() - t

        aruns = [asyncio.run(one()) for _ in range(3)]
        t = time.perf_counter()
        m.complete(msgs)
        whole = time.perf_counter() - t
    return {"words": 40, "chunk_gap_ms": 50,
            "sync_first_chunk_ms": round(statistics.median(r[0] for r in runs) * 1e3, 1),
            "sync_total_ms": round(statistics.median(r[1] for r in runs) * 1e3, 1),
            "async_first_chunk_ms": round(statistics.median(r[0] for r in aruns) * 1e3, 1),
            "async_total_ms": round(statistics.median(r[1] for r in aruns) * 1e3, 1),
            "non_streamed_complete_ms": round(whole * 1e3, 1), "usage_in_last_chunk": usage}


def concurrency(n: int = 20, reply_s: float = 1.0) -> dict:
    from crossroads import CostModel, Message
    from crossroads.agents.backends import LiteLLMModel
    from crossroads.testing import ScriptedOpenAIServer

    msgs = [Message(role="user", content=MSG)]
    with ScriptedOpenAIServer(default="hang", hang_s=reply_s) as srv:
        m = LiteLLMModel("openai/fake", api_base=srv.url, api_key="sk-bench", cost=CostModel())
        m.complete(msgs)  # warm-up
        t = time.perf_counter()
        for _ in range(n):
            m.complete(msgs)
        sequential = time.perf_counter() - t

        async def many() -> None:
            await asyncio.gather(*(m.acomplete(msgs) for _ in range(n)))

        t = time.perf_counter()
        asyncio.run(many())
        concurrent = time.perf_counter() - t
    return {"calls": n, "server_reply_s": reply_s, "sequential_complete_s": round(sequential, 2),
            "concurrent_acomplete_s": round(concurrent, 2), "speedup": round(sequential / concurrent, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trickle-for", type=float, default=20.0, help="seconds the server trickles (default 20)")
    args = ap.parse_args()
    result = {"trickle": trickle(args.trickle_for), "streaming": streaming(), "async": concurrency()}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
