#!/usr/bin/env python3
"""layers.py: salient's convolutions beside ONNX Runtime's, layer group by layer group.

    build/bench/bench_models --model DIR/resnet50 --layers L.jsonl            # salient (engine/profile.h)
    node bench/ort_bench.js --model DIR/resnet50.onnx --profile L.jsonl       # ORT's own profiler
    ... (repeat both, alternating, for more rounds)
    python3 bench/layers.py L.jsonl [--model resnet50]

Reads the JSON lines both append (one per layer and batch; ORT's graph nodes are its fused
convolutions, named after their outputs), keeps each layer's best round (the lowest median, as
run_models.sh keeps the best round per runtime), and prints a markdown table per model and batch:
per stage of the network (layer1..4, denseblockN, transitionN; "other" for the stem and the
rest) and kind of convolution (kernel / stride), the ms per pass on each side and ORT's ms over
salient's (above 1.00 salient is faster). ORT's nodes that are not convolutions (pooling, the
head, layout reorders) are summed on a line of their own: salient's profile times convolutions
only. A measurement, never a test. Standard library only.
"""
import argparse
import collections
import json
import re
import sys

STAGE = re.compile(r"^(layer\d+|denseblock\d+|transition\d+)$")


def stage_of(name):
    for tok in re.split(r"[./]", name):
        if STAGE.match(tok):
            return tok
    return "other"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+", help="JSON lines from bench_models --layers and ort_bench.js --profile")
    ap.add_argument("--model", help="only this model")
    a = ap.parse_args()
    best = {}  # (runtime, model, batch, layer) -> record with the lowest ms
    for path in a.files:
        with open(path) as f:
            for line in f:
                if not line.strip():
                    continue
                r = json.loads(line)
                if a.model and r["model"] != a.model:
                    continue
                key = (r["runtime"], r["model"], r["batch"], r["layer"])
                if key not in best or r["ms"] < best[key]["ms"]:
                    best[key] = r
    if not best:
        sys.exit("layers.py: no layer lines in %s" % ", ".join(a.files))
    groups = collections.defaultdict(lambda: {"salient": 0.0, "onnxruntime": 0.0, "n": 0})
    other = collections.defaultdict(float)
    for (rt, model, batch, layer), r in best.items():
        kind = r.get("kind", "?")
        if not kind.startswith("conv"):
            other[(model, batch)] += r["ms"]
            continue
        g = groups[(model, batch, stage_of(layer), kind)]
        g[rt] += r["ms"]
        g["n"] += rt == "salient"
    for model, batch in sorted({(k[0], k[1]) for k in groups}):
        print("\n%s, batch %d: convolutions, ms per pass (each layer's best round)\n" % (model, batch))
        print("| stage | kind | layers | salient ms | ORT ms | ORT / salient |")
        print("|---|---|---|---|---|---|")
        tot = {"salient": 0.0, "onnxruntime": 0.0}
        for (m, b, st, kind), g in sorted(groups.items()):
            if (m, b) != (model, batch):
                continue
            s, o = g["salient"], g["onnxruntime"]
            tot["salient"] += s
            tot["onnxruntime"] += o
            ratio = "%.2f" % (o / s) if s > 0 and o > 0 else "-"
            print("| %s | %s | %d | %.2f | %.2f | %s |" % (st, kind, g["n"], s, o, ratio))
        s, o = tot["salient"], tot["onnxruntime"]
        print("| **all** | convolutions | | **%.2f** | **%.2f** | **%s** |" % (s, o, "%.2f" % (o / s) if s and o else "-"))
        print("| | ORT's other nodes | | | %.2f | |" % other[(model, batch)])


if __name__ == "__main__":
    main()
