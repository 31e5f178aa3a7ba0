"""parity_swin: the swin family against torchvision's SwinTransformer (run by test_swin.sh).

Checks, each at batch 1 and batch 4, max |err| <= 1e-4 on logits and probs:
  - swin_t + SwinCheX head (14 per-label MLPs), exported through export.py from a checkpoint in
    SwinCheX's own layout (Microsoft Swin names, {'model': ...} wrapper, attn_mask buffers), with
    the stage2 tap compared too;
  - swin_t + linear head, 3 classes, softmax, from a torchvision state dict;
  - a small configuration (embed 48, depths [2,2,2,2], heads [2,4,8,16]) at 128x128, what the
    demo model uses (padding to whole windows), written by export_module, SwinCheX head, with
    the stage1, stage4 and features taps.
Weights are seeded torchvision init, with relative position bias tables at std 0.5, layer norms
and biases perturbed, so a wrong bias gather or a skipped norm shows. Then export.py's errors
(unexpected key, wrong shape) and salient's load errors (labels != outputs, unknown preset,
a manifest config that does not fit the weights).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import OrderedDict

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import paritylib as pl  # noqa: E402
from salient_export import swin  # noqa: E402

TOL = 1e-4


def randomize(model, seed):
    """Non-trivial values everywhere a mistake could hide."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if name.endswith("relative_position_bias_table"):
            p.data = 0.5 * torch.randn(p.shape, generator=g)
        elif p.dim() == 1:
            base = 1.0 if re.search(r"norm\d?\.weight$|features\.0\.2\.weight$|^norm\.weight$", name) else 0.0
            p.data = base + 0.1 * torch.randn(p.shape, generator=g)
    if model.salient_head == "swinchex":
        # torch's default Linear init (not Swin's std 0.02): outputs of size ~1, so errors show.
        for m in model.head.modules():
            if isinstance(m, torch.nn.Linear):
                bound = 1.0 / m.in_features ** 0.5
                m.weight.data = (torch.rand(m.weight.shape, generator=g) * 2 - 1) * bound * 3
                m.bias.data = (torch.rand(m.bias.shape, generator=g) * 2 - 1) * bound
    return model.eval()


def to_microsoft(sd):
    """torchvision names -> SwinCheX's (Microsoft Swin-Transformer) names, as their checkpoints hold them."""
    out = OrderedDict()
    for k, v in sd.items():
        m = re.match(r"features\.0\.0\.(.*)", k)
        if m:
            out["patch_embed.proj." + m.group(1)] = v
            continue
        m = re.match(r"features\.0\.2\.(.*)", k)
        if m:
            out["patch_embed.norm." + m.group(1)] = v
            continue
        m = re.match(r"features\.(\d+)\.(\d+)\.(.*)", k)
        if m and int(m.group(1)) % 2 == 1:
            s, b = (int(m.group(1)) - 1) // 2, int(m.group(2))
            rest = m.group(3).replace("mlp.0.", "mlp.fc1.").replace("mlp.3.", "mlp.fc2.")
            out["layers.%d.blocks.%d.%s" % (s, b, rest)] = v
            if rest == "attn.relative_position_index" and b % 2 == 1:
                out["layers.%d.blocks.%d.attn_mask" % (s, b)] = torch.zeros(4, 49, 49)
            continue
        m = re.match(r"features\.(\d+)\.(.*)", k)
        if m:
            out["layers.%d.downsample.%s" % ((int(m.group(1)) - 2) // 2, m.group(2))] = v
            continue
        m = re.match(r"head\.(\d+)\.(\d)\.(.*)", k)
        if m:
            level = int(m.group(2)) // 2
            out["heads%s.%s.%s" % ("" if level == 0 else str(level + 1), m.group(1), m.group(3))] = v
            continue
        out[k] = v
    return out


def nhwc_to_nchw(t):
    return t.permute(0, 3, 1, 2).contiguous()


def compare(R, what, model, out_dir, x, taps=()):
    with torch.no_grad():
        if taps:
            logits, ref_taps = model.forward_taps(x)
            if x.shape[0] == 1:  # the reference's two paths agree
                R.close("forward_taps %s" % what, logits, model(x), 1e-6)
        else:
            logits = model(x)
        probs = model.probs(logits)
    got = pl.salient_run(out_dir, inputs=x, taps=list(taps), max_batch=x.shape[0])
    n = x.shape[0]
    R.close("logits %s batch %d" % (what, n), got["logits"], logits, TOL)
    R.close("probs %s batch %d" % (what, n), got["probs"], probs, TOL)
    for t in taps:
        R.close("tap/%s %s batch %d" % (t, what, n), got["tap/" + t], nhwc_to_nchw(ref_taps[t]), TOL)


def expect_fail(R, what, cmd, needle, *more):
    """cmd must fail with needle in its message; more: further (what, needle) pairs from the same run."""
    r = subprocess.run(cmd, capture_output=True, text=True)
    text = r.stderr + r.stdout
    lines = [l.strip() for l in text.strip().splitlines()]
    for w, n in ((what, needle),) + tuple(more):
        shown = next((l for l in lines if n in l), " | ".join(lines[:2]))
        R.check(w, r.returncode != 0 and n in text, "exit %d: %s" % (r.returncode, shown))


def edit_manifest(src, dst, fn):
    os.makedirs(dst, exist_ok=True)
    os.symlink(os.path.join(src, "model.safetensors"), os.path.join(dst, "model.safetensors"))
    with open(os.path.join(src, "manifest.json")) as f:
        man = json.load(f)
    fn(man)
    with open(os.path.join(dst, "manifest.json"), "w") as f:
        json.dump(man, f)
    return dst


def main():
    R = pl.Report("swin")
    tmp = tempfile.mkdtemp(prefix="parity_swin.")
    try:
        g = torch.Generator().manual_seed(1234)
        x4 = torch.randn(4, 3, 224, 224, generator=g)
        x1 = x4[:1].clone()

        # swin_t + SwinCheX, through export.py from SwinCheX's checkpoint layout.
        torch.manual_seed(0)
        chex = randomize(swin.build_model("swin_t", "swinchex", None), 1)
        ckpt = os.path.join(tmp, "swinchex.pth")
        torch.save({"model": to_microsoft(chex.state_dict()), "epoch": 7, "max_auc": 0.8}, ckpt)
        chex_dir = os.path.join(tmp, "swinchex")
        pl.export("swin_t", chex_dir, ckpt, preset="swinchex")
        compare(R, "swin_t+swinchex", chex, chex_dir, x1, taps=["stage2"])
        compare(R, "swin_t+swinchex", chex, chex_dir, x4, taps=["stage2"])

        # swin_t + linear head, 3 classes, torchvision state dict.
        torch.manual_seed(1)
        lin = randomize(swin.build_model("swin_t", "linear", ["COVID-19", "Normal", "Viral Pneumonia"]), 2)
        lin_ckpt = os.path.join(tmp, "linear.pth")
        torch.save(lin.state_dict(), lin_ckpt)
        lin_dir = os.path.join(tmp, "linear")
        pl.export("swin_t", lin_dir, lin_ckpt, preset="linear", labels=["COVID-19", "Normal", "Viral Pneumonia"])
        compare(R, "swin_t+linear", lin, lin_dir, x1)
        compare(R, "swin_t+linear", lin, lin_dir, x4)

        # The demo-sized configuration at the demo's 128x128 input, written by export_module as the
        # demo training does. 128/4 = 32 is not a multiple of the window (7): this is where the
        # zero padding to whole windows and the per-stage shift rules are exercised.
        torch.manual_seed(2)
        small = randomize(swin.build_model("swin_t", "swinchex", None, embed_dim=48, depths=[2, 2, 2, 2],
                                           num_heads=[2, 4, 8, 16]), 3)
        small_dir = os.path.join(tmp, "small")
        pre = dict(swin.SWINCHEX_PREPROCESS, resize_shorter=146, center_crop=[128, 128])
        swin.export_module(small, "swin_t", "swinchex", None, small_dir, demo=True, provenance="parity_swin.py",
                           preprocess=pre)
        s4 = torch.randn(4, 3, 128, 128, generator=g)
        compare(R, "small+swinchex@128", small, small_dir, s4[:1].clone(), taps=["stage1", "stage4", "features"])
        compare(R, "small+swinchex@128", small, small_dir, s4, taps=["stage1", "stage4", "features"])

        # export.py's errors on checkpoints that do not fit.
        exporter = ["/usr/bin/python3", os.path.join(pl.SRCDIR, "models", "export", "export.py"), "--arch", "swin_t"]
        sd = lin.state_dict()
        sd["features.1.0.attn.extra.weight"] = torch.zeros(3)
        sd["features.3.1.attn.qkv.weight"] = torch.zeros(576, 96)
        bad = os.path.join(tmp, "bad.pth")
        torch.save(sd, bad)
        cmd = exporter + ["--preset", "linear", "--labels", "a,b,c", "--weights", bad, "--out", os.path.join(tmp, "x")]
        expect_fail(R, "export.py refuses an unexpected key", cmd, "unexpected tensor 'features.1.0.attn.extra.weight'",
                    ("export.py refuses a wrong shape",
                     "tensor 'features.3.1.attn.qkv.weight' has shape [576, 96], expected [576, 192]"))
        expect_fail(R, "export.py refuses labels that do not match the head",
                    exporter + ["--preset", "linear", "--labels", "a,b", "--weights", lin_ckpt, "--out",
                                os.path.join(tmp, "x3")], "2 labels given, the checkpoint's head has 3 outputs")
        expect_fail(R, "export.py refuses an unknown preset",
                    exporter + ["--preset", "chexnet", "--weights", lin_ckpt, "--out", os.path.join(tmp, "x4")],
                    "unknown swin preset 'chexnet'")

        # salient's load errors on manifests that do not fit the weights.
        run = [pl.RUN, "--input", os.path.join(tmp, "in.safetensors"), "--output", os.path.join(tmp, "o.st")]
        pl.write_safetensors(os.path.join(tmp, "in.safetensors"), {"input": x1})
        d = edit_manifest(lin_dir, os.path.join(tmp, "m_labels"), lambda m: m["labels"].pop())
        expect_fail(R, "load fails: 2 labels, 3 outputs", run + ["--model", d],
                    "the manifest has 2 labels, but 'head.weight' has 3 outputs")
        d = edit_manifest(chex_dir, os.path.join(tmp, "m_chex_labels"), lambda m: m["labels"].pop())
        expect_fail(R, "load fails: 13 labels, 14 SwinCheX heads", run + ["--model", d],
                    "the manifest has 13 labels, but the weights hold more SwinCheX heads")

        def unknown_preset(m):
            del m["head"]
            m["preset"] = "chexnet"
        d = edit_manifest(lin_dir, os.path.join(tmp, "m_preset"), unknown_preset)
        expect_fail(R, "load fails: unknown preset", run + ["--model", d], "unknown swin preset 'chexnet'")
        d = edit_manifest(small_dir, os.path.join(tmp, "m_shape"), lambda m: m["arch"].update(embed_dim=64))
        expect_fail(R, "load fails: config does not fit the weights", run + ["--model", d],
                    "tensor 'features.0.0.weight' has shape [48,3,4,4], expected [64,3,4,4]")
        d = edit_manifest(small_dir, os.path.join(tmp, "m_depth"), lambda m: m["arch"].update(depths=[2, 1, 2, 2]))
        expect_fail(R, "load fails: fewer blocks than the weights", run + ["--model", d],
                    "unexpected tensor 'features.3.1.norm1.weight'")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    R.finish()


if __name__ == "__main__":
    main()
