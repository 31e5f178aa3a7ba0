// app.js: the demo frontend. Talks to the salientd that served it (same origin) through the
// same client module the Node tests use (salient.js). No framework, no build step.
import { Client, SalientError, overlaySrc } from './salient.js';

const $ = (id) => document.getElementById(id);
const KEY_STORE = 'salient.apiKey';
// Larger images are sent scaled down to this many pixels on their long side: the models see
// 128-224 pixels anyway, and full-size overlays of a 3000x3000 radiograph would be tens of MB.
const MAX_SIDE = 2048;
const MODEL_STORE = 'salient.model';

const state = {
  client: null,
  models: [],          // GET /v1/models
  model: null,         // the chosen one
  file: null,          // the image being shown
  imageUrl: null,      // its object URL
  answer: null,        // the last predict answer
  overlays: new Map(), // "attention/<layer>" | "cam/<label>" -> data: URL
  layers: [],          // [{name, weight, grid}] from the answer
  cams: new Map(),     // label -> {range, grid}
  view: 'image',       // 'image' | 'layers' | 'cam'
  layerIndex: 0,
  camLabel: null,
  run: 0,              // bumps on every new prediction, so late answers are dropped
};

// ---- errors in words ----------------------------------------------------------------------

const STATUS_WORDS = {
  0: 'Cannot reach the server.',
  400: 'The server could not use this request.',
  401: 'This server needs an API key. Enter it under “API key” at the top right.',
  403: 'The API key was not accepted.',
  404: 'Not found on this server.',
  413: 'The image is too large for this server.',
  415: 'This file is not an image the server can read (PNG or JPEG).',
  422: 'No face was found in one of the photos.',
  429: 'The server is busy. Try again in a moment.',
  500: 'The server failed on this request (a bug on our side).',
  503: 'The server is busy or still loading its models. Try again in a moment.',
  504: 'The server took too long to answer. Try again.',
};

function showError(err, context) {
  const status = err instanceof SalientError ? err.status : 0;
  const title = STATUS_WORDS[status] || `The server answered with status ${status}.`;
  const detail = err instanceof SalientError ? err.serverMessage : (err && err.message) || String(err);
  $('error-title').textContent = (context ? context + ': ' : '') + title;
  $('error-text').textContent = detail ? ` (${status ? 'server says' : 'details'}: ${detail})` : '';
  $('error').hidden = false;
  $('error').dataset.status = String(status);
  if (status === 401 || status === 403) $('key-panel').open = true;
}

function clearError() {
  $('error').hidden = true;
  delete $('error').dataset.status;
}

function busy(text) {
  $('busy').hidden = !text;
  $('busy-text').textContent = text || '';
}

// ---- server, key, models ------------------------------------------------------------------

function makeClient() {
  state.client = new Client({ url: '', apiKey: sessionStorage.getItem(KEY_STORE) || null });
}

async function checkServer() {
  const el = $('server-state');
  try {
    const ready = await state.client.ready();
    el.textContent = ready ? 'server ready' : 'server not ready';
    el.className = 'state ' + (ready ? 'ok' : 'warn');
    el.title = ready ? 'every model is loaded' : 'starting, draining, or a model is not loaded (GET /v2/health/ready)';
  } catch (e) {
    el.textContent = 'server unreachable';
    el.className = 'state bad';
  }
}

function isFaces(m) {
  return m && (m.task === 'faces' || m.family === 'faceapi');
}

function hasAttention(m) {
  const a = m && m.manifest && m.manifest.attention;
  return Boolean(a && ((a.layers && a.layers.length) || (a.cam && a.cam !== 'none')));
}

function modelLabel(m) {
  return m.name + (m.demo ? '  — DEMO' : '') + (m.state !== 'READY' ? '  (not loaded)' : '');
}

async function loadModels() {
  const sel = $('model');
  try {
    state.models = await state.client.models();
  } catch (e) {
    sel.replaceChildren(new Option('no models (see the message above)', ''));
    sel.disabled = true;
    showError(e, 'Listing the models');
    return;
  }
  clearError();
  sel.replaceChildren();
  for (const m of state.models) {
    const o = new Option(modelLabel(m), m.name);
    o.disabled = m.state !== 'READY';
    if (o.disabled && m.reason) o.title = m.reason;
    sel.append(o);
  }
  const ready = state.models.filter((m) => m.state === 'READY');
  if (!ready.length) {
    sel.disabled = true;
    showError(new SalientError(503, 'no model is loaded on this server'), 'Models');
    return;
  }
  const remembered = sessionStorage.getItem(MODEL_STORE);
  const pick = ready.find((m) => m.name === remembered) || ready[0];
  sel.value = pick.name;
  sel.disabled = false;
  selectModel(pick.name, false);
  $('verify').hidden = !state.models.some((m) => isFaces(m) && m.state === 'READY');
}

function selectModel(name, rerun) {
  const m = state.models.find((x) => x.name === name);
  state.model = m;
  sessionStorage.setItem(MODEL_STORE, name);
  const bits = [m.family, m.task];
  if (m.labels && m.labels.length) bits.push(`${m.labels.length} labels`);
  if (m.input && m.input[0]) bits.push(`input ${m.input[0]}×${m.input[1]}`);
  bits.push('version ' + m.version);
  $('model-info').textContent = bits.filter(Boolean).join(' · ');
  const banner = $('demo-banner');
  banner.hidden = !m.demo;
  if (m.demo) {
    const note = m.manifest && m.manifest.provenance && m.manifest.provenance.demo_note;
    banner.textContent = 'Demo model: ' + (note || 'demo weights, not for clinical use') + '.';
  }
  if (rerun && state.file) predict(state.file);
}

// ---- prediction ---------------------------------------------------------------------------

// {image, note}: the file itself, or a PNG copy at most MAX_SIDE pixels on its long side.
// Anything the browser cannot decode goes as it is, for the server to say what is wrong.
async function fitForUpload(file) {
  let bmp;
  try {
    bmp = await createImageBitmap(file);
  } catch (e) {
    return { image: file, note: '' };
  }
  const { width, height } = bmp;
  if (Math.max(width, height) <= MAX_SIDE) {
    bmp.close();
    return { image: file, note: '' };
  }
  const scale = MAX_SIDE / Math.max(width, height);
  const w = Math.round(width * scale), h = Math.round(height * scale);
  const cv = document.createElement('canvas');
  cv.width = w;
  cv.height = h;
  const g = cv.getContext('2d');
  g.imageSmoothingQuality = 'high';
  g.drawImage(bmp, 0, 0, w, h);
  bmp.close();
  const blob = await new Promise((resolve) => cv.toBlob(resolve, 'image/png'));
  if (!blob) return { image: file, note: '' };
  return { image: new File([blob], file.name, { type: 'image/png' }), note: `sent at ${w}×${h}, scaled down from ${width}×${height}` };
}

async function predict(original) {
  const m = state.model;
  if (!m) return;
  const run = ++state.run;
  clearError();
  $('result').dataset.state = 'busy';
  busy(`Reading ${original.name}…`);
  const { image: file, note } = await fitForUpload(original);
  if (run !== state.run) return;
  state.file = file;
  state.uploadNote = note;
  if (state.imageUrl) URL.revokeObjectURL(state.imageUrl);
  state.imageUrl = URL.createObjectURL(file);
  $('image').src = state.imageUrl;
  $('result').hidden = false;
  $('result').dataset.state = 'busy';
  resetResult();
  busy(`Analysing ${file.name} with ${m.name}…`);
  const wantAttention = hasAttention(m);
  let answer;
  let attentionNote = '';
  try {
    try {
      answer = await state.client.predict(m.name, file, wantAttention ? { attention: 'png' } : undefined);
    } catch (e) {
      // A server (or model) without attention maps still answers the prediction.
      if (!(wantAttention && e instanceof SalientError && e.status === 400 && /attention|cam_labels/.test(e.serverMessage))) throw e;
      attentionNote = 'No attention maps: ' + e.serverMessage;
      answer = await state.client.predict(m.name, file);
    }
  } catch (e) {
    if (run !== state.run) return;
    busy('');
    $('result').dataset.state = 'error';
    showError(e, `Analysing ${file.name}`);
    return;
  }
  if (run !== state.run) return;
  busy('');
  state.answer = answer;
  render(answer, attentionNote);
  $('result').dataset.state = 'done';
}

function resetResult() {
  state.overlays.clear();
  state.cams.clear();
  state.layers = [];
  state.view = 'image';
  state.layerIndex = 0;
  state.camLabel = null;
  $('labels').replaceChildren();
  $('faces').replaceChildren();
  $('labels-box').hidden = true;
  $('faces-box').hidden = true;
  $('attention-controls').hidden = true;
  $('attention-note').hidden = true;
  $('overlay').hidden = true;
  $('overlay').removeAttribute('src');
  $('faces-canvas').hidden = true;
  $('timing').textContent = '';
  $('caption').textContent = '';
  $('demo-answer').hidden = true;
}

function render(answer, attentionNote) {
  const p = answer.predictions[0];
  $('caption').textContent = `${state.file.name} — ${answer.model} version ${answer.version}` + (state.uploadNote ? ` — ${state.uploadNote}` : '');
  if (answer.demo) {
    $('demo-answer').hidden = false;
    $('demo-answer').textContent = `This answer comes from a demo model (${answer.model}): do not read it as a finding.`;
  }
  if (p.labels) renderLabels(p.labels);
  if (p.faces) renderFaces(p.faces);
  if (p.attention) takeAttention(p.attention);
  renderAttention();
  if (attentionNote) {
    $('attention-note').hidden = false;
    $('attention-note').textContent = attentionNote;
  }
  const t = p.timing_ms || {};
  const parts = ['queue', 'preprocess', 'compute'].filter((k) => typeof t[k] === 'number').map((k) => `${k} ${t[k].toFixed(1)} ms`);
  if (t.batch) parts.push(`batch of ${t.batch}`);
  $('timing').textContent = parts.join(' · ');
}

function pct(score) {
  return (100 * score).toFixed(1) + '%';
}

function renderLabels(labels) {
  const m = state.model;
  $('labels-box').hidden = false;
  $('labels-kind').textContent = m && m.task === 'multilabel'
    ? '(each finding scored on its own, 0–100%)'
    : '(probabilities, adding up to 100%)';
  const list = $('labels');
  list.replaceChildren();
  for (const l of labels) {
    const li = document.createElement('li');
    li.dataset.label = l.label;
    li.dataset.score = String(l.score);
    li.tabIndex = 0;
    li.title = `show the class activation map of ${l.label}`;
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = l.label.replace(/_/g, ' ');
    const bar = document.createElement('span');
    bar.className = 'bar';
    const fill = document.createElement('span');
    fill.className = 'fill' + (l.score >= 0.5 ? ' high' : '');
    fill.style.width = Math.max(0, Math.min(100, 100 * l.score)).toFixed(1) + '%';
    bar.append(fill);
    const value = document.createElement('span');
    value.className = 'value';
    value.textContent = pct(l.score);
    li.append(name, bar, value);
    li.addEventListener('click', () => showCam(l.label));
    li.addEventListener('keydown', (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); showCam(l.label); } });
    list.append(li);
  }
}

// ---- attention ----------------------------------------------------------------------------

function takeAttention(att) {
  if (att.layers && !state.layers.length) state.layers = att.layers.map((l) => ({ name: l.name, weight: l.weight, grid: l.grid }));
  for (const c of att.cam || []) state.cams.set(c.label, { range: c.range, grid: c.grid });
  for (const o of att.overlays || []) state.overlays.set(o.of, overlaySrc(o));
  if (!state.camLabel && att.cam && att.cam.length) state.camLabel = att.cam[0].label;
}

function renderAttention() {
  const hasLayers = state.layers.some((l) => state.overlays.has('attention/' + l.name));
  const hasCam = [...state.overlays.keys()].some((k) => k.startsWith('cam/'));
  if (!hasLayers && !hasCam) return;
  $('attention-controls').hidden = false;
  $('show-layers').disabled = !hasLayers;
  $('show-cam').disabled = !hasCam;
  const range = $('layer-range');
  range.max = String(Math.max(0, state.layers.length - 1));
  // The weights: at which depth the model looked.
  const w = $('layer-weights');
  w.replaceChildren();
  state.layers.forEach((l, i) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'weight';
    b.title = `${l.name}: ${(100 * l.weight).toFixed(0)}% of the attention`;
    const fill = document.createElement('span');
    fill.style.height = Math.max(4, 100 * l.weight).toFixed(0) + '%';
    const name = document.createElement('small');
    name.textContent = l.name;
    b.append(fill, name);
    b.addEventListener('click', () => { state.layerIndex = i; setView('layers'); });
    w.append(b);
  });
  const sel = $('cam-label');
  sel.replaceChildren();
  const labels = state.model && state.model.labels ? state.model.labels : [...state.cams.keys()];
  for (const label of labels) sel.append(new Option(label + (state.overlays.has('cam/' + label) ? '' : ' (load)'), label));
  if (state.camLabel) sel.value = state.camLabel;
  // The best label's CAM first: it answers "why this finding".
  setView(hasCam ? 'cam' : 'layers');
}

function setView(view) {
  state.view = view;
  for (const [id, v] of [['show-image', 'image'], ['show-layers', 'layers'], ['show-cam', 'cam']]) {
    $(id).classList.toggle('on', v === view);
    $(id).setAttribute('aria-pressed', String(v === view));
  }
  $('layer-step').hidden = view !== 'layers';
  $('layer-weights').classList.toggle('dim', view !== 'layers');
  $('cam-pick').hidden = view !== 'cam';
  let key = null;
  let caption = 'the image as sent';
  if (view === 'layers' && state.layers.length) {
    const l = state.layers[state.layerIndex];
    key = 'attention/' + l.name;
    $('layer-range').value = String(state.layerIndex);
    $('layer-name').textContent = `${l.name} (${state.layerIndex + 1} of ${state.layers.length}, ${l.grid[0]}×${l.grid[1]}, weight ${l.weight.toFixed(2)})`;
    caption = `layer attention of ${l.name}: mean squared activation per cell, brighter = stronger`;
    [...$('layer-weights').children].forEach((b, i) => b.classList.toggle('on', i === state.layerIndex));
  } else if (view === 'cam' && state.camLabel) {
    key = 'cam/' + state.camLabel;
    const c = state.cams.get(state.camLabel);
    $('cam-label').value = state.camLabel;
    $('cam-note').textContent = c ? `grid ${c.grid[0]}×${c.grid[1]}, raw range ${c.range[0].toFixed(2)} … ${c.range[1].toFixed(2)}` : '';
    caption = `class activation map of ${state.camLabel}: where the evidence for it lies`;
  }
  for (const li of $('labels').children) li.classList.toggle('on', view === 'cam' && li.dataset.label === state.camLabel);
  const ov = $('overlay');
  if (key && state.overlays.has(key)) {
    ov.src = state.overlays.get(key);
    ov.dataset.of = key;
    ov.hidden = false;
    ov.style.opacity = String(Number($('opacity').value) / 100);
    $('overlay-name').textContent = caption;
  } else {
    ov.hidden = true;
    delete ov.dataset.of;
    $('overlay-name').textContent = view === 'image' ? caption : '';
  }
}

// The best label's CAM comes with the answer; any other is asked for when first wanted.
async function showCam(label) {
  if (!state.answer || !hasAttention(state.model) || !state.model.manifest.attention.cam || state.model.manifest.attention.cam === 'none') return;
  state.camLabel = label;
  if (state.overlays.has('cam/' + label)) {
    setView('cam');
    return;
  }
  const run = state.run;
  const params = { attention: 'png', cam_labels: [label] };
  if (state.layers.length) params.attention_layers = [state.layers[0].name];
  busy(`Computing the class activation map of ${label}…`);
  try {
    const a = await state.client.predict(state.model.name, state.file, params);
    if (run !== state.run) return;
    const att = a.predictions[0].attention || {};
    for (const c of att.cam || []) state.cams.set(c.label, { range: c.range, grid: c.grid });
    for (const o of att.overlays || []) if (o.of.startsWith('cam/')) state.overlays.set(o.of, overlaySrc(o));
    const opt = [...$('cam-label').options].find((o) => o.value === label);
    if (opt) opt.textContent = label;
    $('show-cam').disabled = false;
    setView('cam');
  } catch (e) {
    if (run === state.run) showError(e, `The map of ${label}`);
  } finally {
    if (run === state.run) busy('');
  }
}

// ---- faces --------------------------------------------------------------------------------

function renderFaces(faces) {
  $('faces-box').hidden = false;
  $('face-count').textContent = faces.length === 1 ? '1 face' : `${faces.length} faces`;
  $('face-count').dataset.count = String(faces.length);
  const list = $('faces');
  list.replaceChildren();
  faces.forEach((f, i) => {
    const li = document.createElement('li');
    li.dataset.index = String(i);
    const bits = [`detection ${pct(f.score)}`];
    if (typeof f.age === 'number') bits.push(`age ≈ ${f.age.toFixed(0)}`);
    if (f.gender) bits.push(`${f.gender.label} (${pct(f.gender.score)})`);
    if (f.expression) {
      const scores = f.expression.scores ? f.expression.scores[f.expression.label] : null;
      bits.push(`${f.expression.label}${typeof scores === 'number' ? ` (${pct(scores)})` : ''}`);
    }
    const title = document.createElement('strong');
    title.textContent = `Face ${i + 1}`;
    li.append(title, document.createTextNode(': ' + bits.join(', ')));
    if (f.expression && f.expression.scores) {
      const ex = document.createElement('div');
      ex.className = 'expr';
      for (const [k, v] of Object.entries(f.expression.scores).sort((a, b) => b[1] - a[1])) {
        const s = document.createElement('span');
        s.textContent = `${k} ${(100 * v).toFixed(0)}%`;
        ex.append(s);
      }
      li.append(ex);
    }
    li.addEventListener('mouseenter', () => drawFaces(faces, i));
    li.addEventListener('mouseleave', () => drawFaces(faces, -1));
    list.append(li);
  });
  const img = $('image');
  const draw = () => drawFaces(faces, -1);
  if (img.complete && img.naturalWidth) draw();
  else img.addEventListener('load', draw, { once: true });
  $('show-landmarks').onchange = draw;
}

function drawFaces(faces, highlight) {
  const img = $('image');
  const cv = $('faces-canvas');
  cv.width = img.naturalWidth;
  cv.height = img.naturalHeight;
  cv.hidden = false;
  const g = cv.getContext('2d');
  g.clearRect(0, 0, cv.width, cv.height);
  const lw = Math.max(2, Math.round(Math.max(cv.width, cv.height) / 400));
  g.font = `${6 * lw + 6}px sans-serif`;
  faces.forEach((f, i) => {
    const b = f.box;
    g.lineWidth = i === highlight ? 2 * lw : lw;
    g.strokeStyle = i === highlight ? '#ffd400' : '#00e0a0';
    g.strokeRect(b.x, b.y, b.width, b.height);
    g.fillStyle = g.strokeStyle;
    g.fillText(String(i + 1), b.x + lw, Math.max(6 * lw + 6, b.y - 2 * lw));
    if ($('show-landmarks').checked && f.landmarks) {
      g.fillStyle = '#ff4d6d';
      for (const [x, y] of f.landmarks) {
        g.beginPath();
        g.arc(x, y, lw, 0, 2 * Math.PI);
        g.fill();
      }
    }
  });
}

// ---- verify -------------------------------------------------------------------------------

async function verifyFaces() {
  const a = $('verify-a').files[0];
  const b = $('verify-b').files[0];
  const out = $('verify-result');
  if (!a || !b) return;
  out.textContent = 'Comparing…';
  clearError();
  try {
    const faces = state.models.find((m) => isFaces(m) && m.state === 'READY');
    const r = await state.client.verify(a, b, faces ? { model: faces.name } : {});
    out.textContent = `${r.same_person ? 'Same person' : 'Different people'} — descriptor distance ${r.distance.toFixed(3)}` +
      ` (the same person below ${r.threshold})`;
    out.className = 'verify-result ' + (r.same_person ? 'same' : 'different');
    out.dataset.same = String(r.same_person);
  } catch (e) {
    out.textContent = '';
    showError(e, 'Comparing faces');
  }
}

// ---- wiring -------------------------------------------------------------------------------

function takeFile(file) {
  if (!file) return;
  if (!state.model) {
    showError(new SalientError(0, 'no model to send it to: the list of models did not load'), 'This file');
    return;
  }
  if (file.type && !/^image\/(png|jpeg)$/.test(file.type)) {
    showError(new SalientError(415, `“${file.name}” is ${file.type}; choose a PNG or JPEG`), 'This file');
    return;
  }
  predict(file);
}

function wire() {
  $('origin').textContent = location.origin;
  const drop = $('drop');
  $('file').addEventListener('change', (ev) => { takeFile(ev.target.files[0]); ev.target.value = ''; });
  drop.addEventListener('dragover', (ev) => { ev.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (ev) => {
    ev.preventDefault();
    drop.classList.remove('over');
    takeFile(ev.dataTransfer.files[0]);
  });
  drop.addEventListener('keydown', (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); $('file').click(); } });
  $('model').addEventListener('change', (ev) => selectModel(ev.target.value, true));
  $('show-image').addEventListener('click', () => setView('image'));
  $('show-layers').addEventListener('click', () => setView('layers'));
  $('show-cam').addEventListener('click', () => setView('cam'));
  const step = (d) => {
    if (!state.layers.length) return;
    state.layerIndex = Math.max(0, Math.min(state.layers.length - 1, state.layerIndex + d));
    setView('layers');
  };
  $('layer-prev').addEventListener('click', () => step(-1));
  $('layer-next').addEventListener('click', () => step(1));
  $('layer-range').addEventListener('input', (ev) => { state.layerIndex = Number(ev.target.value); setView('layers'); });
  $('cam-label').addEventListener('change', (ev) => showCam(ev.target.value));
  $('opacity').addEventListener('input', (ev) => { $('overlay').style.opacity = String(Number(ev.target.value) / 100); });
  $('key-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const key = $('api-key').value.trim();
    if (key) sessionStorage.setItem(KEY_STORE, key);
    else sessionStorage.removeItem(KEY_STORE);
    $('api-key').value = '';
    $('key-panel').open = false;
    start();
  });
  $('key-clear').addEventListener('click', () => {
    sessionStorage.removeItem(KEY_STORE);
    $('api-key').value = '';
    start();
  });
  const verifyReady = () => { $('verify-go').disabled = !($('verify-a').files[0] && $('verify-b').files[0]); };
  $('verify-a').addEventListener('change', verifyReady);
  $('verify-b').addEventListener('change', verifyReady);
  $('verify-go').addEventListener('click', verifyFaces);
}

async function start() {
  makeClient();
  $('key-panel').querySelector('summary').textContent = sessionStorage.getItem(KEY_STORE) ? 'API key ✓' : 'API key';
  clearError();
  await checkServer();
  await loadModels();
  document.body.dataset.ready = 'true';
}

wire();
start();
