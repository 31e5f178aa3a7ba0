#!/usr/bin/python3
"""parity_attention: salient's attention maps against PyTorch, and the checks that they mean
something (docs/MODELS.md, "Attention maps").

For every demo model under $SALIENT_SRCDIR/models/repo, on held-out synthetic phantoms:
  1. parity: `salient-run --attention` writes each layer map and every label's CAM; PyTorch
     recomputes them from the same weights (salient_export.load.load_model_folder) and the same
     preprocessed input: layer maps mean_c A^2 min-max normalised, exact CAMs w_k . F + b_k for
     GAP + linear heads, gradient CAMs for the SwinCheX head (torch's autograd gives
     d(logit1 - logit0)/dz at the pooled features z; the map is s + g . (F - z)), ReciproCAM-style
     perturbation CAMs (through the real head) for quadrant_ae and for a copy of swinchex-demo
     whose manifest asks for them. Within 1e-4.
  1b. a gradient CAM of a head that IS linear is the exact CAM: swinchex-demo's backbone with a
     seeded random linear head, salient's "gradient" and "linear" maps of it against each other
     and against PyTorch.
  2. model randomisation (Adebayo et al. 2018): the top block's weights replaced by random ones
     -> the CAM of the best label must decorrelate: mean Spearman rank correlation with the
     original CAM below 0.5 (a map that barely moves fails).
  3. pointing game: for positive focal findings, the peak of the label's CAM inside the lesion
     box grown by one feature cell; chexnet-demo must reach 80%; every model's rate is printed
     (the numbers in docs/MODELS.md come from here), the perturbation copy's for comparison.
"""
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from paritylib import Report, SRCDIR, read_safetensors, salient_run  # noqa: E402

from salient_export.common import write_safetensors  # noqa: E402
from salient_export.load import load_model_folder, read_safetensors as read_weights  # noqa: E402

import phantoms  # noqa: E402  (models/export, on sys.path via paritylib)
from PIL import Image  # noqa: E402

TOL = 1e-4
# Layer maps are min-max normalised, which scales float rounding by max / (max - min): for a
# near-flat map (an untrained layer) 1e-6 of raw error becomes 1e-4 and more after it.
LAYER_TOL = 1e-3
REPO = os.path.join(SRCDIR, "models", "repo")
FOCAL = {"cxr14": ["Nodule", "Mass", "Consolidation"], "covid": ["Viral Pneumonia"]}
# The top block: the network's last resolution stage, everything between the last downsampling
# and global pooling (a DenseNet's transition3 belongs to it: denseblock4 passes its output
# through unchanged, so randomising denseblock4 alone would leave half the channels intact).
# A Swin's last stage depends on its number of stages: see top_block().
TOP_BLOCK = {"densenet": ("features.transition3", "features.denseblock4", "features.norm5"), "resnet": ("layer4",),
             "quadrant_ae": ("backbones.0.layer4", "backbones.0.features.transition3",
                             "backbones.0.features.denseblock4", "backbones.0.features.norm5")}
FAMILIES = ("densenet", "resnet", "swin", "quadrant_ae")  # faceapi's maps are checked against face-api


def top_block(man):
    """TOP_BLOCK's prefixes for the model of manifest man. A Swin of n stages (torchvision
    names: features.0 the patch embedding, features.<2s-1> stage s, features.<2s> the merging
    after it) ends with the merging into stage n, stage n and the final norm."""
    if man["family"] != "swin":
        return TOP_BLOCK[man["family"]]
    n = len(man["arch"]["depths"]) if isinstance(man.get("arch"), dict) and "depths" in man["arch"] else 4
    return ("features.%d." % (2 * n - 2), "features.%d." % (2 * n - 1), "norm.")


# --- PyTorch references -----------------------------------------------------------------------

def layer_tensors(module, man, x):
    """{tap name: NCHW activation} for the manifest's attention layers."""
    fam, want = man["family"], man["attention"]["layers"]
    out = {}
    with torch.no_grad():
        if fam == "swin":
            taps = module.taps(x)
            return {k: taps[k].permute(0, 3, 1, 2) for k in want}
        if fam == "quadrant_ae":
            o = module.outputs(x, maps=True)
            return {k: o[k] for k in want}
        hooks = []
        for name in want:
            sub = module.features if fam == "densenet" else module
            target = getattr(sub, name)
            hooks.append(target.register_forward_hook(lambda mod, i, o, name=name: out.__setitem__(name, o)))
        module(x)
        for h in hooks:
            h.remove()
    return out


def layer_map(a):
    """[N, C, h, w] -> [N, h, w]: mean_c A^2, min-max normalised per image (zeros if flat)."""
    m = (a.double() ** 2).mean(1)
    lo = m.flatten(1).min(1).values.view(-1, 1, 1)
    hi = m.flatten(1).max(1).values.view(-1, 1, 1)
    rng = hi - lo
    return torch.where(rng > 0, (m - lo) / torch.where(rng > 0, rng, torch.ones_like(rng)), torch.zeros_like(m))


def reciprocam(fm, head_probs, k_all, quadrants=False):
    """Perturbation CAM of every label: fm [C, h, w]; for each cell a copy keeping the cell (1),
    its row/column neighbours (0.5) and diagonal neighbours (0.25) is pooled (global mean, or each
    2x2 quadrant's mean concatenated) and run through the head. Returns [labels, h, w]."""
    c, h, w = fm.shape
    taper = lambda d: 1.0 if d == 0 else 0.5 if d == 1 else 0.0  # noqa: E731
    masks = torch.zeros(h * w, h, w, dtype=torch.float64)
    for i in range(h):
        for j in range(w):
            for y in range(h):
                for x in range(w):
                    masks[i * w + j, y, x] = taper(abs(y - i)) * taper(abs(x - j))
    masked = fm.double().unsqueeze(0) * masks.unsqueeze(1)
    if quadrants:
        h2, w2 = h // 2, w // 2
        qs = [masked[:, :, :h2, :w2], masked[:, :, :h2, w2:], masked[:, :, h2:, :w2], masked[:, :, h2:, w2:]]
        pooled = torch.cat([q.mean((2, 3)) for q in qs], 1)
    else:
        pooled = masked.mean((2, 3))
    probs = head_probs(pooled.float()).double()  # [h*w, labels]
    return probs[:, k_all].T.reshape(len(k_all), h, w)


def gradient_cams(fms, score):
    """Gradient CAMs of every label: fms [N, C, h, w] the last feature map, score(z) -> [N, labels]
    the head's scores of pooled features z [N, C]. z is pooled as the network pools (float32),
    g = ds_k/dz by autograd, and the map is s_k(z) + g_k . (F(i, j) - z). Returns [N, labels, h, w]."""
    z = fms.float().mean((2, 3)).detach().requires_grad_(True)
    s = score(z)
    g = torch.stack([torch.autograd.grad(s[:, k].sum(), z, retain_graph=True)[0] for k in range(s.shape[1])], 1)
    d = fms.double() - z.detach().double()[:, :, None, None]
    return s.detach().double()[:, :, None, None] + torch.einsum("nlc,nchw->nlhw", g.double(), d)


def swin_scores(module):
    """z -> [N, labels]: a Swin head's scores as its gradient CAM differentiates them (SwinCheX:
    each label's log-odds logit[1] - logit[0]; a linear head: its logits)."""
    if module.salient_head != "swinchex":
        return module.head
    return lambda z: (lambda l: l[:, :, 1] - l[:, :, 0])(module.head(z).view(z.shape[0], -1, 2))


def cams(module, man, x):
    """[N, labels, h, w] CAMs of every label, as salient computes them (the manifest's method)."""
    fam, L = man["family"], len(man["labels"])
    ks = list(range(L))
    method = man["attention"]["cam"]
    if fam == "swin" and method == "gradient":
        with torch.no_grad():
            fms = module.taps(x)["features"].permute(0, 3, 1, 2)
        return gradient_cams(fms, swin_scores(module))
    with torch.no_grad():
        if fam == "swin" and method == "linear":
            fm = module.taps(x)["features"].permute(0, 3, 1, 2).double()
            w, b = module.head.weight.double(), module.head.bias.double()
            return torch.einsum("lc,nchw->nlhw", w, fm) + b.view(1, -1, 1, 1)
        if fam in ("densenet", "resnet"):
            head = module.classifier if fam == "densenet" else module.fc
            fm = module.feature_map(x).double()
            w, b = head.weight.double(), head.bias.double()
            return torch.einsum("lc,nchw->nlhw", w, fm) + b.view(1, -1, 1, 1)
        if fam == "swin" and method == "perturbation":
            fms = module.taps(x)["features"].permute(0, 3, 1, 2)
            hp = lambda p: module.probs(module.head(p))  # noqa: E731
            return torch.stack([reciprocam(f, hp, ks) for f in fms])
        if fam == "quadrant_ae":
            fms = module.outputs(x, maps=True)["backbone0"]
            hp = lambda f: torch.softmax(module.classifier(module.encoder(f)), 1)  # noqa: E731
            return torch.stack([reciprocam(f, hp, ks, quadrants=True) for f in fms])
    raise ValueError(fam)


# --- helpers ----------------------------------------------------------------------------------

def write_pngs(imgs, tmp, tag):
    paths = []
    for i, im in enumerate(imgs):
        p = os.path.join(tmp, "%s_%03d.png" % (tag, i))
        Image.fromarray(im).save(p)
        paths.append(p)
    return paths


def run_attention(model_dir, paths):
    return salient_run(model_dir, images=paths, max_batch=16, extra=["--attention", "--batch", "8"])


def salient_cams(out, labels):
    return torch.stack([out["cam/" + l] for l in labels], 1)  # [N, labels, h, w]


def spearman(a, b):
    ra = np.argsort(np.argsort(a)).astype(np.float64)
    rb = np.argsort(np.argsort(b)).astype(np.float64)
    ra -= ra.mean()
    rb -= rb.mean()
    d = np.sqrt((ra ** 2).sum() * (rb ** 2).sum())
    return float((ra * rb).sum() / d) if d > 0 else 1.0


def randomised_copy(model_dir, prefixes, tmp):
    """A copy of the model folder with the top block's weights replaced by seeded random ones of
    the same shape and scale (std of each original tensor)."""
    dst = os.path.join(tmp, os.path.basename(model_dir) + "-random")
    shutil.copytree(model_dir, dst)
    sd, _ = read_weights(os.path.join(model_dir, "model.safetensors"))
    g = torch.Generator().manual_seed(1234)
    changed = 0
    for k, v in sd.items():
        if any(k.startswith(p) for p in prefixes) and v.dtype.is_floating_point and v.numel() > 1:
            if "running_var" in k:
                sd[k] = torch.rand(v.shape, generator=g) + 0.5
            else:
                sd[k] = torch.randn(v.shape, generator=g) * (v.float().std() + 1e-3)
            changed += 1
    write_safetensors(os.path.join(dst, "model.safetensors"), {k: v.float().contiguous() for k, v in sd.items()})
    return dst, changed


# --- the checks -------------------------------------------------------------------------------

def variant(model_dir, tmp, tag, edit, weights=None):
    """A copy of the model folder named <model>-<tag> whose manifest dict edit(man) changes in
    place (and whose weights are weights(state_dict) if given)."""
    dst = os.path.join(tmp, os.path.basename(model_dir) + "-" + tag)
    shutil.copytree(model_dir, dst)
    mpath = os.path.join(dst, "manifest.json")
    with open(mpath) as f:
        man = json.load(f)
    edit(man)
    with open(mpath, "w") as f:
        json.dump(man, f, indent=2)
    if weights:
        sd, _ = read_weights(os.path.join(model_dir, "model.safetensors"))
        write_safetensors(os.path.join(dst, "model.safetensors"),
                          {k: v.float().contiguous() for k, v in weights(sd).items()})
    return dst


def with_linear_head(sd):
    """swinchex-demo's backbone and final norm with a seeded random linear head over the same
    pooled features (head.weight [labels, features], head.bias) instead of its MLPs."""
    sd = {k: v for k, v in sd.items() if not k.startswith("head.")}
    nlab, nfeat = 14, sd["norm.weight"].shape[0]
    g = torch.Generator().manual_seed(4321)
    sd["head.weight"] = torch.randn(nlab, nfeat, generator=g) * nfeat ** -0.5
    sd["head.bias"] = torch.randn(nlab, generator=g) * 0.5
    return sd


def linear_head_manifest(cam):
    def edit(man):
        man.update(preset="linear_sigmoid", head={"type": "linear"}, output={"activation": "sigmoid"})
        man["attention"]["cam"] = cam
    return edit


def check_model(rep, name, model_dir, sets, paths, tmp, rates):
    """Parity, randomisation and pointing game (the module docstring's 1-3) of one model folder."""
    module, man = load_model_folder(model_dir)
    task = "covid" if len(man["labels"]) == 3 else "cxr14"
    imgs, recs = sets[task]
    labels = man["labels"]
    out = run_attention(model_dir, paths[task])
    x = out["input"]

    # 1. parity on the first 16 images
    xs = x[:16]
    ref_layers = layer_tensors(module, man, xs)
    for k in man["attention"]["layers"]:
        rep.close("%s layer map %s" % (name, k), out["attention/" + k][:16], layer_map(ref_layers[k]).float(),
                  LAYER_TOL)
    ref_cam = cams(module, man, xs)
    rep.close("%s CAM (%s, %d labels)" % (name, man["attention"]["cam"], len(labels)),
              salient_cams(out, labels)[:16], ref_cam.float(), TOL)
    w = out["attention_weight"]
    rep.check("%s layer weights sum to 1" % name, bool(torch.allclose(w.sum(1), torch.ones(len(w)), atol=1e-5)))

    # 2. randomisation of the top block
    probs = out["probs"]
    best = probs.argmax(1)
    sal = salient_cams(out, labels)
    rnd_dir, changed = randomised_copy(model_dir, top_block(man), tmp)
    rout = run_attention(rnd_dir, paths[task][:40])
    rsal = salient_cams(rout, labels)
    rho = [spearman(sal[i, best[i]].flatten().numpy(), rsal[i, best[i]].flatten().numpy()) for i in range(40)]
    mean_rho = float(np.mean(rho))
    what = "%s randomised top block (%d tensors): mean CAM rank correlation %.3f < 0.5" % (name, changed, mean_rho)
    # A model that learnt nothing (held-out mean AUC in its provenance below 0.7) has nothing for
    # its maps to lose: reported, not held to the test.
    auc = man.get("provenance", {}).get("metrics", {}).get("mean_auc", 1.0)
    if auc >= 0.7:
        rep.check(what, changed > 0 and mean_rho < 0.5)
    else:
        print("info %s (not checked: held-out mean AUC %.3f, the model did not learn)" % (what, auc))

    # 3. pointing game
    hits = cases = 0
    per = {}
    for i, r in enumerate(recs):
        for b in r["boxes"]:
            if b["label"] not in FOCAL[task]:
                continue
            cam = sal[i, labels.index(b["label"])].numpy()
            hit = phantoms.peak_in_box(cam, b["box"], 256, 256, 1.0)
            hits += hit
            cases += 1
            ph = per.setdefault(b["label"], [0, 0])
            ph[0] += hit
            ph[1] += 1
    rate = hits / cases if cases else 0.0
    rates[name] = (man["attention"]["cam"], rate, per, mean_rho)
    detail = ", ".join("%s %d/%d" % (k, v[0], v[1]) for k, v in sorted(per.items()))
    if name == "chexnet-demo":
        rep.check("chexnet-demo pointing game %.3f >= 0.80 (%s)" % (rate, detail), rate >= 0.80)
    else:
        print("info %s pointing game %.3f (%s)" % (name, rate, detail))


def check_linear_gradient(rep, model_dir, paths, tmp):
    """1b: on a head that is linear, the gradient CAM is the exact CAM (both salient's, and
    PyTorch's exact CAM of the same weights)."""
    maps = {}
    for cam in ("gradient", "linear"):
        d = variant(model_dir, tmp, "linear-" + cam, linear_head_manifest(cam), with_linear_head)
        module, man = load_model_folder(d)
        out = run_attention(d, paths["cxr14"][:16])
        maps[cam] = salient_cams(out, man["labels"])
    ref = cams(module, man, out["input"])
    rep.close("swinchex-demo-linear-head gradient CAM = linear CAM (salient, 14 labels)", maps["gradient"],
              maps["linear"], TOL)
    rep.close("swinchex-demo-linear-head gradient CAM = PyTorch exact CAM", maps["gradient"], ref.float(), TOL)


def check_gradient_refused(rep, paths, tmp):
    """A gradient CAM where there is no pooled-feature gradient to take: a clear load error."""
    cases = (("quadrant-demo", "no-gradient", lambda m: m["attention"].__setitem__("cam", "gradient"),
              "family quadrant_ae cannot differentiate its head"),
             ("swinchex-demo", "gradient-quadrants",
              lambda m: m["attention"].update(cam="gradient", cam_pool="quadrants"),
              "needs global pooling"))
    for name, tag, edit, want in cases:
        d = variant(os.path.join(REPO, name), tmp, tag, edit)
        try:
            run_attention(d, paths["cxr14"][:1])
            err = "(loaded)"
        except RuntimeError as e:
            err = str(e)
        rep.check("%s with %s: refused (%s)" % (name, tag, err[-120:]), want in err)


def main():
    rep = Report("attention maps")
    sets = {}
    for task, n, seed in (("cxr14", 160, 1001), ("covid", 120, 1002)):
        sets[task] = phantoms.generate(n, seed=seed, size=256, task=task)
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {t: write_pngs(s[0], tmp, t) for t, s in sets.items()}
        for name in sorted(os.listdir(REPO)):
            model_dir = os.path.join(REPO, name)
            if not os.path.isfile(os.path.join(model_dir, "manifest.json")):
                continue
            with open(os.path.join(model_dir, "manifest.json")) as f:
                man = json.load(f)
            if man.get("family") not in FAMILIES or "attention" not in man:
                continue
            check_model(rep, name, model_dir, sets, paths, tmp, rates)
            if man.get("head", {}).get("type") == "swinchex":
                # the other CAM a SwinCheX head offers, selected by a manifest copy
                other = "perturbation" if man["attention"]["cam"] != "perturbation" else "gradient"
                d = variant(model_dir, tmp, other, lambda m: m["attention"].__setitem__("cam", other))
                check_model(rep, "%s (%s)" % (name, other), d, sets, paths, tmp, rates)
                check_linear_gradient(rep, model_dir, paths, tmp)
        check_gradient_refused(rep, paths, tmp)
    print("pointing game per demo model (held-out phantoms, CAM peak in the lesion box +- 1 cell):")
    for name, (cam, rate, per, rho) in rates.items():
        print("  %-34s %-12s %.3f  %s  (randomisation rho %.3f)" % (
            name, cam, rate, ", ".join("%s %d/%d" % (k, v[0], v[1]) for k, v in sorted(per.items())), rho))
    rep.finish()


if __name__ == "__main__":
    main()
