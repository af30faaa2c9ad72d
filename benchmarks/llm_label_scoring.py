"""Label scoring on llama.cpp: batched (one prompt evaluation + a token prefix tree) vs one evaluation per label.

``batched``: :meth:`LlamaCppModel.score_labels` (the prompt is evaluated once; each distinct label-token
prefix once, by rewinding the KV cache). ``per_label``: the fair baseline, prompt + label evaluated from
scratch for every label (what scoring without a shared prefix costs). Same model, prompt and labels,
interleaved repeats in one run; also checks that both give the same log-probabilities.

    python benchmarks/llm_label_scoring.py [--labels 10] [--repeats 5]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np

from crossroads.agents.backends.llama_cpp_model import LlamaCppModel
from crossroads.types import Message

LABELS = ["banking:transfer", "banking:balance", "banking:freeze_account", "banking:pin_change", "travel:book_flight",
          "travel:book_hotel", "travel:lost_luggage", "utility:weather", "utility:timer", "utility:alarm",
          "kitchen:recipe", "kitchen:calories", "work:pto_request", "work:meeting_schedule", "auto:gas_type",
          "auto:oil_change", "home:shopping_list", "home:todo_list", "small_talk:greeting", "small_talk:goodbye"]


def per_label(m: LlamaCppModel, msgs: list[Message], labels: list[str], prefix: str, suffix: str) -> dict[str, float]:
    llm = m._llm
    prompt = m._prompt_tokens(msgs, prefix)
    out = {}
    for label in labels:
        toks = llm.tokenize((label + suffix).encode(), add_bos=False, special=False)
        llm.reset()
        llm.eval(prompt)
        lp = 0.0
        for t in toks:
            logits = np.asarray(llm.scores[llm.n_tokens - 1], dtype=np.float64)
            mx = logits.max()
            lp += float(logits[t] - mx - math.log(np.exp(logits - mx).sum()))
            llm.eval([t])
        out[label] = lp
    llm.reset()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--labels", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    labels = LABELS[: args.labels]
    m = LlamaCppModel(n_ctx=2048)
    cards = "\n".join(f"- {label}: handles {label.split(':')[1].replace('_', ' ')} requests" for label in labels)
    msgs = [Message(role="system", content=f"You route requests to agents.\nAgents:\n{cards}"),
            Message(role="user", content="I need to move 200 dollars to my savings account")]
    prefix, suffix = '{"reasoning": "a transfer between accounts", "agents": ["', '"'
    times: dict[str, list[float]] = {"batched": [], "per_label": []}
    res: dict[str, dict[str, float]] = {}
    for _ in range(args.repeats):
        for name, fn in (("batched", lambda: m.score_labels(msgs, labels, prefix=prefix, suffix=suffix)),
                         ("per_label", lambda: per_label(m, msgs, labels, prefix, suffix))):
            t = time.perf_counter()
            res[name] = fn()
            times[name].append((time.perf_counter() - t) * 1e3)
    n_prompt = len(m._prompt_tokens(msgs, prefix))
    n_label_tokens = sum(len(m._llm.tokenize((lb + suffix).encode(), add_bos=False, special=False)) for lb in labels)
    diff = max(abs(res["batched"][lb] - res["per_label"][lb]) for lb in labels)
    b, p = statistics.median(times["batched"]), statistics.median(times["per_label"])
    print(f"{len(labels)} labels, prompt {n_prompt} tokens, {n_label_tokens} label tokens; "
          f"batched evaluates the prompt once + {m.label_evals} single tokens; per_label evaluates "
          f"{len(labels)} x prompt + {n_label_tokens} tokens")
    print(f"median ms over {args.repeats} interleaved repeats: batched {b:.1f}, per_label {p:.1f}, speed-up x{p / b:.2f}; "
          f"max |logprob difference| {diff:.2e}")


if __name__ == "__main__":
    main()
