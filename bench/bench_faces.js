// bench_faces.js: the full face pipeline (SSD MobileNetV1 + landmarks, expression, age/gender, descriptor) on face-api's six demo photographs, salient next to face-api (tfjs wasm backend) in the same run.
//
//   node bench/bench_faces.js [--repeat N] [--threads N]
//
// Both get the same decoded pixels (jpeg-js); decoding is not timed for either. face-api gets an
// int32 tensor and runs detectAllFaces(SsdMobilenetv1Options).withFaceLandmarks()
// .withFaceExpressions().withAgeAndGender().withFaceDescriptors(); salient runs salient-faces
// on the same pixels (batches of the model's max_batch images). One untimed warm-up pass each,
// then N timed passes over the six photographs; the median pass is reported. Needs what
// scripts/fetch-faceapi.sh --node installs and a build (SALIENT_FACES or build/tools/salient-faces).
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const ref = require('../tests/parity/faceapi_ref.js');

function arg(name, def) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? Number(process.argv[i + 1]) : def;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function main() {
  const repeat = arg('--repeat', 3);
  const threads = arg('--threads', 2);
  const env = ref.environment();
  if (env.why) {
    console.log(`bench_faces: ${env.why}`);
    process.exit(77);
  }
  if (!fs.existsSync(ref.salientFaces())) {
    console.log(`bench_faces: ${ref.salientFaces()} is not built (make -C build, or set SALIENT_FACES)`);
    process.exit(1);
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-faces-'));
  try {
    const fa = await ref.faceapi(env);
    const model = ref.modelDir(env, tmp);
    const images = ref.photos(env).map((jpg, i) => {
      const img = ref.decodeJpeg(env, jpg);
      const ppm = path.join(tmp, `photo${i}.ppm`);
      ref.writePpm(ppm, img);
      return { img, ppm };
    });
    let wasmThreads = '?';
    try { wasmThreads = fa.tf.wasm ? fa.tf.wasm.getThreadsCount() : env.require('@tensorflow/tfjs-backend-wasm').getThreadsCount(); } catch (e) { /* older API */ }

    // face-api: warm-up, then timed passes
    let faFaces = 0;
    await ref.pipeline(fa, images[0].img, 'ssd_mobilenetv1', 0.5);
    const faPass = []; const faCpu = [];
    for (let r = 0; r < repeat; r++) {
      const t0 = process.hrtime.bigint(); const c0 = process.cpuUsage();
      faFaces = 0;
      for (const im of images) faFaces += (await ref.pipeline(fa, im.img, 'ssd_mobilenetv1', 0.5)).length;
      faPass.push(Number(process.hrtime.bigint() - t0) / 1e6);
      const c = process.cpuUsage(c0);
      faCpu.push((c.user + c.system) / 1000);
    }

    // salient: the same, timed inside salient-faces (the first pass is the warm-up)
    const sal = {};
    for (const t of [1, threads].filter((v, i, a) => a.indexOf(v) === i)) {
      const out = ref.runSalient(['--model', model, '--detector', 'ssd_mobilenetv1', '--score', '0.5', '--threads',
        String(t), '--repeat', String(repeat + 1), ...images.flatMap((im) => ['--image', im.ppm])]);
      const passes = out.timing_ms.slice(1);
      sal[t] = { pass: median(passes), best: Math.min(...passes), cpu: median(out.cpu_ms.slice(1)),
        faces: out.images.reduce((s, im) => s + im.faces.length, 0) };
    }

    const n = images.length;
    const faMs = median(faPass) / n;
    console.log(`face pipeline (SSD MobileNetV1 512 + landmarks + expression + age/gender + descriptor), ${n} photographs`
      + ` (${images.map((im) => `${im.img.width}x${im.img.height}`).join(', ')}), median of ${repeat} passes`);
    console.log(`machine: ${os.cpus().length} x ${os.cpus()[0].model}, load average ${os.loadavg().map((v) => v.toFixed(1)).join(' ')} (other processes share the CPU)`);
    console.log('');
    const faBest = Math.min(...faPass) / n, faCpuMs = median(faCpu) / n;
    console.log('                                ms/image   faces/s   faces   vs face-api | best pass       | CPU ms/image');
    console.log(`face-api ${fa.version} tfjs-wasm (${String(wasmThreads)} thr) ${faMs.toFixed(1).padStart(8)}  ${(faFaces / (faMs * n / 1000)).toFixed(1).padStart(8)}  ${String(faFaces).padStart(6)}       1.00x | ${faBest.toFixed(1).padStart(7)}         | ${faCpuMs.toFixed(1).padStart(7)}`);
    for (const t of Object.keys(sal)) {
      const ms = sal[t].pass / n, best = sal[t].best / n, cpu = sal[t].cpu / n;
      console.log(`salient (${t} thread${t === '1' ? ' ' : 's'})               ${ms.toFixed(1).padStart(8)}  ${(sal[t].faces / (ms * n / 1000)).toFixed(1).padStart(8)}  ${String(sal[t].faces).padStart(6)}  ${(faMs / ms).toFixed(2).padStart(9)}x | ${best.toFixed(1).padStart(7)} ${(faBest / best).toFixed(2).padStart(6)}x | ${cpu.toFixed(1).padStart(7)} ${(faCpuMs / cpu).toFixed(2).padStart(6)}x`);
    }
    console.log('(CPU time counts every thread: with 2 threads it is about twice the wall time on an idle machine)');
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e.stack || e);
  process.exit(1);
});
