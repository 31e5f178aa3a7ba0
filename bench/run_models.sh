#!/usr/bin/env bash
# run_models.sh: salient against ONNX Runtime and PyTorch on DenseNet-121, ResNet-50 and Swin-T, in one run.
#
#   bench/run_models.sh [BUILD_DIR]        # default: build (scripts/setup.sh's); run from the source tree
#   SALIENT_BENCH_THREADS=2 SALIENT_BENCH_REPS1=15 SALIENT_BENCH_REPS8=5 SALIENT_BENCH_ROUNDS=3 bench/run_models.sh
#   SALIENT_BENCH_SMOKE=1 bench/run_models.sh    # a quick pass (1 rep each), to see the harness work
#   SALIENT_BENCH_BASELINE=/path/to/other/build bench/run_models.sh
#                       # also times that build's bench/bench_models (an older engine, e.g. the last
#                       # commit's) in the same run: the report's "before" table
#
# 1. bench/models.py export: the same seeded weights as a salient model folder and an ONNX file
#    per model (Debian's /usr/bin/python3 with python3-torch).
# 2. ONNX Runtime from the npm package onnxruntime-node (version pinned by bench/package-lock.json,
#    installed into BUILD_DIR/bench/ort with --ignore-scripts: its CPU binary ships in the package).
# 3. Per model and round (report.py keeps each runtime's best round), each runtime in its own process, one after the other: salient
#    (BUILD_DIR/bench/bench_models), ONNX Runtime (bench/ort_bench.js), PyTorch eager
#    (bench/models.py time); plus OpenBLAS's own 2048^3 sgemm as the machine's peak.
# 4. bench/report.py: the table and a gnuplot PNG into docs/PERFORMANCE.md (between its
#    "models:begin/end" markers) and docs/performance-models.png; raw JSON lines in
#    BUILD_DIR/bench/results.jsonl.
# Timing is reported, never judged. The load average before each model goes into the report.
set -euo pipefail
SRC="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="$(cd "${1:-$SRC/build}" && pwd)"
THREADS="${SALIENT_BENCH_THREADS:-2}"
REPS1="${SALIENT_BENCH_REPS1:-15}"
REPS8="${SALIENT_BENCH_REPS8:-5}"
# Three rounds: on this VM a process's speed moves by +-15% from one minute to the next (ResNet-50
# batch 1 in bench_models read 44-60 ms within an hour, the machine otherwise idle), so each
# runtime's best of three is likelier than its best of two to fall in a fast spell.
ROUNDS="${SALIENT_BENCH_ROUNDS:-3}"
MODELS="${SALIENT_BENCH_MODELS:-densenet121,resnet50,swin_t}"
if [ -n "${SALIENT_BENCH_SMOKE:-}" ]; then REPS1=1; REPS8=1; fi
PY=/usr/bin/python3
OUT="$BUILD/bench"
MD="$OUT/models"

for tool in "$PY" node npm gnuplot; do
  command -v "$tool" >/dev/null || { echo "run_models: $tool not found (scripts/setup.sh --bench installs it)" >&2; exit 1; }
done
make -C "$BUILD" -s bench/bench_models >/dev/null

# ONNX Runtime, from the lock file, once per build dir (again when the lock changes).
ORT="$OUT/ort"
if ! cmp -s "$SRC/bench/package-lock.json" "$ORT/package-lock.json" || [ ! -d "$ORT/node_modules/onnxruntime-node" ]; then
  mkdir -p "$ORT"
  cp "$SRC/bench/package.json" "$SRC/bench/package-lock.json" "$ORT/"
  (cd "$ORT" && npm ci --ignore-scripts --no-audit --no-fund >/dev/null)
fi

mkdir -p "$MD"
echo "run_models: exporting $MODELS into $MD"
"$PY" "$SRC/bench/models.py" export --out "$MD" --models "$MODELS" 2> >(grep -v -i warn >&2)

RES="$OUT/results.jsonl"
: > "$RES"
load() { printf '{"runtime": "load", "when": "%s", "loadavg": "%s"}\n' "$1" "$(cut -d' ' -f1-3 /proc/loadavg)" >> "$RES"; }
load start
"$BUILD/bench/bench_models" --peak --threads "$THREADS" | tee -a "$RES"
for round in $(seq "$ROUNDS"); do
  for m in ${MODELS//,/ }; do
    load "$m round $round"
    "$BUILD/bench/bench_models" --model "$MD/$m" --check "$MD/$m.json" --threads "$THREADS" --reps1 "$REPS1" \
      --reps8 "$REPS8" | tee -a "$RES"
    if [ -n "${SALIENT_BENCH_BASELINE:-}" ]; then
      "$SALIENT_BENCH_BASELINE/bench/bench_models" --model "$MD/$m" --check "$MD/$m.json" --threads "$THREADS" \
        --reps1 "$REPS1" --reps8 "$REPS8" | sed 's/"runtime": "salient"/"runtime": "salient-baseline"/' | tee -a "$RES"
    fi
    NODE_PATH="$ORT/node_modules" node "$SRC/bench/ort_bench.js" --model "$MD/$m.onnx" --check "$MD/$m.json" \
      --threads "$THREADS" --reps1 "$REPS1" --reps8 "$REPS8" | tee -a "$RES"
    "$PY" "$SRC/bench/models.py" time --out "$MD" --model "$m" --threads "$THREADS" --reps1 "$REPS1" \
      --reps8 "$REPS8" | tee -a "$RES"
  done
done
"$BUILD/bench/bench_models" --peak --threads "$THREADS" | tee -a "$RES"
load end
if [ -n "${SALIENT_BENCH_SMOKE:-}" ]; then
  "$PY" "$SRC/bench/report.py" --results "$RES" --models "$MD" --print
else
  "$PY" "$SRC/bench/report.py" --results "$RES" --models "$MD" --doc "$SRC/docs/PERFORMANCE.md" \
    --png "$SRC/docs/performance-models.png"
fi
