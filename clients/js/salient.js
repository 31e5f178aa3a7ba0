// salient.js: a client for salientd as one ES module, using fetch. Runs unchanged in browsers
// and in Node 18 and 20 (no Node built-ins are imported; images are bytes, Blobs or base64).
//
//   import { Client, SalientError } from './salient.js';
//   const c = new Client({ url: 'http://localhost:8080', apiKey: process.env.SALIENT_API_KEY });
//   const models = await c.models();                        // [{name, demo, labels, ...}]
//   const bytes = await fs.promises.readFile('xray.png');   // Node; a File from <input> in a browser
//   const answer = await c.predict('chexnet-demo', bytes, { top_k: 3, attention: 'png' });
//   answer.predictions[0].labels[0];                         // {label: 'Effusion', score: 0.81}
//   img.src = overlaySrc(answer.predictions[0].attention.overlays[0]);
//
// Every method resolves to the server's decoded JSON answer (metrics(): the Prometheus text)
// and rejects with a SalientError carrying the HTTP status and the server's own message
// (status 0: no answer at all: server down, wrong URL, timeout).

export class SalientError extends Error {
  constructor(status, message, body) {
    super(status ? `HTTP ${status}: ${message}` : message);
    this.name = 'SalientError';
    this.status = status;      // HTTP status, or 0 when there was no answer
    this.serverMessage = message;
    this.body = body;          // the decoded error JSON, when there was one
  }
}

// Base64 of an image: a string is taken as already base64 (or a data: URI, which salientd
// accepts as is); ArrayBuffer, typed arrays (a Node Buffer is one) and Blobs / Files are encoded.
export async function toBase64(image) {
  if (typeof image === 'string') return image;
  let bytes;
  if (image instanceof ArrayBuffer) bytes = new Uint8Array(image);
  else if (ArrayBuffer.isView(image)) bytes = new Uint8Array(image.buffer, image.byteOffset, image.byteLength);
  else if (typeof Blob !== 'undefined' && image instanceof Blob) bytes = new Uint8Array(await image.arrayBuffer());
  else throw new TypeError('an image must be bytes (ArrayBuffer, Uint8Array, Buffer), a Blob/File, or a base64 string');
  if (typeof Buffer !== 'undefined') return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
  // Browsers: btoa over a binary string, built in chunks so large images do not overflow the stack.
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

// An overlay from an answer asked with attention: 'png', ready for <img src>.
export function overlaySrc(overlay) {
  return 'data:image/png;base64,' + overlay.png;
}

export class Client {
  // url: salientd's base URL ('' in a page salientd serves: same origin); apiKey: sent as
  // 'Authorization: Bearer'; timeoutMs: per request (default 120 s); fetch: to substitute one.
  constructor({ url = '', apiKey = null, timeoutMs = 120000, fetch: fetchImpl = null } = {}) {
    this.url = String(url).replace(/\/+$/, '');
    this.apiKey = apiKey || null;
    this.timeoutMs = timeoutMs;
    if (!fetchImpl && typeof globalThis.fetch !== 'function')
      throw new Error('this JavaScript runtime has no fetch (Node 18 or later, or a browser); pass one as {fetch}');
    this.fetch = fetchImpl || globalThis.fetch.bind(globalThis);
  }

  // One request; resolves to the decoded JSON (or text when raw). Rejects with SalientError.
  async request(method, path, body = undefined, { raw = false } = {}) {
    const headers = { Accept: 'application/json' };
    if (this.apiKey) headers.Authorization = 'Bearer ' + this.apiKey;
    const init = { method, headers };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), this.timeoutMs);
    init.signal = abort.signal;
    const where = (this.url || '(this page\'s server)') + path;
    let res, text;
    try {
      res = await this.fetch(this.url + path, init);
      text = await res.text();
    } catch (e) {
      const why = abort.signal.aborted ? `no answer within ${this.timeoutMs / 1000} s` : (e && e.message) || String(e);
      throw new SalientError(0, `cannot reach salientd at ${where}: ${why}`);
    } finally {
      clearTimeout(timer);
    }
    if (!res.ok) {
      let payload = null;
      let message = text.trim() || res.statusText;
      try {
        payload = JSON.parse(text);
        if (payload && typeof payload.error === 'string') message = payload.error;
      } catch (e) { /* not JSON: keep the text */ }
      throw new SalientError(res.status, message, payload);
    }
    if (raw) return text;
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new SalientError(0, `the answer from ${where} is not JSON`);
    }
  }

  // GET /v2/health/live -> true
  async live() {
    return Boolean((await this.request('GET', '/v2/health/live')).live);
  }

  // GET /v2/health/ready -> true, or false while starting / draining / a model is not loaded
  async ready() {
    try {
      return Boolean((await this.request('GET', '/v2/health/ready')).ready);
    } catch (e) {
      if (e instanceof SalientError && e.status === 503) return false;
      throw e;
    }
  }

  // GET /v2: {name, version, extensions}
  server() {
    return this.request('GET', '/v2');
  }

  // GET /v1/models -> [{name, version, family, task, demo, state, labels, input, manifest, ...}]
  async models() {
    return (await this.request('GET', '/v1/models')).models;
  }

  model(name) {
    return this.request('GET', '/v1/models/' + encodeURIComponent(name));
  }

  // POST /v1/models/{model}:predict with one image or an array of them. parameters: {top_k,
  // attention: 'none'|'maps'|'png', attention_layers: [...], cam_labels: [...]}. Resolves to
  // {model, version, demo, predictions: [one per image, in order]}.
  async predict(model, images, parameters = undefined) {
    const body = Array.isArray(images)
      ? { instances: await Promise.all(images.map(async (i) => ({ image: await toBase64(i) }))) }
      : { image: await toBase64(images) };
    if (parameters && Object.keys(parameters).length) body.parameters = parameters;
    return this.request('POST', `/v1/models/${encodeURIComponent(model)}:predict`, body);
  }

  // Open Inference Protocol v2: POST /v2/models/{model}/infer, the images as one BYTES input.
  async inferV2(model, images, parameters = undefined) {
    const list = Array.isArray(images) ? images : [images];
    const data = await Promise.all(list.map(toBase64));
    const body = { inputs: [{ name: 'image', datatype: 'BYTES', shape: [data.length], data }] };
    if (parameters) body.parameters = parameters;
    return this.request('POST', `/v2/models/${encodeURIComponent(model)}/infer`, body);
  }

  // POST /v1/faces:verify: the best face of each image -> {distance, threshold, same_person,
  // faces: [two boxes]}. options: {threshold (server default 0.6), model (default 'faces')}.
  // An image without a face rejects with status 422.
  async verify(imageA, imageB, options = {}) {
    const body = { images: [await toBase64(imageA), await toBase64(imageB)] };
    if (options.threshold !== undefined) body.threshold = options.threshold;
    if (options.model !== undefined) body.model = options.model;
    return this.request('POST', '/v1/faces:verify', body);
  }

  // GET /metrics: Prometheus text.
  metrics() {
    return this.request('GET', '/metrics', undefined, { raw: true });
  }
}
