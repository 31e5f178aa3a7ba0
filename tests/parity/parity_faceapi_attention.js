// parity_faceapi_attention.js: the faces model's attention maps against face-api's own tensors (Node, tfjs wasm): layer maps and expression CAMs from the dense blocks tfjs computes, age and gender CAMs from TinyXception's exit flow, and model randomisation.
//
// Inputs are the aligned face crops face-api itself cuts from its demo photographs (detectAllFaces
// -> withFaceLandmarks -> extractFaceTensors(alignedRect) -> toBatchTensor(112)), the batch its
// expression and age/gender nets see. salient-faces --net ... --attention runs the same batch.
// Checks (max |salient - tfjs| <= 1e-4; raw CAMs relative to their magnitude, see camErr):
//   - face_expression/dense0..3 maps (mean over channels of A^2, min-max normalised) and weights,
//     from face-api's FaceFeatureExtractor blocks (its denseBlock4 on its loaded params; the
//     chain's pooled output is checked against face-api's own forwardInput first);
//   - CAMs of the 7 expressions: fc weights of face-api's FaceExpressionNet on tfjs's dense3;
//   - CAMs of female, male, age: AgeGenderNet's fc weights on TinyXception's output, which is
//     face-api's own faceFeatureExtractor.forwardInput (the map age and gender are pooled from);
//   - model randomisation (Adebayo et al. 2018): dense3's weights re-drawn (same mean and std per
//     tensor, seeded) -> each face's CAM of its best expression has Spearman rank correlation
//     below 0.5 with the original's.
// Exit 0 / 1 / 77 (face-api, Node packages or weights missing: scripts/setup.sh --test).
'use strict';

const fs = require('fs');
const path = require('path');
const ref = require('./faceapi_ref.js');

const TOL = 1e-4;
const RHO_MAX = 0.5;
const MAX_CROPS = 16; // the model's head_batch: one --net run
const MEAN_RGB = [122.782, 117.001, 104.298];

let failures = 0;
function fail(msg) {
  failures++;
  console.log(`FAIL ${msg}`);
}

// The aligned crops of every face in the demo photographs, as the heads' [n, 112, 112, 3] batch.
async function crops(ref0, env) {
  const { tf, fa } = ref0;
  const tensors = [];
  for (const file of ref.photos(env)) {
    const img = ref.decodeJpeg(env, file);
    const t = tf.tensor3d(Int32Array.from(img.data), [img.height, img.width, 3], 'int32');
    const res = await fa.detectAllFaces(t, new fa.SsdMobilenetv1Options({ minConfidence: 0.5 })).withFaceLandmarks();
    tensors.push(...await fa.extractFaceTensors(t, res.map((r) => r.alignedRect)));
    t.dispose();
  }
  const input = await fa.toNetInput(tensors.slice(0, MAX_CROPS));
  const batch = tf.cast(input.toBatchTensor(112, true), 'float32');
  tensors.forEach((t) => t.dispose());
  return batch;
}

// face-api's depthwiseSeparableConv and denseBlock4 (src/faceFeatureExtractor/denseBlock.ts).
function sepConv(tf, x, p, stride) {
  return tf.add(tf.separableConv2d(x, p.depthwise_filter, p.pointwise_filter, stride, 'same'), p.bias);
}
function denseBlock4(tf, x, p, first) {
  const out1 = tf.relu(first ? tf.add(tf.conv2d(x, p.conv0.filters, [2, 2], 'same'), p.conv0.bias) : sepConv(tf, x, p.conv0, [2, 2]));
  const out2 = sepConv(tf, out1, p.conv1, [1, 1]);
  const in3 = tf.relu(tf.add(out1, out2));
  const out3 = sepConv(tf, in3, p.conv2, [1, 1]);
  const in4 = tf.relu(tf.add(out1, tf.add(out2, out3)));
  const out4 = sepConv(tf, in4, p.conv3, [1, 1]);
  return tf.relu(tf.add(out1, tf.add(out2, tf.add(out3, out4))));
}

// FaceFeatureExtractor.forwardInput's blocks: [dense0, dense1, dense2, dense3] of the batch.
function denseBlocks(tf, params, batch) {
  const x = tf.div(tf.sub(batch, tf.tensor1d(MEAN_RGB)), 255);
  const out = [];
  let cur = x;
  for (let b = 0; b < 4; b++) {
    cur = denseBlock4(tf, cur, params[`dense${b}`], b === 0);
    out.push(cur);
  }
  return out;
}

// Per image: M = mean_c A^2, min-max normalised, and the layers' weights (peak/mean - 1, shares).
function layerMaps(tf, blocks) {
  const raw = blocks.map((a) => tf.mean(tf.square(a), 3).arraySync().map((m) => m.flat()));
  const n = raw[0].length;
  const out = [];
  for (let i = 0; i < n; i++) {
    const maps = []; const w = [];
    for (const r of raw) {
      const m = r[i];
      const lo = Math.min(...m); const hi = Math.max(...m);
      const mean = m.reduce((s, v) => s + v, 0) / m.length;
      w.push(mean > 0 ? hi / mean - 1 : 0);
      maps.push(m.map((v) => (hi > lo ? (v - lo) / (hi - lo) : 0)));
    }
    const total = w.reduce((s, v) => s + v, 0);
    out.push({ maps, weights: w.map((v) => v / total) });
  }
  return out;
}

// CAM_k(i, j) = bias_k + sum_c W[c, k] F(i, j, c): [n][k][cells], summed in doubles from tfjs's
// float32 map and weights (as salient sums), so the comparison is not of two rounding orders.
function cams(tf, features, fc) {
  const [n, h, w, c] = features.shape;
  const f = features.dataSync(); const W = fc.weights.dataSync(); const b = fc.bias.dataSync();
  const k = b.length;
  const out = [];
  for (let i = 0; i < n; i++) {
    const per = [];
    for (let j = 0; j < k; j++) {
      const cam = new Array(h * w);
      for (let p = 0; p < h * w; p++) {
        let acc = b[j];
        const base = (i * h * w + p) * c;
        for (let q = 0; q < c; q++) acc += W[q * k + j] * f[base + q];
        cam[p] = acc;
      }
      per.push(cam);
    }
    out.push(per);
  }
  return out;
}

// min-max normalised, as the API reports a CAM
function norm01(v) {
  const lo = Math.min(...v); const hi = Math.max(...v);
  return v.map((x) => (hi > lo ? (x - lo) / (hi - lo) : 0));
}

// A CAM's errors: raw relative to its magnitude (max |CAM|, at least 1: float32 sums of 256-512
// terms of values up to a few hundred round at ~1e-5 absolute), and as reported (normalised).
function camErr(mine, want, worst) {
  const scale = Math.max(1, ...want.map(Math.abs));
  worst.abs = Math.max(worst.abs, maxErr(mine, want));
  worst.rel = Math.max(worst.rel, maxErr(mine, want) / scale);
  worst.norm = Math.max(worst.norm, maxErr(norm01(mine), norm01(want)));
  worst.scale = Math.max(worst.scale, scale);
}

function camLine(w) {
  return `max err ${w.abs.toExponential(2)} at values up to ${w.scale.toFixed(1)} (relative ${w.rel.toExponential(2)}),`
    + ` normalised as reported ${w.norm.toExponential(2)}`;
}

function camFail(what, w) {
  if (!(w.rel <= TOL && w.norm <= TOL)) fail(`${what} CAMs differ: relative ${w.rel}, normalised ${w.norm} (tolerance ${TOL})`);
}

function maxErr(a, b) {
  let e = 0;
  for (let i = 0; i < a.length; i++) e = Math.max(e, Math.abs(a[i] - b[i]));
  return a.length === b.length ? e : Infinity;
}

function ranks(v) {
  const idx = v.map((x, i) => i).sort((a, b) => v[a] - v[b]);
  const r = new Array(v.length);
  for (let i = 0; i < idx.length;) {
    let j = i;
    while (j + 1 < idx.length && v[idx[j + 1]] === v[idx[i]]) j++;
    for (let k = i; k <= j; k++) r[idx[k]] = (i + j) / 2;
    i = j + 1;
  }
  return r;
}

function spearman(a, b) {
  const ra = ranks(a); const rb = ranks(b);
  const ma = ra.reduce((s, v) => s + v, 0) / ra.length; const mb = rb.reduce((s, v) => s + v, 0) / rb.length;
  let sab = 0; let saa = 0; let sbb = 0;
  for (let i = 0; i < ra.length; i++) {
    sab += (ra[i] - ma) * (rb[i] - mb); saa += (ra[i] - ma) ** 2; sbb += (rb[i] - mb) ** 2;
  }
  return sab / Math.sqrt(saa * sbb);
}

// A copy of the expression net's weights with dense3's tensors re-drawn from a normal of each
// tensor's own mean and std (seeded), as one float32 shard; returns the manifest's file name.
async function randomisedExpression(ref0, env, dir) {
  const { tf } = ref0;
  const manifest = JSON.parse(fs.readFileSync(path.join(env.weights, 'face_expression_model-weights_manifest.json'), 'utf8'));
  const rand = ref.rng(20180802);
  const normal = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const named = {};
  for (const group of manifest) {
    const bufs = group.paths.map((p) => fs.readFileSync(path.join(env.weights, p)));
    const all = Buffer.concat(bufs);
    Object.assign(named, tf.io.decodeWeights(all.buffer.slice(all.byteOffset, all.byteOffset + all.length), group.weights));
  }
  for (const name of Object.keys(named)) {
    if (!name.startsWith('dense3/')) continue;
    const v = named[name].dataSync();
    const mean = v.reduce((s, x) => s + x, 0) / v.length;
    const std = Math.sqrt(v.reduce((s, x) => s + (x - mean) ** 2, 0) / v.length) || 1e-3;
    named[name] = tf.tensor(Float32Array.from(v, () => mean + std * normal()), named[name].shape);
  }
  const { data, specs } = await tf.io.encodeWeights(named);
  fs.writeFileSync(path.join(dir, 'face_expression_random.bin'), Buffer.from(data));
  const file = 'face_expression_random-weights_manifest.json';
  fs.writeFileSync(path.join(dir, file), JSON.stringify([{ paths: ['face_expression_random.bin'], weights: specs }]));
  return file;
}

function runMaps(model, net, input) {
  return ref.runSalient(['--model', model, '--net', net, '--input', input, '--attention']);
}

ref.runParity('parity-faceapi-attention', async (env, ref0, tmp) => {
  const { tf, fa } = ref0;
  const N = fa.nets;
  const model = ref.modelDir(env, tmp);
  const batch = await crops(ref0, env);
  const n = batch.shape[0];
  const input = path.join(tmp, 'crops.safetensors');
  ref.writeSafetensors(input, batch.shape, batch.dataSync());
  console.log(`${n} aligned face crops from ${ref.photos(env).length} demo photographs`);

  // expression: the chain must be face-api's own
  const eparams = N.faceExpressionNet.faceFeatureExtractor.params;
  const blocks = denseBlocks(tf, eparams, batch);
  const pooledMine = tf.mean(blocks[3], [1, 2]).dataSync();
  const pooledTheirs = N.faceExpressionNet.faceFeatureExtractor.forwardInput(await fa.toNetInput(tf.unstack(batch))).dataSync();
  const chainErr = maxErr(pooledMine, pooledTheirs);
  console.log(`dense blocks re-run on face-api's params vs its forwardInput: pooled features max err ${chainErr.toExponential(2)}`);
  if (!(chainErr <= 1e-5)) fail(`the test's dense chain is not face-api's (pooled features differ by ${chainErr})`);

  const got = runMaps(model, 'face_expression', input);
  const wantLayers = layerMaps(tf, blocks);
  const wantCams = cams(tf, blocks[3], N.faceExpressionNet.params.fc);
  const worst = { map: 0, weight: 0 };
  const ecam = { abs: 0, rel: 0, norm: 0, scale: 0 };
  for (let i = 0; i < n; i++) {
    const mine = got.maps[i];
    for (let b = 0; b < 4; b++) {
      const l = mine.layers[`face_expression/dense${b}`];
      if (!l) { fail(`face ${i}: no face_expression/dense${b} map`); continue; }
      worst.map = Math.max(worst.map, maxErr(l.map, wantLayers[i].maps[b]));
      worst.weight = Math.max(worst.weight, Math.abs(l.weight - wantLayers[i].weights[b]));
    }
    ref.EXPRESSIONS.forEach((label, k) => {
      const c = mine.cam[label];
      if (!c) { fail(`face ${i}: no CAM for ${label}`); return; }
      camErr(c.map, wantCams[i][k], ecam);
    });
  }
  console.log(`face_expression: layer maps (normalised) max err ${worst.map.toExponential(2)}, weights ${worst.weight.toExponential(2)}`);
  console.log(`  CAMs of the 7 expressions: ${camLine(ecam)}`);
  for (const k of Object.keys(worst)) if (!(worst[k] <= TOL)) fail(`face_expression layer ${k}s differ by ${worst[k]} (tolerance ${TOL})`);
  camFail('expression', ecam);

  // age and gender: TinyXception's output is face-api's own
  const exit = N.ageGenderNet.faceFeatureExtractor.forwardInput(await fa.toNetInput(tf.unstack(batch)));
  const ag = N.ageGenderNet.params.fc;
  const age = cams(tf, exit, ag.age); const gender = cams(tf, exit, ag.gender);
  const gotAg = runMaps(model, 'age_gender', input);
  const agcam = { abs: 0, rel: 0, norm: 0, scale: 0 };
  for (let i = 0; i < n; i++) {
    const want = { male: gender[i][0], female: gender[i][1], age: age[i][0] };
    for (const label of Object.keys(want)) {
      const c = gotAg.maps[i].cam[label];
      if (!c) { fail(`face ${i}: no CAM for ${label}`); continue; }
      camErr(c.map, want[label], agcam);
    }
  }
  console.log(`age_gender: CAMs of female, male, age: ${camLine(agcam)}`);
  camFail('age_gender', agcam);

  // model randomisation: dense3 re-drawn
  const rdir = path.join(tmp, 'random');
  fs.mkdirSync(rdir);
  const rfile = await randomisedExpression(ref0, env, rdir);
  const rmodel = ref.modelDir(env, rdir);
  const man = JSON.parse(fs.readFileSync(path.join(rmodel, 'manifest.json'), 'utf8'));
  man.weights.face_expression = rfile;
  fs.writeFileSync(path.join(rmodel, 'manifest.json'), JSON.stringify(man));
  fs.renameSync(path.join(rdir, rfile), path.join(rmodel, rfile));
  fs.renameSync(path.join(rdir, 'face_expression_random.bin'), path.join(rmodel, 'face_expression_random.bin'));
  const rgot = runMaps(rmodel, 'face_expression', input);
  const rhos = [];
  for (let i = 0; i < n; i++) {
    const probs = got.output.slice(i * 7, i * 7 + 7);
    const best = ref.EXPRESSIONS[probs.indexOf(Math.max(...probs))];
    rhos.push(spearman(got.maps[i].cam[best].map, rgot.maps[i].cam[best].map));
  }
  const over = rhos.filter((r) => !(r < RHO_MAX));
  console.log(`randomisation (dense3 re-drawn): Spearman rho of each face's best-expression CAM with the original:`
    + ` ${rhos.map((r) => r.toFixed(2)).join(' ')}; max ${Math.max(...rhos).toFixed(3)}`);
  if (over.length) fail(`${over.length} of ${n} faces keep a CAM rank correlation >= ${RHO_MAX} with dense3 randomised`);
}, () => failures);
