#!/usr/bin/python3
"""parity_end_to_end: from image files to probabilities, salient against PyTorch.

For every model:
  - salient: `salient-run --image ...` on PNG and JPEG files, all images in one batch and then
    each image in a run of its own; it decodes and preprocesses as salientd does and writes the
    preprocessed batch ('input') and the probabilities;
  - reference: PIL decodes the same file, salient_export.load.preprocess applies the manifest's
    preprocess block with torchvision, and the module salient_export.load.load_model_folder
    rebuilds from the model folder gives the probabilities (salient_export.load.predict).
Checks per model: the preprocessed input within 1e-4 in normalised units (torchxrayvision's
[-1024, 1024] divided by 1024), the probabilities within 1e-3 (batch and single runs), the same
top-1 label (unless the reference's two best are within 1e-3 of each other), and, for the
models exported here, that load_model_folder rebuilt exactly the weights that were exported.

Models: one per family and preset, exported with the family's export_module from seeded random
weights (small architectures, the presets' real preprocess blocks, heads rescaled so the
probabilities are spread out rather than saturated): densenet chexnet, densenet xrv (1 channel,
op_threshs with a NaN), resnet18 covid (F16 file), swin swinchex (a small Swin), quadrant_ae
with an SLP; and every model folder under $SALIENT_SRCDIR/models/repo (the demo models), with a
phantom and a JPEG each. Images: RGB and gray, PNG and JPEG, odd sizes (517x389, ...), and a
phantom from models/export/phantoms.py when it imports.
"""
import glob
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import paritylib as pl  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from salient_export import densenet as dn  # noqa: E402
from salient_export import load  # noqa: E402
from salient_export import quadrant_ae as qae  # noqa: E402
from salient_export import resnet as rn  # noqa: E402
from salient_export import swin  # noqa: E402
from salient_export.common import COVID_LABELS, write_safetensors  # noqa: E402

TOL_PROBS = 1e-3
TOL_INPUT = 1e-4
SMALL_DENSENET = dict(growth_rate=8, block_config=(2, 2, 2, 2), num_init_features=16, bn_size=2)

try:
    import phantoms  # models/export/phantoms.py (paritylib put models/export on the path)
except Exception as e:  # absent or mid-edit: the phantom images are left out, said below
    phantoms = None
    PHANTOM_WHY = "%s: %s" % (type(e).__name__, e)

# One thread for PyTorch and for salient-run's single-image runs: make check runs tests side by
# side, and spinning worker threads on 2 busy cores are many times slower than one.
torch.set_num_threads(1)
rep = pl.Report("end-to-end")
worst = {}  # model -> {"probs": err, "input": err, "top1": "ok" | "FAIL"}


# --- images -----------------------------------------------------------------------------------

def phantom(size, task, seed):
    """A gray phantom (uint8 [size, size]) from phantoms.py's in-memory generator, or None."""
    if phantoms is None:
        return None
    imgs, _ = phantoms.generate(1, seed=seed, size=size, task=task)
    return Image.fromarray(imgs[0], "L")


def write_images(d):
    """The images every synthetic model sees: [(name, path)]."""
    out = []

    def save(name, im, **kw):
        path = os.path.join(d, name)
        im.save(path, **kw)
        out.append((name, path))

    save("rgb_517x389.png", pl.to_pil(pl.pattern(517, 389, 3, 11), "RGB"))
    save("gray_389x517_q90.jpg", pl.to_pil(pl.pattern(389, 517, 1, 12), "L"), quality=90)
    save("rgb_301x257_q88.jpg", pl.to_pil(pl.pattern(301, 257, 3, 13), "RGB"), quality=88)
    ph = phantom(300, "cxr14", 5)
    if ph is not None:
        save("phantom_cxr14_300.png", ph)
    return out


def demo_images(d, task):
    """One or two images for a demo model: a phantom of its task (or a gray pattern) and a JPEG."""
    out = []
    ph = phantom(256, task, 17)
    name = "phantom_%s_256.png" % task if ph is not None else "gray_333x287.png"
    path = os.path.join(d, name)
    if not os.path.exists(path):
        (ph if ph is not None else pl.to_pil(pl.pattern(333, 287, 1, 21), "L")).save(path)
    out.append((name, path))
    path = os.path.join(d, "rgb_413x371_q90.jpg")
    if not os.path.exists(path):
        pl.to_pil(pl.pattern(413, 371, 3, 22), "RGB").save(path, quality=90)
    out.append(("rgb_413x371_q90.jpg", path))
    return out


# --- synthetic models -------------------------------------------------------------------------

def seed_weights(model, seed):
    """Seeded values everywhere: convolutions He-normal (x0.7, activations stay O(1)), Linear
    layers torch's default, 1-D parameters perturbed (norm weights around 1), Swin's relative
    position bias tables at std 0.5, batch norms with non-trivial statistics."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if name.endswith("relative_position_bias_table"):
            p.data = 0.5 * torch.randn(p.shape, generator=g)
        elif p.dim() == 4:
            torch.nn.init.kaiming_normal_(p, nonlinearity="relu")
            p.data *= 0.7
        elif p.dim() == 1:
            base = 1.0 if re.search(r"norm\d?\.weight$|^features\.0\.2\.weight$", name) else 0.0
            p.data = base + 0.1 * torch.randn(p.shape, generator=g)
    return pl.randomize_bn(model, seed)


def calibrate(model, family, x):
    """Rescale the head so that, over the calibration batch x, every output is centred and varies
    by O(1) between images (for the quadrant model every Linear layer, as parity_quadrant_ae.py
    does): random weights otherwise give saturated or near-constant probabilities, against
    which a wrong salient output could pass."""
    with torch.no_grad():
        if family == "quadrant_ae":
            h = model.outputs(x)["features"]
            mods = list(model.encoder) + list(model.classifier)
            lin = [m for m in mods if isinstance(m, torch.nn.Linear)]
            for m in mods:
                if isinstance(m, torch.nn.Linear):
                    target = 0.5 if m is lin[-1] else 1.0
                    z = m(h)
                    mu, sd = z.mean(0), z.std(0) / target + 1e-3
                    m.weight.data /= sd[:, None]
                    m.bias.data = (m.bias.data - mu) / sd
                h = m(h)
            return model
        if family == "swin" and model.salient_head == "swinchex":
            heads = [s[-1] for s in model.head]  # label i's pair is logits 2i, 2i+1
        else:
            heads = [model.classifier if family == "densenet" else model.fc if family == "resnet" else model.head]
        z = model(x)
        # spread over the images (not between outputs) of about 1.5; the gain is capped so that
        # fp32 rounding of the unscaled logits (~1e-6 of their size) stays far below 1e-3
        gain = min(1.5 / ((z - z.mean(0)).std().item() + 1e-12), 100.0 / (z.abs().max().item() + 1e-12))
        shift = (z.mean(0) * gain).view(len(heads), -1)
        for m, c in zip(heads, shift):
            m.weight.data *= gain
            m.bias.data = m.bias.data * gain - c
    return model


def calibration_batch(images, pre):
    """The test images, preprocessed, and their mirror images."""
    x = torch.cat([load.preprocess(Image.open(p), {"preprocess": pre}) for _, p in images])
    return torch.cat([x, x.flip(3)])


def synthetic_models(tmp, images):
    """[(name, folder, original module, dtype)] exported with each family's export_module."""
    out = []

    def add(name, family, module, arch, preset, pre, dtype="f32", tweak=None):
        module = seed_weights(module, len(out) + 1)
        if tweak:
            tweak(module)
        calibrate(module, family, calibration_batch(images, pre))
        folder = os.path.join(tmp, name)
        fam = {"densenet": dn, "resnet": rn, "swin": swin, "quadrant_ae": qae}[family]
        fam.export_module(module, arch, preset, None, folder, dtype=dtype, provenance="parity_end_to_end.py",
                          preprocess=pre)
        out.append((name, folder, module, dtype))

    add("densenet-chexnet", "densenet", dn.build_model("densenet121", "chexnet", None, **SMALL_DENSENET),
        "densenet121", "chexnet", dn.PRESETS["chexnet"]["preprocess"])

    g = torch.Generator().manual_seed(7)
    op = (0.05 + 0.55 * torch.rand(18, generator=g)).tolist()
    op[3] = math.nan  # a label the model was not trained on: 0.5

    def xrv_tweak(m):
        m.features.conv0.weight.data /= 1024.0  # as a model trained on [-1024, 1024] inputs

    add("densenet-xrv", "densenet", dn.build_model("densenet121", "xrv", None, op_threshs=op, **SMALL_DENSENET),
        "densenet121", "xrv", dn.PRESETS["xrv"]["preprocess"], tweak=xrv_tweak)
    add("resnet18-covid", "resnet", rn.build_model("resnet18", "covid", None), "resnet18", "covid",
        rn.PRESETS["covid"]["preprocess"], dtype="f16")
    add("swin-swinchex", "swin", swin.build_model("swin_t", "swinchex", None, embed_dim=32, depths=[2, 2, 2, 2],
                                                  num_heads=[1, 2, 4, 8]),
        "swin_t", "swinchex", swin.SWINCHEX_PREPROCESS)
    qae_pre = dict(qae.PRESETS["covid"]["preprocess"], resize=[192, 192])
    add("quadrant_ae-slp", "quadrant_ae",
        qae.build_model("quadrant_ae", "covid", None, input_size=192, encoder=[64, 32, 16],
                        backbones=[dict(family="densenet", arch="densenet", **SMALL_DENSENET),
                                   dict(family="resnet", arch="resnet18")], classifier={"kind": "slp"}),
        "quadrant_ae", "covid", qae_pre)
    return out


# --- one model --------------------------------------------------------------------------------

def run(folder, paths, tmp, threads=1):
    """salient-run on the image files in one batch: its outputs dict."""
    outp = os.path.join(tmp, "out.safetensors")
    cmd = [pl.RUN, "--model", folder, "--output", outp, "--threads", str(threads), "--quiet"]
    for p in paths:
        cmd += ["--image", p]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("salient-run failed (%d): %s" % (r.returncode, r.stderr.strip()))
    return pl.read_safetensors(outp)[0]


def note(name, key, err):
    w = worst.setdefault(name, {"probs": 0.0, "input": 0.0, "top1": "ok", "images": 0})
    w[key] = max(w[key], err)


def close(name, key, what, got, want, tol):
    """A Report.close that also keeps the per-model worst."""
    if got.shape == want.shape:
        note(name, key, (got.double() - want.double()).abs().max().item() if got.numel() else 0.0)
    rep.close("%s/%s %s" % (name, key, what), got, want, tol)


def top1(name, img, got, want, labels):
    g, w = int(got.argmax()), int(want.argmax())
    best2 = want.topk(min(2, want.numel())).values
    tie = best2.numel() > 1 and (best2[0] - best2[1]).item() <= TOL_PROBS
    ok = g == w or tie
    if not ok:
        worst[name]["top1"] = "FAIL"
    rep.check("%s/top1 %s" % (name, img), ok, "salient %s %.4f, PyTorch %s %.4f%s"
              % (labels[g], got[g].item(), labels[w], want[w].item(), " (tie within 1e-3)" if tie and g != w else ""))


def check_model(name, folder, images, tmp, original=None, dtype="f32"):
    t0 = time.time()
    try:
        module, man = load.load_model_folder(folder)
    except Exception as e:
        rep.fail("%s: load_model_folder: %s" % (name, e))
        return
    labels = man["labels"]
    worst.setdefault(name, {"probs": 0.0, "input": 0.0, "top1": "ok", "images": 0})["images"] = len(images)
    if original is not None:  # load.py rebuilt exactly what was exported
        want = {k: v for k, v in original.state_dict().items() if torch.is_floating_point(v)}
        got = module.state_dict()
        rnd = {"f16": torch.float16, "bf16": torch.bfloat16}.get(dtype)
        bad = [k for k, v in want.items() if k not in got or not torch.allclose(
            got[k], v.to(rnd).float() if rnd else v, rtol=0, atol=0, equal_nan=True)]
        rep.check("%s: load_model_folder rebuilds the exported module (%d tensors, %s)" % (name, len(want), dtype),
                  not bad, "differ: %s" % ", ".join(bad[:5]) if bad else "")

    scale = load.input_scale(man)
    ref_x = torch.cat([load.preprocess(Image.open(p), man) for _, p in images])
    ref_p = load.predict(module, man, ref_x)
    try:
        out = run(folder, [p for _, p in images], tmp, threads=2)
    except RuntimeError as e:
        rep.fail("%s: %s" % (name, e))
        return
    if "input" not in out or "probs" not in out:
        rep.fail("%s: salient-run wrote %s, expected input and probs" % (name, sorted(out)))
        return
    for i, (img, _) in enumerate(images):
        close(name, "input", img, out["input"][i] / scale, ref_x[i] / scale, TOL_INPUT)
    close(name, "probs", "batch of %d" % len(images), out["probs"], ref_p, TOL_PROBS)
    # the network alone, on salient's own input: separates preprocessing from network error
    net = (load.predict(module, man, out["input"]) - out["probs"]).abs().max().item()
    for i, (img, path) in enumerate(images):
        try:
            one = run(folder, [path], tmp)
        except RuntimeError as e:
            rep.fail("%s: %s: %s" % (name, img, e))
            continue
        close(name, "probs", "%s alone" % img, one["probs"][0], ref_p[i], TOL_PROBS)
        top1(name, img, one["probs"][0], ref_p[i], labels)
    print("     (%s: %d images, %s; network alone on salient's input: %.2e; probs %.3f..%.3f; %.1f s)"
          % (name, len(images), "demo" if man.get("demo") else "synthetic", net, ref_p.min().item(),
             ref_p.max().item(), time.time() - t0), flush=True)


def check_strict(folder, tmp):
    """load_model_folder refuses weights that do not fit the manifest, naming every tensor."""
    bad = os.path.join(tmp, "bad-weights")
    os.makedirs(bad)
    shutil.copy(os.path.join(folder, "manifest.json"), bad)
    sd, _ = pl.read_safetensors(os.path.join(folder, "model.safetensors"))
    del sd["features.norm5.running_var"]
    sd["extra.weight"] = torch.zeros(3)
    sd["classifier.weight"] = sd["classifier.weight"][:, :5].contiguous()
    write_safetensors(os.path.join(bad, "model.safetensors"), sd, "f16")
    try:
        load.load_model_folder(bad)
        msg = "loaded"
    except load.LoadError as e:
        msg = str(e)
    rep.check("load_model_folder refuses a missing, an unexpected and a misshapen tensor",
              all(n in msg for n in ("missing tensor 'features.norm5.running_var'", "unexpected tensor 'extra.weight'",
                                     "tensor 'classifier.weight' has shape [14, 5]")), msg.replace("\n", " |"))


def main():
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="salient-e2e-") as tmp:
        imgdir = os.path.join(tmp, "images")
        os.makedirs(imgdir)
        images = write_images(imgdir)
        if phantoms is None:
            print("note: models/export/phantoms.py does not import (%s): no phantom images" % PHANTOM_WHY)
        models = synthetic_models(tmp, images)
        for name, folder, module, dtype in models:
            check_model(name, folder, images, tmp, module, dtype)
        check_strict(models[0][1], tmp)

        repo = os.path.join(pl.SRCDIR, "models", "repo")
        manifests = sorted(glob.glob(os.path.join(repo, "*", "manifest.json")))
        if not manifests:
            print("note: no model folders in %s yet: demo models skipped" % repo)
        for mpath in manifests:
            folder = os.path.dirname(mpath)
            name = os.path.basename(folder)
            try:
                man = load.read_manifest(folder)
            except Exception as e:
                rep.fail("%s: %s" % (name, e))
                continue
            if man.get("family") not in load.FAMILIES:
                print("note: %s: family %s has no PyTorch reference here: skipped" % (name, man.get("family")))
                continue
            task = "covid" if list(man.get("labels") or []) == COVID_LABELS else "cxr14"
            check_model(name, folder, demo_images(imgdir, task), tmp)

    print("worst |err| per model (probs tol %.0e; input tol %.0e in normalised units):" % (TOL_PROBS, TOL_INPUT))
    for name, w in worst.items():
        print("  %-24s probs %.3e  input %.3e  top-1 %s  (%d images)" % (name, w["probs"], w["input"], w["top1"],
                                                                        w["images"]))
    print("total %.1f s" % (time.time() - t0))
    rep.worst = {}  # shown per model above
    rep.finish()


if __name__ == "__main__":
    main()
