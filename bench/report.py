#!/usr/bin/python3
"""report.py: bench/run_models.sh's results as a table (Markdown) and a plot (gnuplot PNG).

    report.py --results results.jsonl --models DIR [--doc docs/PERFORMANCE.md --png docs/x.png] [--print]

results.jsonl holds one JSON line per measurement (bench_models, ort_bench.js, models.py time,
the OpenBLAS peak, load averages); DIR/<model>.json the multiply-adds per image. With several
rounds, each runtime's best round counts (this machine's noise only ever slows a run down).
Speed ratios are salient's speed over the peer's: ORT's latency / salient's latency at batch 1,
salient's images/s / ORT's at batch 8; above 1 salient is faster. With --doc the table replaces
whatever stands between the lines "<!-- models:begin -->" and "<!-- models:end -->".
"""
import argparse
import json
import os
import subprocess
import tempfile

RUNTIMES = [("salient", "salient"), ("onnxruntime", "ORT"), ("pytorch", "PyTorch")]


def load(path):
    rows, peaks, loads = [], [], []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            if r["runtime"] == "openblas":
                peaks.append(r["sgemm_gflops"])
            elif r["runtime"] == "load":
                loads.append(r)
            else:
                rows.append(r)
    return rows, peaks, loads


def best(rows, runtime, model):
    rs = [r for r in rows if r["runtime"] == runtime and r["model"] == model]
    if not rs:
        return None
    out = dict(rs[0])
    out["b1_ms"] = min(r["b1_ms"] for r in rs)
    out["b8_img_s"] = max(r["b8_img_s"] for r in rs)
    out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in rs)
    out["max_abs_diff"] = max(r["max_abs_diff"] for r in rs)
    return out


def table(rows, peaks, loads, models_dir):
    models = []
    for r in rows:
        if r["model"] not in models:
            models.append(r["model"])
    peak = max(peaks) if peaks else float("nan")
    ver = {rt: next((r.get("version") for r in rows if r["runtime"] == rt), "?") for rt, _ in RUNTIMES}
    threads = rows[0]["threads"] if rows else 0
    lines = []
    lines.append("Speed ratio = salient's speed / the peer's (batch 1: peer ms / salient ms; batch 8: salient "
                 "img/s / peer img/s); **above 1.00 salient is faster**. %d threads each; ONNX Runtime %s "
                 "(onnxruntime-node, CPU EP, all graph optimisations), PyTorch %s eager. OpenBLAS sgemm 2048^3 on "
                 "%d threads in this run: %s GFLOP/s (best of %s). Load average at start / end: %s / %s."
                 % (threads, ver["onnxruntime"], ver["pytorch"], threads,
                    " and ".join("%.0f" % p for p in peaks), len(peaks),
                    loads[0]["loadavg"] if loads else "?", loads[-1]["loadavg"] if loads else "?"))
    lines.append("")
    lines.append("| model | GMAC/img | salient b1 ms | ORT b1 ms | PyTorch b1 ms | **vs ORT b1** | vs PyTorch b1 "
                 "| salient b8 img/s | ORT b8 img/s | PyTorch b8 img/s | **vs ORT b8** | vs PyTorch b8 "
                 "| b8 GFLOP/s salient / ORT (of peak) | peak RSS MB salient / ORT / PyTorch | logits vs torch, max abs "
                 "salient / ORT |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    plot = []
    for m in models:
        with open(os.path.join(models_dir, m + ".json")) as f:
            macs = json.load(f)["macs"]
        s, o, p = (best(rows, rt, m) for rt, _ in RUNTIMES)
        if not s or not o or not p:
            continue
        gf = lambda r: 2 * macs * r["b8_img_s"] / 1e9  # noqa: E731
        r1o, r8o = o["b1_ms"] / s["b1_ms"], s["b8_img_s"] / o["b8_img_s"]
        r1p, r8p = p["b1_ms"] / s["b1_ms"], s["b8_img_s"] / p["b8_img_s"]
        lines.append("| %s | %.2f | %.1f | %.1f | %.1f | **%.2f** | %.2f | %.1f | %.1f | %.1f | **%.2f** | %.2f "
                     "| %.0f (%.2f) / %.0f (%.2f) | %.0f / %.0f / %.0f | %.1e / %.1e |"
                     % (m, macs / 1e9, s["b1_ms"], o["b1_ms"], p["b1_ms"], r1o, r1p, s["b8_img_s"], o["b8_img_s"],
                        p["b8_img_s"], r8o, r8p, gf(s), gf(s) / peak, gf(o), gf(o) / peak, s["peak_rss_mb"],
                        o["peak_rss_mb"], p["peak_rss_mb"], s["max_abs_diff"], o["max_abs_diff"]))
        plot.append((m, r1o, r8o, r1p, r8p))
    base = [m for m in models if best(rows, "salient-baseline", m)]
    if base:
        lines.append("")
        lines.append("The engine before this work (SALIENT_BENCH_BASELINE: the same harness on the previous commit's "
                     "engine), same run:")
        lines.append("")
        lines.append("| model | before: b1 ms | b8 img/s | vs ORT b1 | vs ORT b8 | now: vs ORT b1 | vs ORT b8 "
                     "| speed-up b1 | speed-up b8 |")
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for m in base:
            b, s, o = best(rows, "salient-baseline", m), best(rows, "salient", m), best(rows, "onnxruntime", m)
            if not s or not o:
                continue
            lines.append("| %s | %.1f | %.1f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |"
                         % (m, b["b1_ms"], b["b8_img_s"], o["b1_ms"] / b["b1_ms"], b["b8_img_s"] / o["b8_img_s"],
                            o["b1_ms"] / s["b1_ms"], s["b8_img_s"] / o["b8_img_s"], b["b1_ms"] / s["b1_ms"],
                            s["b8_img_s"] / b["b8_img_s"]))
    return "\n".join(lines), plot


def gnuplot(plot, png):
    with tempfile.NamedTemporaryFile("w", suffix=".dat", delete=False) as f:
        for m, r1o, r8o, r1p, r8p in plot:
            f.write("%s %.3f %.3f %.3f %.3f\n" % (m, r1o, r8o, r1p, r8p))
        dat = f.name
    script = """
set terminal pngcairo size 1000,420 font ",10" noenhanced
set output '%s'
set title "salient's speed relative to ONNX Runtime and PyTorch (above 1 = salient faster)"
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.8 border -1
set logscale y 2
set yrange [0.25:32]
set ytics (0.25, 0.5, 1, 2, 4, 8, 16, 32)
set grid ytics
set key outside right top
set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 2 lc rgb "black"
plot '%s' using 2:xtic(1) title 'vs ORT, batch 1', '' using 3 title 'vs ORT, batch 8', \\
     '' using 4 title 'vs PyTorch, batch 1', '' using 5 title 'vs PyTorch, batch 8'
""" % (png, dat)
    try:
        subprocess.run(["gnuplot"], input=script, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        # pngcairo is in gnuplot-qt / gnuplot-x11; gnuplot-nox has the plain png terminal.
        subprocess.run(["gnuplot"], input=script.replace("pngcairo", "png"), text=True, check=True)
    os.unlink(dat)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--doc")
    ap.add_argument("--png")
    ap.add_argument("--print", action="store_true")
    args = ap.parse_args()
    rows, peaks, loads = load(args.results)
    text, plot = table(rows, peaks, loads, args.models)
    if args.print or not args.doc:
        print(text)
    if args.png:
        gnuplot(plot, args.png)
    if args.doc:
        with open(args.doc) as f:
            doc = f.read()
        begin, end = "<!-- models:begin -->", "<!-- models:end -->"
        if begin not in doc or end not in doc:
            raise SystemExit("report.py: %s has no '%s' ... '%s' section" % (args.doc, begin, end))
        head, rest = doc.split(begin, 1)
        _, tail = rest.split(end, 1)
        with open(args.doc, "w") as f:
            f.write(head + begin + "\n" + text + "\n" + end + tail)
        print("report.py: table written into %s%s" % (args.doc, " and " + args.png if args.png else ""))


if __name__ == "__main__":
    main()
