"""paritylib: shared pieces of the whole-model parity tests (run with /usr/bin/python3).

A parity test builds a model in PyTorch with seeded random weights (eval mode, non-trivial
batch-norm statistics), exports it with models/export/export.py, runs tools/salient-run on the
same input tensors and compares. Environment (set by `make check`): SALIENT_RUN (the binary),
SALIENT_SRCDIR (the source tree). Each test prints one line per check and ends with
"N passed, N failed"; its exit status is 0 only if all passed.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile
import time

import torch

SRCDIR = os.environ.get("SALIENT_SRCDIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
RUN = os.environ.get("SALIENT_RUN", os.path.join(SRCDIR, "build", "tools", "salient-run"))
sys.path.insert(0, os.path.join(SRCDIR, "models", "export"))

from salient_export.common import write_safetensors  # noqa: E402

torch.set_num_threads(2)


def randomize_bn(model, seed=0):
    """Give every BatchNorm non-trivial affine parameters and running statistics, so that a
    wrong fold or a skipped norm shows up in the outputs."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
            n = m.num_features
            m.weight.data = 0.5 + torch.rand(n, generator=g)
            m.bias.data = 0.2 * torch.randn(n, generator=g)
            m.running_mean.data = 0.2 * torch.randn(n, generator=g)
            m.running_var.data = 0.5 + torch.rand(n, generator=g)
    return model.eval()


def pattern(w, h, c, seed):
    """A uint8 [h, w, c] picture with smooth gradients, edges and noise (resizing has work to do)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(h, dtype=torch.float64)[:, None, None]
    x = torch.arange(w, dtype=torch.float64)[None, :, None]
    k = torch.arange(c, dtype=torch.float64)[None, None, :]
    v = 128 + 90 * torch.sin(x / (7 + 3 * k) + y / 11) * torch.cos(y / (5 + k))
    v = v + 60 * ((x // 23 + y // 17) % 2) - 30 + 25 * torch.randn(h, w, c, generator=g, dtype=torch.float64)
    return v.clamp(0, 255).round().to(torch.uint8)


def to_pil(t, mode):
    """A uint8 [h, w, c] tensor as a PIL image of mode ("RGB", "L", "RGBA", "LA", ...)."""
    from PIL import Image
    h, w, c = t.shape
    return Image.frombytes(mode, (w, h), t.contiguous().numpy().tobytes())


def read_safetensors(path):
    """name -> float32 tensor (F32/F16/BF16 only), and the metadata dict."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    out = {}
    dt = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
    for name, h in header.items():
        b, e = h["data_offsets"]
        t = torch.frombuffer(bytearray(data[b:e]), dtype=dt[h["dtype"]]) if e > b else torch.zeros(0)
        out[name] = t.to(torch.float32).reshape(h["shape"])
    return out, meta


def salient_run(model_dir, inputs=None, images=None, taps=None, threads=2, max_batch=None, extra=None):
    """Run salient-run on an NCHW input tensor (or image files); return its outputs dict."""
    with tempfile.TemporaryDirectory() as tmp:
        out_path = os.path.join(tmp, "out.safetensors")
        cmd = [RUN, "--model", model_dir, "--output", out_path, "--threads", str(threads)]
        if inputs is not None:
            in_path = os.path.join(tmp, "in.safetensors")
            write_safetensors(in_path, {"input": inputs.contiguous()})
            cmd += ["--input", in_path]
        for im in images or []:
            cmd += ["--image", im]
        if taps:
            cmd += ["--taps", ",".join(taps)]
        if max_batch:
            cmd += ["--max-batch", str(max_batch)]
        cmd += extra or []
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("salient-run failed (%d): %s" % (r.returncode, r.stderr.strip()))
        return read_safetensors(out_path)[0]


class Report:
    """Collects checks; prints each and a closing 'N passed, N failed' line."""

    def __init__(self, name):
        self.name, self.passed, self.failed, self.worst = name, 0, 0, {}

    def close(self, what, got, want, tol):
        got, want = got.double(), want.double()
        if got.shape != want.shape:
            self.fail("%s: shape %s, expected %s" % (what, list(got.shape), list(want.shape)))
            return
        err = (got - want).abs().max().item() if got.numel() else 0.0
        key = what.split(" ")[0]
        self.worst[key] = max(self.worst.get(key, 0.0), err)
        if err <= tol:
            self.ok("%s: max |err| %.3e <= %.0e" % (what, err, tol))
        else:
            self.fail("%s: max |err| %.3e > %.0e" % (what, err, tol))

    def check(self, what, cond, detail=""):
        (self.ok if cond else self.fail)(what + (": " + detail if detail else ""))

    def ok(self, msg):
        self.passed += 1
        print("ok   " + msg, flush=True)

    def fail(self, msg):
        self.failed += 1
        print("FAIL " + msg, flush=True)

    def finish(self):
        if self.worst:
            print("worst |err| per output (%s, against PyTorch):" % self.name)
            for k, v in self.worst.items():
                print("  %-40s %.3e" % (k, v))
        print("%d passed, %d failed" % (self.passed, self.failed))
        sys.exit(0 if self.failed == 0 else 1)


def export(arch, out_dir, state_dict_path, preset=None, labels=None, extra=None):
    """Run export.py as a user would; raise with its stderr on failure."""
    cmd = ["/usr/bin/python3", os.path.join(SRCDIR, "models", "export", "export.py"), "--arch", arch,
           "--weights", state_dict_path, "--out", out_dir]
    if preset:
        cmd += ["--preset", preset]
    if labels:
        cmd += ["--labels", ",".join(labels)]
    cmd += extra or []
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("export.py failed: %s" % r.stderr.strip())
    return r


# --- the CNN classifier tests' pieces (parity_densenet.py, parity_resnet.py) ----------------------

def reference(model, x, tap_module=None):
    """Logits, probabilities (model.postprocess) and, if tap_module is given, that submodule's
    output, from the torch model."""
    got = {}
    h = None
    if tap_module is not None:
        h = tap_module.register_forward_hook(lambda m, i, o: got.__setitem__("tap", o.clone()))
    with torch.no_grad():
        logits = model(x)
        probs = model.postprocess(logits)
    if h:
        h.remove()
    return logits, probs, got.get("tap")


def compare_classifier(rep, name, model_dir, model, x, tap, tap_module, tol):
    """salient-run against the torch model at batch 1 and 4: logits, probabilities and the tap
    (salient's 'tap/<tap>' against tap_module's output, relative to its largest value)."""
    for n in (1, 4):
        xb = x[:n]
        lg, pr, t = reference(model, xb, tap_module)
        t0 = time.time()
        out = salient_run(model_dir, xb, taps=[tap], max_batch=4)
        dt = time.time() - t0
        rep.close("%s logits batch %d" % (name, n), out["logits"], lg, tol)
        rep.close("%s probs batch %d" % (name, n), out["probs"], pr, tol)
        key = "tap/" + tap
        if key in out:
            scale = max(1.0, t.abs().max().item())
            rep.close("%s tap %s batch %d (relative to max %.1f)" % (name, tap, n, scale), out[key] / scale,
                      t / scale, tol)
        else:
            rep.fail("%s: salient-run gave no %s (got %s)" % (name, key, sorted(out)))
        print("     (%s batch %d: salient-run %.2f s)" % (name, n, dt), flush=True)


def export_ok(rep, arch, out_dir, path, preset=None, labels=None):
    """export() that reports a failure to rep instead of raising; True if it exported."""
    try:
        export(arch, out_dir, path, preset=preset, labels=labels)
        return True
    except RuntimeError as e:
        rep.fail("export %s: %s" % (out_dir, e))
        return False


def set_size(model_dir, size):
    """Run a CNN at a smaller input than the preset's 224: a fixed resize in the manifest."""
    path = os.path.join(model_dir, "manifest.json")
    with open(path) as f:
        man = json.load(f)
    pre = man["preprocess"]
    for k in ("resize_shorter", "center_crop"):
        pre.pop(k, None)
    pre["resize"] = [size, size]
    with open(path, "w") as f:
        json.dump(man, f)


def export_main(argv):
    """export.py's main in this process (a fresh interpreter per call costs seconds of imports);
    returns its exit status and stderr like subprocess.run."""
    import contextlib
    import io
    import types

    import export as export_py  # models/export/export.py, on the path set above
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = export_py.main(argv)
    return types.SimpleNamespace(returncode=rc, stderr=err.getvalue())


def load_error(model_dir, x):
    """salient-run's error message for model_dir on input x, or None if it ran."""
    try:
        salient_run(model_dir, x)
        return None
    except RuntimeError as e:
        return str(e)


def check_load_errors(rep, model_dir, tmp, x, cases):
    """For each (case, edit, want): a copy of model_dir whose manifest edit(man) spoils must fail
    to load in salient-run with want in the message."""
    for case, edit, want in cases:
        d = os.path.join(tmp, "bad-" + case)
        subprocess.run(["cp", "-r", model_dir, d], check=True)
        with open(os.path.join(d, "manifest.json")) as f:
            man = json.load(f)
        edit(man)
        with open(os.path.join(d, "manifest.json"), "w") as f:
            json.dump(man, f)
        err = load_error(d, x)
        rep.check("salient-run refuses bad %s" % case, err is not None and want in err, (err or "loaded")[-300:])
