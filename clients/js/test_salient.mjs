// test_salient.mjs: the JS client against a live salientd (tests/integration/test_clients.sh
// starts one). Runs under Node 18 and 20; prints "ok"/"FAIL" lines and "N passed, N failed".
//   SALIENT_URL=http://127.0.0.1:PORT SALIENT_KEYED_URL=http://127.0.0.1:PORT2 SALIENT_TEST_KEY=k \
//     node clients/js/test_salient.mjs PHANTOM.png OTHER.png
// The server must serve quadrant-demo and covid-resnet-demo (3 softmax labels each).
import { readFile } from 'node:fs/promises';
import { Client, SalientError, toBase64, overlaySrc } from './salient.js';

const [xrayPath, otherPath] = process.argv.slice(2);
const url = process.env.SALIENT_URL;
if (!url || !xrayPath || !otherPath) {
  console.error('usage: SALIENT_URL=... node test_salient.mjs IMAGE OTHER_IMAGE');
  process.exit(2);
}
let pass = 0, fail = 0;
const ok = (name) => { pass++; console.log('ok   ' + name); };
const bad = (name, why) => { fail++; console.log('FAIL ' + name + ': ' + why); };
async function check(name, fn) {
  try {
    const r = await fn();
    if (r === true) ok(name);
    else bad(name, typeof r === 'string' ? r : JSON.stringify(r));
  } catch (e) {
    bad(name, e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : String(e));
  }
}
async function rejects(fn) {
  try { await fn(); } catch (e) { return e; }
  return null;
}
const close = (a, b, tol) => Math.abs(a - b) <= tol;

const c = new Client({ url });
const xray = await readFile(xrayPath);
const other = await readFile(otherPath);

console.log('# node ' + process.version);
await check('live() and ready()', async () => (await c.live()) === true && (await c.ready()) === true);
await check('server() names salient', async () => (await c.server()).name === 'salient');
await check('models() lists the demo models, marked demo', async () => {
  const ms = await c.models();
  const q = ms.find((m) => m.name === 'quadrant-demo');
  return (q && q.demo === true && q.state === 'READY' && q.labels.length === 3) || JSON.stringify(ms.map((m) => m.name));
});
await check('model(name) describes one model', async () => (await c.model('covid-resnet-demo')).labels.join(',') === 'COVID-19,Normal,Viral Pneumonia');

let single;
await check('predict(Buffer): labels best first, softmax sums to 1, demo flagged', async () => {
  single = await c.predict('quadrant-demo', xray);
  const p = single.predictions[0];
  const s = p.labels.map((l) => l.score);
  const sorted = s.every((v, i) => i === 0 || s[i - 1] >= v);
  return (single.model === 'quadrant-demo' && single.demo === true && p.labels.length === 3 && sorted &&
    close(s.reduce((a, b) => a + b, 0), 1, 1e-4) && typeof p.timing_ms.compute === 'number') || JSON.stringify(single);
});
await check('predict(Blob) and predict(base64 string) give the same scores', async () => {
  const viaBlob = await c.predict('quadrant-demo', new Blob([xray], { type: 'image/png' }));
  const viaB64 = await c.predict('quadrant-demo', xray.toString('base64'));
  const want = single.predictions[0].labels;
  const same = (a) => a.predictions[0].labels.every((l, i) => l.label === want[i].label && close(l.score, want[i].score, 1e-6));
  return (same(viaBlob) && same(viaB64)) || JSON.stringify([viaBlob, viaB64]);
});
await check('predict(data: URI)', async () => {
  const r = await c.predict('quadrant-demo', 'data:image/png;base64,' + xray.toString('base64'), { top_k: 1 });
  return (r.predictions[0].labels.length === 1 && r.predictions[0].labels[0].label === single.predictions[0].labels[0].label) || JSON.stringify(r);
});
await check('predict([a, b], {top_k: 2}): two predictions in order', async () => {
  const both = await c.predict('quadrant-demo', [xray, other], { top_k: 2 });
  const one = await c.predict('quadrant-demo', other, { top_k: 2 });
  const p = both.predictions;
  return (p.length === 2 && p[0].labels.length === 2 && p[0].labels[0].label === single.predictions[0].labels[0].label &&
    close(p[1].labels[0].score, one.predictions[0].labels[0].score, 1e-5)) || JSON.stringify(both);
});
await check('inferV2: probs match v1 scores', async () => {
  const r = await c.inferV2('covid-resnet-demo', [xray, other]);
  const probs = r.outputs.find((o) => o.name === 'probs');
  const v1 = await c.predict('covid-resnet-demo', other);
  const labels = ['COVID-19', 'Normal', 'Viral Pneumonia'];
  const matches = v1.predictions[0].labels.every((l) => close(probs.data[3 + labels.indexOf(l.label)], l.score, 1e-5));
  return (r.model_name === 'covid-resnet-demo' && probs.shape.join() === '2,3' && matches) || JSON.stringify(r);
});
await check('unknown model rejects with SalientError 404 and the server\'s words', async () => {
  const e = await rejects(() => c.predict('no-such-model', xray));
  return (e instanceof SalientError && e.status === 404 && e.serverMessage === "no model named 'no-such-model' (see GET /v1/models)") || String(e);
});
await check('not an image rejects with 415', async () => {
  const e = await rejects(() => c.predict('quadrant-demo', new TextEncoder().encode('not an image')));
  return (e instanceof SalientError && e.status === 415 && /not a JPEG or PNG/.test(e.serverMessage)) || String(e);
});
await check('bad parameter rejects with 400 naming it', async () => {
  const e = await rejects(() => c.predict('quadrant-demo', xray, { top_k: 'three' }));
  return (e instanceof SalientError && e.status === 400 && /top_k/.test(e.serverMessage)) || String(e);
});
await check('metrics(): Prometheus text with this model\'s requests', async () => {
  const m = await c.metrics();
  return /salient_model_requests_total\{model="quadrant-demo",status="200"\} [1-9]/.test(m) || m.slice(0, 300);
});
await check('no server: status 0, says where', async () => {
  const e = await rejects(() => new Client({ url: 'http://127.0.0.1:9', timeoutMs: 5000 }).models());
  return (e instanceof SalientError && e.status === 0 && e.message.includes('cannot reach salientd at http://127.0.0.1:9')) || String(e);
});
await check('toBase64 of bytes, and a wrong type is a TypeError', async () => {
  const b = await toBase64(new Uint8Array([0xff, 0x00, 0x10]));
  const e = await rejects(() => toBase64(42));
  return (b === '/wAQ' && e instanceof TypeError) || b;
});

await check('attention png: overlays are PNGs, one per layer and CAM', async () => {
  const r = await c.predict('quadrant-demo', xray, { top_k: 2, attention: 'png', cam_labels: ['Normal', 'COVID-19'] });
  const a = r.predictions[0].attention;
  const ofs = a.overlays.map((o) => o.of);
  const pngs = a.overlays.every((o) => Buffer.from(o.png, 'base64').subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])));
  const want = [...a.layers.map((l) => 'attention/' + l.name), 'cam/Normal', 'cam/COVID-19'];
  return (pngs && want.every((w) => ofs.includes(w)) && overlaySrc(a.overlays[0]).startsWith('data:image/png;base64,iVBOR')) || JSON.stringify(ofs);
});

// Faces, when the server has the faces model (test_clients.sh passes two photographs).
const photos = (process.env.SALIENT_FACE_PHOTOS || '').split(' ').filter(Boolean);
if (photos.length === 2) {
  const [p1, p2] = await Promise.all(photos.map((p) => readFile(p)));
  await check('verify(a, a): same person', async () => {
    const v = await c.verify(p1, new Blob([p1]));
    return (v.same_person === true && v.distance < 1e-4 && v.threshold === 0.6) || JSON.stringify(v);
  });
  await check('verify(a, b, {threshold}): as asked', async () => {
    const v = await c.verify(p1, p2, { threshold: 0.9, model: 'faces' });
    return (v.threshold === 0.9 && v.same_person === v.distance < 0.9 && v.faces.length === 2) || JSON.stringify(v);
  });
  await check('verify with a radiograph: SalientError 422', async () => {
    const e = await rejects(() => c.verify(p1, xray));
    return (e instanceof SalientError && e.status === 422 && e.serverMessage.startsWith('no face found in image 2')) || String(e);
  });
  await check('predict on the faces model: faces with 68 landmarks and a 128-D descriptor', async () => {
    const r = await c.predict('faces', p1);
    const f = r.predictions[0].faces;
    return (f.length >= 1 && f[0].landmarks.length === 68 && f[0].descriptor.length === 128 && typeof f[0].age === 'number') || JSON.stringify(r).slice(0, 300);
  });
} else {
  console.log('# no face photos: verify not checked');
}

// A server with an API key: refused without it (401), with a wrong one (403), served with it.
const keyed = process.env.SALIENT_KEYED_URL;
if (keyed) {
  const key = process.env.SALIENT_TEST_KEY;
  await check('API key: none -> 401', async () => {
    const e = await rejects(() => new Client({ url: keyed }).models());
    return (e && e.status === 401) || String(e);
  });
  await check('API key: wrong -> 403', async () => {
    const e = await rejects(() => new Client({ url: keyed, apiKey: 'wrong' }).models());
    return (e && e.status === 403) || String(e);
  });
  await check('API key: right -> predictions', async () => {
    const r = await new Client({ url: keyed, apiKey: key }).predict('quadrant-demo', xray);
    return r.predictions.length === 1 || JSON.stringify(r);
  });
}

console.log(`${pass} passed, ${fail} failed`);
process.exit(fail ? 1 : 0);
