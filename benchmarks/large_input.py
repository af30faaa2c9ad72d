"""One large input (default 10 MB) routed by the semantic router: wall time and peak RSS.

Baseline in the same run: the same embedder with the cut switched off (the tokenizer reads the whole
text and truncates afterwards, as before). Each variant runs in its own process so peak RSS is its own.

    python benchmarks/large_input.py [--mb 10]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, random, resource, sys, time
from crossroads.agents.embeddings import MiniLMEmbedder
from crossroads.routers.semantic import SemanticRouter
from crossroads.types import RouteContext, TargetInfo
variant, mb = sys.argv[1], float(sys.argv[2])
emb = MiniLMEmbedder()
if variant == "baseline":
    emb.cut = lambda text: text  # the tokenizer reads everything, then truncates
r = SemanticRouter({"billing": ["refund my order", "charge on my card"], "tech": ["the app crashes", "cannot log in"]},
                   embedder=emb)
cands = (TargetInfo(name="billing"), TargetInfo(name="tech"))
r.route(RouteContext(query="warm up", candidates=cands))
words = "please refund the charge on my card because the app crashed again and i cannot log in".split()
rnd = random.Random(0)
text = " ".join(rnd.choice(words) for _ in range(int(mb * 250_000)))[: int(mb * 1_000_000)]
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
d = r.route(RouteContext(query=text, candidates=cands))
dt = time.perf_counter() - t
print(json.dumps({"variant": variant, "chars": len(text), "route_s": dt, "target": d.targets[0],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss_before_mb": rss0 / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=10.0)
    args = ap.parse_args()
    rows = {}
    for variant in ("cut", "baseline"):
        out = subprocess.run([sys.executable, "-c", CHILD, variant, str(args.mb)], capture_output=True, text=True, check=True)
        rows[variant] = json.loads(out.stdout.strip().splitlines()[-1])
        print(json.dumps(rows[variant]))
    assert rows["cut"]["target"] == rows["baseline"]["target"]
    print(json.dumps({"speedup": rows["baseline"]["route_s"] / rows["cut"]["route_s"],
                      "peak_rss_ratio": rows["baseline"]["peak_rss_mb"] / rows["cut"]["peak_rss_mb"]}))


if __name__ == "__main__":
    main()
