"""Decision latency of a fine-tuned encoder router (``crossroads train encoder``) against the shipped int8
embedder + classifier head, in the same run, on the same queries, through ``router.route()`` with the
embedding cache off (:func:`crossroads.evals.metrics.decision_latencies_ms`). Target: fine-tuned p50 <= 10 ms
on CPU. Also scores both on the split's test rows (top-1), and with ``--quantize`` an onnxruntime dynamic
int8 copy of the fine-tuned encoder (same head and threshold) to see whether quantisation keeps accuracy.

    python benchmarks/encoder_router_latency.py --router runs/b77/router.npz --data builtin:banking77 [--n 200] [--quantize]

Prints one JSON object. Run it alone on the machine (``flock`` on shared boxes): latency is wall time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def _bench(router: Any, queries: list[str], cands: tuple[Any, ...]) -> dict[str, float]:
    from crossroads.evals.metrics import decision_latencies_ms, percentile

    lat = decision_latencies_ms(router, queries, cands, router.embedder, warm_up=True)
    return {"p50_ms": percentile(lat, 50), "p90_ms": percentile(lat, 90), "p99_ms": percentile(lat, 99), "n": len(lat)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--router", required=True, help="a router .npz written by crossroads train encoder")
    ap.add_argument("--data", required=True, help="the --data it was trained with (builtin:NAME or a file)")
    ap.add_argument("--n", type=int, default=200, help="timed decisions per router")
    ap.add_argument("--quantize", action="store_true", help="also score a dynamic-int8 copy of the encoder")
    args = ap.parse_args()

    from crossroads.agents.embeddings import default_embedder
    from crossroads.evals.agent_selection import build_agent_router
    from crossroads.routers.intent import OOS, load_intent_router
    from crossroads.training.encoder import score_router, selection_data_for
    from crossroads.types import TargetInfo

    sel, _ = selection_data_for(args.data)
    has_oos = bool(sel.fit.n_oos or sel.test.n_oos)
    tuned = load_intent_router(args.router)
    base = build_agent_router("classifier", {"hidden": 256, "epochs": 12, "batch": 128, "lr": 0.003,
                                             "oos_precision_target": 0.9, "oos_prior": 0.2}, sel, default_embedder())
    cands = tuple(TargetInfo(name=a) for a in tuned.agents) + ((TargetInfo(name=OOS),) if has_oos else ())
    rng = np.random.default_rng(0)
    queries = [sel.test.texts[i] for i in rng.choice(len(sel.test), size=min(args.n, len(sel.test)), replace=False)]
    out: dict[str, Any] = {"data": args.data, "router": args.router, "queries": len(queries)}
    out["int8_embedder+classifier"] = {**_bench(base, queries, cands), **_acc(score_router(base, sel.test, has_oos))}
    out["fine_tuned_onnx"] = {**_bench(tuned, queries, cands), **_acc(score_router(tuned, sel.test, has_oos))}
    if args.quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        from crossroads.agents.embeddings import file_sha256

        with tempfile.TemporaryDirectory() as tmp:
            src = Path(args.router)
            enc = Path(tuned.encoder["path"]) if tuned.encoder else None
            if enc is None:
                raise SystemExit(f"{src} has no encoder of its own")
            q = Path(tmp) / "q.encoder.onnx"
            quantize_dynamic(str(enc), str(q), weight_type=QuantType.QInt8, per_channel=True)
            shutil.copy(src, Path(tmp) / "q.npz")
            tuned.encoder = {"path": str(q), "sha256": file_sha256(q)}
            tuned.save(Path(tmp) / "q.npz")
            qr = load_intent_router(Path(tmp) / "q.npz")
            if has_oos:  # recalibrate on the validation slice: the int8 encoder shifts confidences
                qr.calibrate(sel.validation.texts, sel.validation.labels, precision_target=0.9, prior=0.2)
            out["fine_tuned_onnx_int8"] = {**_bench(qr, queries, cands), **_acc(score_router(qr, sel.test, has_oos)),
                                           "size_mb": round(q.stat().st_size / 1e6, 1)}
        out["fine_tuned_onnx"]["size_mb"] = round(enc.stat().st_size / 1e6, 1)
    b, t = out["int8_embedder+classifier"]["p50_ms"], out["fine_tuned_onnx"]["p50_ms"]
    out["p50_ratio_fine_tuned_over_shipped"] = t / b if b else None
    print(json.dumps(out, indent=2))


def _acc(m: dict[str, Any]) -> dict[str, Any]:
    return {k: m.get(k) for k in ("top1_accuracy", "in_scope_top1_accuracy", "oos_precision", "oos_recall")}


if __name__ == "__main__":
    main()
