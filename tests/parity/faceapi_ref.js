// faceapi_ref.js: face-api itself under Node (tfjs wasm backend), and the files salient-faces reads, for the parity test and the bench.
//
//   const ref = require('./faceapi_ref.js');
//   const env = ref.environment();            // null (with env.why) when Node packages or weights are missing
//   const fa = await ref.faceapi(env);        // face-api with all seven nets loaded from env.weights
//   const img = ref.decodeJpeg(env, 'sample1.jpg');   // jpeg-js, RGB bytes
//   ref.writePpm('/tmp/x.ppm', img);          // the same pixels for salient-faces
//
// Paths: SALIENT_FACEAPI_DIR (default $SALIENT_SRCDIR/build/faceapi, what scripts/fetch-faceapi.sh
// fills: model/, demo/, node/node_modules). Nothing here touches the network: the wasm backend
// loads its .wasm from the package folder when no wasm path is set.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { createRequire } = require('module');
const { execFileSync } = require('child_process');

function environment() {
  const src = process.env.SALIENT_SRCDIR || path.resolve(__dirname, '..', '..');
  const dir = process.env.SALIENT_FACEAPI_DIR || path.join(src, 'build', 'faceapi');
  const nodeDir = path.join(dir, 'node');
  const env = { src, dir, nodeDir, weights: path.join(dir, 'model'), demo: path.join(dir, 'demo') };
  const need = [
    [path.join(env.weights, 'ssd_mobilenetv1_model-weights_manifest.json'), 'face-api weights (scripts/fetch-faceapi.sh)'],
    [path.join(env.demo, 'sample1.jpg'), 'face-api demo photographs (scripts/fetch-faceapi.sh)'],
    [path.join(nodeDir, 'node_modules', '@vladmandic', 'face-api', 'package.json'), 'Node packages (scripts/fetch-faceapi.sh --node)'],
    [path.join(nodeDir, 'node_modules', '@tensorflow', 'tfjs-backend-wasm', 'package.json'), 'tfjs wasm backend (scripts/fetch-faceapi.sh --node)'],
    [path.join(nodeDir, 'node_modules', 'jpeg-js', 'package.json'), 'jpeg-js (scripts/fetch-faceapi.sh --node)'],
  ];
  for (const [p, what] of need) {
    if (!fs.existsSync(p)) return { why: `${what} not found: ${p}` };
  }
  env.require = createRequire(path.join(nodeDir, 'package.json'));
  return env;
}

// face-api's FACE_EXPRESSION_LABELS (not exported by its bundle); salient's order too.
const EXPRESSIONS = ['neutral', 'happy', 'sad', 'angry', 'fearful', 'disgusted', 'surprised'];

let cached = null;
async function faceapi(env) {
  if (cached) return cached;
  const tf = env.require('@tensorflow/tfjs');
  env.require('@tensorflow/tfjs-backend-wasm');
  const fa = env.require('@vladmandic/face-api/dist/face-api.node-wasm.js');
  await tf.setBackend('wasm');
  await tf.ready();
  const n = fa.nets;
  for (const net of [n.ssdMobilenetv1, n.tinyFaceDetector, n.faceLandmark68Net, n.faceLandmark68TinyNet,
    n.faceRecognitionNet, n.faceExpressionNet, n.ageGenderNet]) {
    await net.loadFromDisk(env.weights);
  }
  cached = { tf, fa, backend: tf.getBackend(), version: fa.version };
  return cached;
}

function decodeJpeg(env, file) {
  const jpeg = env.require('jpeg-js');
  const raw = jpeg.decode(fs.readFileSync(file), { useTArray: true, formatAsRGBA: false, maxMemoryUsageInMB: 1024 });
  return { width: raw.width, height: raw.height, data: raw.data };
}

function writePpm(file, img) {
  const head = Buffer.from(`P6\n${img.width} ${img.height}\n255\n`, 'ascii');
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(img.data.buffer, img.data.byteOffset, img.width * img.height * 3)]));
}

// A safetensors file with one F32 tensor 'input' (NHWC).
function writeSafetensors(file, shape, data) {
  const bytes = data.length * 4;
  let header = JSON.stringify({ input: { dtype: 'F32', shape, data_offsets: [0, bytes] } });
  while (header.length % 8) header += ' ';
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  const f32 = Buffer.from(new Float32Array(data).buffer);
  fs.writeFileSync(file, Buffer.concat([len, Buffer.from(header, 'ascii'), f32]));
}

// The photographs in the package's demo/ folder, sorted.
function photos(env) {
  return fs.readdirSync(env.demo).filter((f) => f.endsWith('.jpg')).sort().map((f) => path.join(env.demo, f));
}

// salient-faces next to salient-run (the build's tools/), or SALIENT_FACES.
function salientFaces() {
  if (process.env.SALIENT_FACES) return process.env.SALIENT_FACES;
  if (process.env.SALIENT_RUN) return path.join(path.dirname(process.env.SALIENT_RUN), 'salient-faces');
  return path.resolve(__dirname, '..', '..', 'build', 'tools', 'salient-faces');
}

// A model folder for salient: the committed manifest next to (links to) the fetched weights.
function modelDir(env, tmp) {
  const dir = path.join(tmp, 'faces');
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(path.join(env.src, 'models', 'repo', 'faces', 'manifest.json'), path.join(dir, 'manifest.json'));
  for (const f of fs.readdirSync(env.weights)) {
    const to = path.join(dir, f);
    if (!fs.existsSync(to)) fs.symlinkSync(path.join(env.weights, f), to);
  }
  return dir;
}

function runSalient(args) {
  const out = execFileSync(salientFaces(), args, { maxBuffer: 1 << 30, encoding: 'utf8' });
  return JSON.parse(out);
}

// The environment for a parity test, or the exit: 77 (SKIP) without face-api, its Node packages
// or its weights; 1 when salient-faces is not built.
function environmentOrExit() {
  const env = environment();
  if (env.why) {
    console.log(`SKIP: ${env.why}`);
    process.exit(77);
  }
  if (!fs.existsSync(salientFaces())) {
    console.log(`FAIL: ${salientFaces()} not built`);
    process.exit(1);
  }
  return env;
}

// A parity test: its environment (or exit 77 / 1 as above), face-api loaded, a scratch folder
// removed afterwards; body(env, ref0, tmp) runs the checks. Exits 0 when failures() is 0, 1
// otherwise or on an exception.
function runParity(name, body, failures) {
  const env = environmentOrExit();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `${name}-`));
  (async () => {
    try {
      const ref0 = await faceapi(env);
      console.log(`face-api ${ref0.version}, tfjs backend ${ref0.backend}; salient ${salientFaces()}`);
      await body(env, ref0, tmp);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
    console.log(failures() ? `${failures()} check(s) failed` : 'all within tolerance');
    process.exit(failures() ? 1 : 0);
  })().catch((e) => {
    console.log(`FAIL: ${e.stack || e}`);
    process.exit(1);
  });
}

// mulberry32: the same pseudo-random numbers in [0, 1) on every run.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// face-api's whole pipeline on one decoded image, as plain numbers.
async function pipeline(ref, img, detector, score) {
  const { tf, fa } = ref;
  const t = tf.tensor3d(Int32Array.from(img.data), [img.height, img.width, 3], 'int32');
  const opts = detector === 'tiny_face_detector'
    ? new fa.TinyFaceDetectorOptions({ inputSize: 416, scoreThreshold: score })
    : new fa.SsdMobilenetv1Options({ minConfidence: score, maxResults: 100 });
  const res = await fa.detectAllFaces(t, opts).withFaceLandmarks().withFaceExpressions().withAgeAndGender()
    .withFaceDescriptors();
  t.dispose();
  return res.map((r) => ({
    box: { x: r.detection.box.x, y: r.detection.box.y, width: r.detection.box.width, height: r.detection.box.height },
    score: r.detection.score,
    landmarks: r.landmarks.positions.map((p) => [p.x, p.y]),
    age: r.age,
    male: r.gender === 'male' ? r.genderProbability : 1 - r.genderProbability,
    expression: EXPRESSIONS.map((k) => r.expressions[k]),
    descriptor: Array.from(r.descriptor),
  }));
}

module.exports = {
  EXPRESSIONS, environment, faceapi, decodeJpeg, writePpm, writeSafetensors, photos, salientFaces, modelDir, runSalient, pipeline, rng, runParity,
};
