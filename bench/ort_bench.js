// ort_bench.js: ONNX Runtime's side of bench/run_models.sh (onnxruntime-node, CPU execution provider).
//
//   node bench/ort_bench.js --model DIR/<model>.onnx [--check DIR/<model>.json] [--threads 2]
//                           [--reps1 15] [--reps8 5] [--profile FILE]
//
// One session with intra-op threads = --threads, one inter-op thread, all graph optimisations
// (ORT's defaults for a server): batch-1 latency (median of reps1 runs after 3 warm-ups), batch-8
// images/s (median of reps8 runs after one warm-up), peak RSS of this process, and with --check
// the largest absolute difference from PyTorch's logits for the input bench/models.py stored.
// One JSON line on stdout. NODE_PATH must reach the onnxruntime-node install (run_models.sh sets it).
// With --profile FILE: then, per batch size, a session with ORT's profiler on runs the same
// passes, and one JSON line per graph node and batch (median ms per run, warm-ups dropped) is
// appended to FILE (bench/layers.py sets them beside bench_models --layers).
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const ort = require('onnxruntime-node');

function arg(name, dflt) {
  const i = process.argv.indexOf('--' + name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

function median(v) {
  v = v.slice().sort((a, b) => a - b);
  const n = v.length;
  return n % 2 ? v[(n - 1) / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

async function timeit(session, feeds, warm, reps) {
  for (let i = 0; i < warm; i++) await session.run(feeds);
  const t = [];
  for (let i = 0; i < reps; i++) {
    const s = process.hrtime.bigint();
    await session.run(feeds);
    t.push(Number(process.hrtime.bigint() - s) / 1e9);
  }
  return median(t);
}

// A convolution node's kind as bench_models names it ("conv 3x3/2": its weights' kernel, the
// stride from the input and output heights), else the op's name.
function kindOf(args) {
  const ins = args && args.input_type_shape, outs = args && args.output_type_shape;
  if (!args || !/Conv/.test(args.op_name) || !ins || ins.length < 2 || !outs) return args ? args.op_name : '?';
  const w = Object.values(ins[1])[0], x = Object.values(ins[0])[0], y = Object.values(outs[0])[0];
  if (!w || w.length !== 4 || !x || !y) return args.op_name;
  return `conv ${w[2]}x${w[3]}/${Math.round(x[2] / y[2])}`;
}

// --profile: ORT's profiler over warm + reps runs at batch n; node times per run, warm-ups dropped.
async function profileNodes(model, opts, feeds, n, warm, reps, out, meta) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ort-profile-'));
  const session = await ort.InferenceSession.create(model, {...opts, enableProfiling: true,
    profileFilePrefix: path.join(dir, 'b' + n)});
  for (let i = 0; i < warm + reps; i++) await session.run(feeds);
  session.endProfiling();
  await session.release();
  const file = fs.readdirSync(dir).find((f) => f.endsWith('.json'));
  if (!file) throw new Error('--profile: ORT wrote no profile in ' + dir);
  const events = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'));
  fs.rmSync(dir, {recursive: true, force: true});
  const byNode = new Map();
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
    const name = e.name.slice(0, -'_kernel_time'.length);
    if (!byNode.has(name)) byNode.set(name, {op: e.args && e.args.op_name, kind: kindOf(e.args), t: []});
    byNode.get(name).t.push(e.dur / 1e3);
  }
  for (const [name, v] of byNode) {
    const t = v.t.length > warm ? v.t.slice(warm) : v.t;
    fs.appendFileSync(out, JSON.stringify({...meta, batch: n, layer: name, op: v.op, kind: v.kind, ms: median(t),
      calls: t.length}) + '\n');
  }
}

async function main() {
  const model = arg('model');
  if (!model) throw new Error('--model FILE.onnx is required');
  const threads = parseInt(arg('threads', '2'), 10);
  const reps1 = parseInt(arg('reps1', '15'), 10), reps8 = parseInt(arg('reps8', '5'), 10);
  const opts = {
    executionProviders: ['cpu'], intraOpNumThreads: threads, interOpNumThreads: 1,
    graphOptimizationLevel: 'all', executionMode: 'sequential',
  };
  const session = await ort.InferenceSession.create(model, opts);
  const size = 224, per = 3 * size * size;
  let diff = -1;
  const check = arg('check');
  if (check) {
    const info = JSON.parse(fs.readFileSync(check, 'utf8'));
    const x = new ort.Tensor('float32', Float32Array.from(info.input), [1, 3, size, size]);
    const out = await session.run({input: x});
    const lg = out.logits.data;
    diff = 0;
    for (let i = 0; i < info.logits.length; i++) diff = Math.max(diff, Math.abs(lg[i] - info.logits[i]));
  }
  const data = new Float32Array(8 * per);
  let seed = 8;
  for (let i = 0; i < data.length; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    data[i] = (seed / 4294967296) * 4 - 2;
  }
  const x1 = new ort.Tensor('float32', data.subarray(0, per), [1, 3, size, size]);
  const x8 = new ort.Tensor('float32', data, [8, 3, size, size]);
  const b1 = await timeit(session, {input: x1}, 3, reps1);
  const b8 = await timeit(session, {input: x8}, 1, reps8);
  const name = model.replace(/^.*\//, '').replace(/\.onnx$/, '');
  console.log(JSON.stringify({
    runtime: 'onnxruntime', version: ort.env.versions.node, model: name,
    threads, b1_ms: 1e3 * b1, b8_img_s: 8 / b8, peak_rss_mb: process.resourceUsage().maxRSS / 1024,
    max_abs_diff: diff,
  }));
  const prof = arg('profile');
  if (prof) {
    await session.release();
    const meta = {runtime: 'onnxruntime', model: name, threads};
    await profileNodes(model, opts, {input: x1}, 1, 3, reps1, prof, meta);
    await profileNodes(model, opts, {input: x8}, 8, 1, reps8, prof, meta);
  }
}

main().catch((e) => {
  console.error('ort_bench: ' + (e && e.message ? e.message : e));
  process.exit(1);
});
