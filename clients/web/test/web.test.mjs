// web.test.mjs: the demo frontend in a real browser (Debian's Chromium, headless, driven by
// playwright-core) against a live salientd. tests/integration/test_web.sh starts the servers
// and runs this with:
//   SALIENT_URL       a salientd with --web-root clients/web serving chexnet-demo (and faces, if any)
//   SALIENT_KEYED_URL the same with --api-key $SALIENT_TEST_KEY
//   XRAY              a phantom PNG;  PHOTO  a photograph with FACES faces, PHOTO2 another person (optional)
//   OUT               where screenshots go;  CHROMIUM  the browser (default /usr/bin/chromium)
// Prints "ok"/"FAIL" lines and "N passed, N failed".
import { readFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import zlib from 'node:zlib';
import { chromium } from 'playwright-core';
import { Client } from '../../js/salient.js';

const env = process.env;
const url = env.SALIENT_URL;
const out = env.OUT || '.';
await mkdir(out, { recursive: true });
let pass = 0, fail = 0;
const ok = (n) => { pass++; console.log('ok   ' + n); };
const bad = (n, why) => { fail++; console.log('FAIL ' + n + ': ' + String(why).slice(0, 500)); };
const expect = (n, cond, why) => (cond ? ok(n) : bad(n, why));
const shot = async (page, name) => {
  const file = path.join(out, name);
  await page.screenshot({ path: file, fullPage: true });
  console.log('# screenshot ' + file);
};

const browser = await chromium.launch({
  executablePath: env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
});
const origins = new Set();
const problems = [];
async function newPage(base) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith('data:') && !u.startsWith('blob:')) origins.add(new URL(u).origin);
  });
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => {
    // The browser logs failed fetches (the error cases below ask for them) as console errors.
    if (m.type() === 'error' && !/Failed to load resource: the server responded with a status of (4\d\d|503)/.test(m.text())) problems.push('console: ' + m.text());
  });
  await page.goto(base + '/');
  await page.waitForSelector('body[data-ready="true"]', { timeout: 30000 });
  return page;
}
// A grayscale PNG of w x h (a diagonal gradient), made here so the test needs no image library.
function grayPng(w, h) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // grayscale
  const raw = Buffer.alloc((w + 1) * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) raw[y * (w + 1) + 1 + x] = (x + y) & 0xff;
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}
const waitDone = (page) => page.waitForSelector('#result[data-state="done"], #result[data-state="error"]', { timeout: 180000 });

try {
  // ---- an X-ray ----
  const page = await newPage(url);
  const options = await page.$$eval('#model option', (os) => os.map((o) => o.textContent));
  expect('models listed, demo ones marked', options.some((t) => t === 'chexnet-demo  — DEMO'), options);
  await page.selectOption('#model', 'chexnet-demo');
  expect('demo banner shown for a demo model', await page.isVisible('#demo-banner') &&
    /Demo model: DEMO weights trained from scratch on synthetic phantoms/.test(await page.textContent('#demo-banner')), await page.textContent('#demo-banner'));
  await page.setInputFiles('#file', env.XRAY);
  await waitDone(page);
  const state = await page.getAttribute('#result', 'data-state');
  expect('X-ray analysed', state === 'done', state + ' ' + (await page.textContent('#error')));
  const labels = await page.$$eval('#labels li', (ls) => ls.map((l) => ({ label: l.dataset.label, score: Number(l.dataset.score), text: l.textContent })));
  const direct = await new Client({ url }).predict('chexnet-demo', await readFile(env.XRAY));
  const want = direct.predictions[0].labels;
  expect('14 findings shown best first, as the API answers', labels.length === 14 &&
    labels.every((l, i) => l.label === want[i].label && Math.abs(l.score - want[i].score) < 1e-6), JSON.stringify(labels.slice(0, 3)));
  expect('each finding has a bar and a percentage', labels[0].text === `${want[0].label.replace(/_/g, ' ')}${(100 * want[0].score).toFixed(1)}%`, labels[0].text);
  const width = await page.$eval('#labels li .fill', (f) => f.style.width);
  expect('the best bar is as wide as its score', width === (100 * want[0].score).toFixed(1) + '%', width);
  expect('the answer is flagged as from a demo model', await page.isVisible('#demo-answer'));

  const hasAttention = await page.isVisible('#attention-controls');
  if (!hasAttention) {
    console.log('# no attention controls: ' + (await page.textContent('#attention-note')));
    expect('without attention maps the page says why', await page.isVisible('#attention-note'), 'no note');
  } else {
    const src = await page.getAttribute('#overlay', 'src');
    const of = await page.getAttribute('#overlay', 'data-of');
    expect('overlay shown: the best finding\'s CAM as a PNG', await page.isVisible('#overlay') && src.startsWith('data:image/png;base64,iVBOR') &&
      of === 'cam/' + want[0].label, of);
    const natural = await page.$eval('#overlay', (i) => [i.naturalWidth, i.naturalHeight]);
    const image = await page.$eval('#image', (i) => [i.naturalWidth, i.naturalHeight]);
    expect('overlay is the input\'s size', natural.join() === image.join(), natural + ' vs ' + image);
    await shot(page, 'xray-cam.png');
    await page.click('#show-layers');
    const first = await page.getAttribute('#overlay', 'data-of');
    await page.click('#layer-next');
    const second = await page.getAttribute('#overlay', 'data-of');
    const steps = await page.$$eval('#layer-weights button', (bs) => bs.length);
    expect('layers step shallow to deep', first === 'attention/denseblock1' && second === 'attention/denseblock2' && steps === 4, [first, second, steps]);
    await page.fill('#layer-range', '3');
    expect('the slider picks a layer', (await page.getAttribute('#overlay', 'data-of')) === 'attention/denseblock4');
    await shot(page, 'xray-layer.png');
    const other = want[2].label;
    await page.click(`#labels li[data-label="${other}"]`);
    await page.waitForFunction((o) => document.getElementById('overlay').dataset.of === 'cam/' + o, other, { timeout: 120000 });
    expect('clicking another finding shows its CAM', true);
    await page.selectOption('#cam-label', want[0].label);
    expect('the CAM picker switches back', (await page.getAttribute('#overlay', 'data-of')) === 'cam/' + want[0].label);
    await page.click('#show-image');
    expect('"Image only" hides the overlay', !(await page.isVisible('#overlay')));
  }
  await shot(page, 'xray.png');

  // ---- a large image is sent scaled down, and its overlays fit it ----
  await page.setInputFiles('#file', { name: 'large.png', mimeType: 'image/png', buffer: grayPng(2600, 2000) });
  await waitDone(page);
  const caption = await page.textContent('#caption');
  expect('a 2600x2000 image is sent at 2048x1575, and the page says so', caption.includes('sent at 2048×1575, scaled down from 2600×2000'), caption);
  const sent = await page.$eval('#image', (i) => [i.naturalWidth, i.naturalHeight]);
  const ov = hasAttention ? await page.$eval('#overlay', (i) => [i.naturalWidth, i.naturalHeight]) : sent;
  expect('... the shown image and its overlay are the size sent', sent.join() === '2048,1575' && ov.join() === '2048,1575', sent + ' / ' + ov);

  // ---- a file the server refuses: the error in words ----
  await page.setInputFiles('#file', { name: 'notes.png', mimeType: 'image/png', buffer: Buffer.from('these are not pixels') });
  await waitDone(page);
  const err = await page.textContent('#error');
  expect('a refused file: the error in words with the server\'s reason', await page.isVisible('#error') &&
    err.includes('This file is not an image the server can read (PNG or JPEG).') && err.includes('not a JPEG or PNG image'), err);
  await shot(page, 'error.png');

  // ---- a photograph with faces ----
  const faces = await page.$$eval('#model option', (os) => os.filter((o) => !o.disabled).map((o) => o.value).filter((v) => /face/.test(v)));
  if (env.PHOTO && faces.length) {
    await page.selectOption('#model', faces[0]);
    await page.setInputFiles('#file', env.PHOTO);
    await waitDone(page);
    const n = Number(await page.getAttribute('#face-count', 'data-count'));
    expect(`faces found in the photograph (${n}, want ${env.FACES})`, n === Number(env.FACES), await page.textContent('#error'));
    const items = await page.$$eval('#faces li', (ls) => ls.map((l) => l.textContent));
    expect('each face lists age, gender and expression', items.length === n && items.every((t) => /age ≈ \d+/.test(t) && /(male|female)/.test(t)), items[0]);
    expect('boxes and landmarks drawn over the photo', await page.isVisible('#faces-canvas'));
    await shot(page, 'photo-faces.png');
    // Compare two faces: the same photo twice, then two people.
    expect('the compare panel is offered with a faces model', await page.isVisible('#verify'));
    await page.setInputFiles('#verify-a', env.PHOTO);
    await page.setInputFiles('#verify-b', env.PHOTO);
    await page.click('#verify-go');
    await page.waitForSelector('#verify-result[data-same]', { timeout: 180000 });
    const same = await page.textContent('#verify-result');
    expect('the same photo twice: "Same person"', same.startsWith('Same person — descriptor distance 0.000'), same);
    await page.evaluate(() => delete document.getElementById('verify-result').dataset.same);
    await page.setInputFiles('#verify-b', env.PHOTO2);
    await page.click('#verify-go');
    await page.waitForSelector('#verify-result[data-same]', { timeout: 180000 });
    const differ = await page.textContent('#verify-result');
    expect('two people: "Different people"', differ.startsWith('Different people — descriptor distance'), differ);
    await shot(page, 'photo-verify.png');
  } else {
    console.log('# no faces model on this server (or no photo): real face checks skipped');
  }
  await page.close();

  // ---- the face view, fed a fabricated answer of the documented shape ----
  // (DESIGN.md's v1 faces fields; checks the drawing and the attribute list whatever model serves.)
  const fp = await newPage(url);
  const fake = (x, y, w, h, age, gender, expr) => ({
    box: { x, y, width: w, height: h }, score: 0.99,
    landmarks: Array.from({ length: 68 }, (_, i) => [x + (w * (i % 17)) / 16, y + h * (0.3 + 0.6 * Math.floor(i / 17) / 3)]),
    age, gender: { label: gender, score: 0.9 },
    expression: { label: expr, scores: { neutral: 0.05, happy: expr === 'happy' ? 0.9 : 0.02, sad: 0.03, angry: 0.01, fearful: 0.01, disgusted: 0.01, surprised: expr === 'surprised' ? 0.9 : 0.02 } },
    descriptor: Array(128).fill(0.01),
  });
  await fp.route('**/v1/models', async (route) => {
    const res = await route.fetch();
    const body = await res.json();
    body.models.push({ name: 'faces-fabricated', version: '1', family: 'faceapi', task: 'faces', demo: false, state: 'READY', labels: [], input: [0, 0, 3], manifest: {} });
    await route.fulfill({ response: res, json: body });
  });
  await fp.route('**/v1/models/faces-fabricated:predict', (route) => route.fulfill({
    json: { model: 'faces-fabricated', version: '1', demo: false, predictions: [{ faces: [fake(20, 30, 60, 80, 31.4, 'female', 'happy'), fake(150, 40, 50, 70, 58.6, 'male', 'surprised')], timing_ms: { queue: 0.1, preprocess: 1, compute: 2 } }] },
  }));
  await fp.reload();
  await fp.waitForSelector('body[data-ready="true"]');
  await fp.selectOption('#model', 'faces-fabricated');
  await fp.setInputFiles('#file', env.XRAY);
  await waitDone(fp);
  const items = await fp.$$eval('#faces li', (ls) => ls.map((l) => l.textContent));
  expect('face view: count, and age, gender, expression per face', (await fp.textContent('#face-count')) === '2 faces' &&
    items[0].startsWith('Face 1: detection 99.0%, age ≈ 31, female (90.0%), happy (90.0%)') && items[1].includes('male') && items[1].includes('surprised'), items.join(' | '));
  const drawn = await fp.$eval('#faces-canvas', (cv) => {
    const g = cv.getContext('2d');
    const at = (x, y) => Array.from(g.getImageData(x, y, 1, 1).data);
    return { size: [cv.width, cv.height], boxEdge: at(20, 60), inside: at(50, 45), landmark: at(20 + 60 * 8 / 16, 30 + 80 * 0.3) };
  });
  const image = await fp.$eval('#image', (i) => [i.naturalWidth, i.naturalHeight]);
  expect('face view: the canvas is the image\'s size, box edges and landmarks drawn, the face itself left clear',
    drawn.size.join() === image.join() && drawn.boxEdge[3] === 255 && drawn.inside[3] === 0 && drawn.landmark[0] > 200, JSON.stringify(drawn));
  expect('face view: no labels for a face model', !(await fp.isVisible('#labels-box')));
  await shot(fp, 'faces-fabricated.png');
  await fp.close();

  // ---- a server with an API key ----
  if (env.SALIENT_KEYED_URL) {
    const kp = await newPage(env.SALIENT_KEYED_URL);
    const e401 = await kp.textContent('#error');
    expect('no key: the page asks for one', e401.includes('This server needs an API key') && (await kp.getAttribute('#key-panel', 'open')) !== null, e401);
    await shot(kp, 'key-needed.png');
    await kp.fill('#api-key', 'wrong-key');
    await kp.click('#key-form button[type="submit"]');
    await kp.waitForSelector('#error:not([hidden])[data-status="403"]', { timeout: 10000 }).catch(() => null);
    expect('a wrong key: "not accepted"', (await kp.textContent('#error')).includes('The API key was not accepted.'));
    await kp.fill('#api-key', env.SALIENT_TEST_KEY);
    await kp.click('#key-form button[type="submit"]');
    await kp.waitForFunction(() => !document.getElementById('model').disabled, null, { timeout: 10000 });
    await kp.setInputFiles('#file', env.XRAY);
    await waitDone(kp);
    expect('with the key the X-ray is analysed', (await kp.getAttribute('#result', 'data-state')) === 'done' && (await kp.$$('#labels li')).length > 0,
      await kp.textContent('#error'));
    await shot(kp, 'key-accepted.png');
  }

  const allowed = new Set([new URL(url).origin, env.SALIENT_KEYED_URL && new URL(env.SALIENT_KEYED_URL).origin].filter(Boolean));
  expect('no request left the server (no CDN, nothing external)', [...origins].every((o) => allowed.has(o)), [...origins].join(' '));
  expect('no script errors in the page', problems.length === 0, problems.join(' | '));
} catch (e) {
  bad('the browser run', e.stack || e);
} finally {
  await browser.close();
}
console.log(`${pass} passed, ${fail} failed`);
process.exit(fail ? 1 : 0);
