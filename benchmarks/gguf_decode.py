"""Which CPU backend runs a trained 135M router: llama.cpp on the exported GGUF (f16, q8_0) vs the original Q4_1
GGUF vs torch generation of the HF checkpoint, on a router-sized prompt.

One Router-R1 prompt of ``builtin:llmrouter-9models`` (the pool cards + a training query of median length) is
tokenised once with the chat template; each backend evaluates it from scratch and greedily generates
``--new-tokens`` tokens (``min`` = ``max``: same work everywhere), ``--repeats`` times, interleaved. Reported per
backend: median time to the first token (prompt evaluation), decode tokens/s, and the whole decision's time;
plus whether each backend's greedy tokens equal torch's (the exported model is the same model). The fair
baseline is torch on the HF checkpoint the GGUFs were exported from, measured in the same run.

    python benchmarks/gguf_decode.py [--repeats 5] [--new-tokens 32] [--threads 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def _median_row(task: Any) -> int:
    lengths = [len(task.train.prompts[i]) for i in range(len(task.train))]
    med = statistics.median_low(lengths)
    return lengths.index(med)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="where the exported GGUFs go [default: a temp dir]")
    args = ap.parse_args()

    import llama_cpp
    import torch

    from crossroads.agents.backends.llama_cpp_model import default_gguf_path
    from crossroads.training.gguf_io import export_gguf, load_base
    from crossroads.training.r1_task import ModelRoutingTask

    torch.set_num_threads(args.threads)
    task = ModelRoutingTask("builtin:llmrouter-9models")
    msgs = task.messages(_median_row(task))
    t0 = time.perf_counter()
    model, tok = load_base()
    load_s = time.perf_counter() - t0
    ids = list(tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=False))
    out_dir = args.out or Path(tempfile.mkdtemp(prefix="gguf-bench-"))
    export_s = {}
    paths = {"q4_1 (original)": default_gguf_path()}
    for outtype in ("f16", "q8_0"):
        t0 = time.perf_counter()
        paths[outtype] = export_gguf(model, tok, out_dir / f"smollm2-{outtype}.gguf", outtype=outtype)
        export_s[outtype] = round(time.perf_counter() - t0, 1)
    n = args.new_tokens
    llms = {k: llama_cpp.Llama(model_path=str(p), n_ctx=2048, n_threads=args.threads, n_batch=512, verbose=False)
            for k, p in paths.items()}

    def run_cpp(llm: Any) -> tuple[float, float, list[int]]:
        llm.reset()
        out: list[int] = []
        t0 = time.perf_counter()
        first = 0.0
        for t in llm.generate(ids, temp=0.0, top_k=1, reset=True):
            if not out:
                first = time.perf_counter() - t0
            out.append(int(t))
            if len(out) == n:
                break
        return first, time.perf_counter() - t0, out

    def run_torch() -> tuple[float, float, list[int]]:
        x = torch.tensor([ids])
        with torch.no_grad():
            t0 = time.perf_counter()
            model.generate(x, max_new_tokens=1, min_new_tokens=1, do_sample=False)
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            y = model.generate(x, max_new_tokens=n, min_new_tokens=n, do_sample=False)
            total = time.perf_counter() - t0
        return first, total, y[0, len(ids):].tolist()

    runners = {**{k: (lambda llm=llm: run_cpp(llm)) for k, llm in llms.items()}, "torch fp32 (HF)": run_torch}
    for r in runners.values():  # warm-up
        r()
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in runners}
    tokens: dict[str, list[int]] = {}
    for _ in range(args.repeats):
        for k, r in runners.items():
            first, total, toks = r()
            times[k].append((first, total))
            tokens[k] = toks
    ref = tokens["torch fp32 (HF)"]
    rows = {}
    for k, ts in times.items():
        first = statistics.median(t[0] for t in ts)
        total = statistics.median(t[1] for t in ts)
        size = paths[k].stat().st_size / 2**20 if k in paths else None
        rows[k] = {"prompt_tokens": len(ids), "new_tokens": len(tokens[k]), "first_token_ms": round(first * 1e3, 1),
                   "decision_ms": round(total * 1e3, 1),
                   "decode_tok_per_s": round((len(tokens[k]) - 1) / max(total - first, 1e-9), 1),
                   "greedy_tokens_equal_torch": sum(a == b for a, b in zip(tokens[k], ref, strict=False)),
                   "file_mb": round(size, 1) if size else None}
    base = rows["torch fp32 (HF)"]["decision_ms"]
    for r in rows.values():
        r["speedup_vs_torch"] = round(base / r["decision_ms"], 2)
    print(json.dumps({"threads": args.threads, "repeats": args.repeats, "load_base_s": round(load_s, 1),
                      "export_s": export_s, "backends": rows}, indent=2))
    print(f"\n{'backend':<18} {'MB':>7} {'1st tok ms':>11} {'decision ms':>12} {'decode tok/s':>13} {'x torch':>8} "
          f"{'same greedy':>12}")
    for k, r in rows.items():
        print(f"{k:<18} {r['file_mb'] or '-':>7} {r['first_token_ms']:>11} {r['decision_ms']:>12} "
              f"{r['decode_tok_per_s']:>13} {r['speedup_vs_torch']:>8} {r['greedy_tokens_equal_torch']:>9}/{n}")


if __name__ == "__main__":
    main()
