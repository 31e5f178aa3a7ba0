#!/usr/bin/env node
// predict.mjs: the JS client from Node. Predicts each image and prints one JSON line per image.
//   node clients/js/predict.mjs MODEL IMAGE [IMAGE...]
// Environment: SALIENT_URL (default http://localhost:8080), SALIENT_API_KEY.
import { readFile } from 'node:fs/promises';
import { Client, SalientError } from './salient.js';

const [model, ...files] = process.argv.slice(2);
if (!model || files.length === 0) {
  console.error('usage: node predict.mjs MODEL IMAGE [IMAGE...]');
  process.exit(2);
}
const client = new Client({ url: process.env.SALIENT_URL || 'http://localhost:8080', apiKey: process.env.SALIENT_API_KEY });
let failed = 0;
for (const file of files) {
  try {
    const answer = await client.predict(model, await readFile(file), { top_k: 3 });
    const p = answer.predictions[0];
    console.log(JSON.stringify({ file, model: answer.model, demo: answer.demo, labels: p.labels, faces: p.faces }));
  } catch (e) {
    failed++;
    console.log(JSON.stringify({ file, status: e instanceof SalientError ? e.status : 0, error: e.serverMessage || e.message }));
  }
}
process.exit(failed ? 1 : 0);
