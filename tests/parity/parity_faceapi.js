// parity_faceapi.js: salient's faceapi family against face-api itself (Node, tfjs wasm backend): each network on fixed tensors, the whole pipeline on face-api's six demo photographs with both detectors, and verification.
//
// Exit 0 when every number is within tolerance, 1 otherwise, 77 when face-api, its Node packages or
// its weights are not installed (scripts/setup.sh --test installs them). Prints the worst error of
// each kind.
'use strict';

const path = require('path');
const ref = require('./faceapi_ref.js');

const TOL_NET = 1e-3;      // per-network outputs, max |salient - face-api|
const TOL_PX = 1.0;        // box corners and landmarks, pixels
const TOL_AGE = 0.1;       // years
const TOL_PROB = 0.005;    // gender and expression probabilities
const TOL_DESC = 0.005;    // Euclidean distance of descriptors
const SCORE = 0.5;         // detection threshold; faces above SCORE + 0.05 must match
const MARGIN = 0.05;

let failures = 0;
function fail(msg) {
  failures++;
  console.log(`FAIL ${msg}`);
}

// Two images of side x side x 3 (pixels 0..255 as floats): uniform noise, and a region of a
// photograph around its first face (nearest neighbour) so that activations look like real ones;
// for the detectors its right 30 % is zero, as face-api pads a portrait photo.
function inputs(photo, side, seed) {
  const rand = ref.rng(seed);
  const n = side * side * 3;
  const data = new Float32Array(2 * n);
  for (let i = 0; i < n; i++) data[i] = Math.floor(rand() * 256);
  const x0 = 380; const y0 = 320; const span = Math.min(260, photo.width - x0, photo.height - y0);
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const sx = x0 + Math.floor((x * span) / side); const sy = y0 + Math.floor((y * span) / side);
      const pad = side >= 416 && x >= Math.floor(side * 0.7);
      for (let c = 0; c < 3; c++) data[n + (y * side + x) * 3 + c] = pad ? 0 : photo.data[(sy * photo.width + sx) * 3 + c];
    }
  }
  return data;
}

async function faceapiNet(ref0, net, data, side) {
  const { tf, fa } = ref0;
  const n = side * side * 3;
  const ts = [0, 1].map((i) => tf.tensor3d(data.subarray(i * n, (i + 1) * n), [side, side, 3], 'float32'));
  const input = await fa.toNetInput(ts);
  const N = fa.nets;
  let out;
  if (net === 'ssd_mobilenetv1') {
    const { boxes, scores } = N.ssdMobilenetv1.forwardInput(input);
    out = [];
    for (let i = 0; i < 2; i++) out.push(...boxes[i].dataSync(), ...scores[i].dataSync());
  } else if (net === 'tiny_face_detector') {
    out = Array.from(N.tinyFaceDetector.forwardInput(input, side).dataSync());
  } else if (net === 'face_landmark_68') {
    out = Array.from(N.faceLandmark68Net.runNet(input).dataSync());
  } else if (net === 'face_landmark_68_tiny') {
    out = Array.from(N.faceLandmark68TinyNet.runNet(input).dataSync());
  } else if (net === 'face_recognition') {
    out = Array.from(N.faceRecognitionNet.forwardInput(input).dataSync());
  } else if (net === 'face_expression') {
    out = Array.from(N.faceExpressionNet.forwardInput(input).dataSync());
  } else if (net === 'age_gender') {
    const { age, gender } = N.ageGenderNet.forwardInput(input);
    const a = age.dataSync(); const g = gender.dataSync();
    out = [a[0], g[0], g[1], a[1], g[2], g[3]];
  }
  ts.forEach((t) => t.dispose());
  return out;
}

async function perNetwork(ref0, env, tmp, model, photo) {
  const nets = [['ssd_mobilenetv1', 512], ['tiny_face_detector', 416], ['face_landmark_68', 112],
    ['face_landmark_68_tiny', 112], ['face_recognition', 150], ['face_expression', 112], ['age_gender', 112]];
  console.log('worst errors against face-api (scripts/test.sh shows this log from here on)');
  console.log('per network, fixed inputs (noise + a photo region, batch 2), max |salient - face-api|:');
  for (const [net, side] of nets) {
    const data = inputs(photo, side, side * 7 + net.length);
    const file = path.join(tmp, `${net}.safetensors`);
    ref.writeSafetensors(file, [2, side, side, 3], data);
    const want = await faceapiNet(ref0, net, data, side);
    const got = ref.runSalient(['--model', model, '--net', net, '--input', file]).output;
    if (got.length !== want.length) {
      fail(`${net}: salient gave ${got.length} outputs, face-api ${want.length}`);
      continue;
    }
    let worst = 0; let at = 0; let scale = 0;
    for (let i = 0; i < got.length; i++) {
      const e = Math.abs(got[i] - want[i]);
      if (!(e <= worst)) { worst = e; at = i; }
      scale = Math.max(scale, Math.abs(want[i]));
    }
    const ok = worst <= TOL_NET;
    console.log(`  ${net.padEnd(22)} ${String(got.length).padStart(6)} outputs  max err ${worst.toExponential(2)}`
      + `  (outputs up to ${scale.toFixed(2)})  ${ok ? 'ok' : 'FAIL'}`);
    if (!ok) fail(`${net}: output ${at} is ${got[at]}, face-api ${want[at]}`);
  }
}

// 90 degrees clockwise.
function rotate(img) {
  const { width: w, height: h } = img;
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < w; y++) {
    for (let x = 0; x < h; x++) {
      for (let c = 0; c < 3; c++) data[(y * h + x) * 3 + c] = img.data[((h - 1 - x) * w + y) * 3 + c];
    }
  }
  return { width: h, height: w, data };
}

function iou(a, b) {
  const w = Math.max(0, Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x));
  const h = Math.max(0, Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y));
  const i = w * h;
  return i / (a.width * a.height + b.width * b.height - i);
}

function corners(b) {
  return [b.x, b.y, b.x + b.width, b.y + b.height];
}

async function pipelines(ref0, env, tmp, model, images) {
  for (const detector of ['ssd_mobilenetv1', 'tiny_face_detector']) {
    const worst = { score: 0, box: 0, landmarks: 0, age: 0, gender: 0, expression: 0, descriptor: 0 };
    let matched = 0; let total = 0;
    const got = ref.runSalient(['--model', model, '--detector', detector, '--score', String(SCORE),
      '--threads', detector === 'tiny_face_detector' ? '2' : '1', ...images.flatMap((im) => ['--image', im.ppm])]);
    for (let i = 0; i < images.length; i++) {
      const want = await ref.pipeline(ref0, images[i].img, detector, SCORE);
      const mine = got.images[i].faces;
      const name = path.basename(images[i].jpg);
      total += want.length;
      // every face either side finds clearly above the threshold must be found by the other
      for (const [from, to, who] of [[want, mine, 'salient'], [mine, want, 'face-api']]) {
        for (const f of from) {
          if (f.score <= SCORE + MARGIN) continue;
          if (!to.some((g) => iou(f.box, g.box) > 0.5)) fail(`${detector} ${name}: face at ${corners(f.box).map((v) => v.toFixed(1))} (score ${f.score.toFixed(3)}) not found by ${who}`);
        }
      }
      for (const w of want) {
        let best = null; let bi = 0;
        for (const g of mine) {
          const v = iou(w.box, g.box);
          if (v > bi) { bi = v; best = g; }
        }
        if (!best || bi <= 0.5) continue;
        matched++;
        const err = {
          score: Math.abs(best.score - w.score),
          box: Math.max(...corners(best.box).map((v, k) => Math.abs(v - corners(w.box)[k]))),
          landmarks: Math.max(...w.landmarks.map((p, k) => Math.max(Math.abs(p[0] - best.landmarks[k][0]), Math.abs(p[1] - best.landmarks[k][1])))),
          age: Math.abs(best.age - w.age),
          gender: Math.abs((best.gender.label === 'male' ? best.gender.score : 1 - best.gender.score) - w.male),
          expression: Math.max(...ref.EXPRESSIONS.map((k, j) => Math.abs(best.expression.scores[k] - w.expression[j]))),
          descriptor: Math.sqrt(w.descriptor.reduce((s, v, k) => s + (v - best.descriptor[k]) ** 2, 0)),
        };
        const tol = { score: 1e-3, box: TOL_PX, landmarks: TOL_PX, age: TOL_AGE, gender: TOL_PROB, expression: TOL_PROB, descriptor: TOL_DESC };
        for (const k of Object.keys(err)) {
          worst[k] = Math.max(worst[k], err[k]);
          if (!(err[k] <= tol[k])) fail(`${detector} ${name} face ${corners(w.box).map((v) => v.toFixed(1))}: ${k} differs by ${err[k]} (tolerance ${tol[k]})`);
        }
      }
    }
    console.log(`${detector}: ${matched} of ${total} face-api faces matched on ${images.length} images; worst errors:`);
    console.log(`  score ${worst.score.toExponential(2)}, box corners ${worst.box.toFixed(4)} px, landmarks ${worst.landmarks.toFixed(4)} px,`
      + ` age ${worst.age.toFixed(4)} y, gender p ${worst.gender.toExponential(2)}, expression p ${worst.expression.toExponential(2)},`
      + ` descriptor distance ${worst.descriptor.toExponential(2)}`);
  }
}

async function verification(ref0, env, model, images) {
  const { tf, fa } = ref0;
  const opts = new fa.SsdMobilenetv1Options({ minConfidence: SCORE });
  const single = async (img) => {
    const t = tf.tensor3d(Int32Array.from(img.data), [img.height, img.width, 3], 'int32');
    const r = await fa.detectSingleFace(t, opts).withFaceLandmarks().withFaceDescriptor();
    t.dispose();
    return r;
  };
  for (const [a, b] of [[0, 0], [0, 1], [2, 4]]) {
    const [ra, rb] = [await single(images[a].img), await single(images[b].img)];
    const want = fa.euclideanDistance(ra.descriptor, rb.descriptor);
    const got = ref.runSalient(['--model', model, '--verify', '--image', images[a].ppm, '--image', images[b].ppm]);
    const err = Math.abs(got.distance - want);
    const ok = err <= 2 * TOL_DESC && got.same_person === (want < 0.6);
    console.log(`verify ${path.basename(images[a].jpg)} ${path.basename(images[b].jpg)}: distance ${got.distance.toFixed(4)}`
      + ` (face-api ${want.toFixed(4)}, err ${err.toExponential(2)}), same_person ${got.same_person}  ${ok ? 'ok' : 'FAIL'}`);
    if (!ok) fail(`verify ${a} ${b}: distance ${got.distance} vs ${want}, same_person ${got.same_person}`);
  }
}

ref.runParity('parity-faceapi', async (env, ref0, tmp) => {
  const model = ref.modelDir(env, tmp);
  const images = ref.photos(env).map((jpg) => ({ jpg, img: ref.decodeJpeg(env, jpg) }));
  // and the first one turned to portrait: face-api pads it on the right instead of the bottom
  images.push({ jpg: `${images[0].jpg} (rotated)`, img: rotate(images[0].img) });
  images.forEach((im, i) => {
    im.ppm = path.join(tmp, `photo${i}.ppm`);
    ref.writePpm(im.ppm, im.img);
  });
  await perNetwork(ref0, env, tmp, model, images[0].img);
  await pipelines(ref0, env, tmp, model, images);
  await verification(ref0, env, model, images);
}, () => failures);
