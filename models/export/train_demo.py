#!/usr/bin/python3
"""train_demo.py: train salient's demo checkpoints from scratch on synthetic phantoms, on the CPU.

    /usr/bin/python3 models/export/train_demo.py --model chexnet-demo
    /usr/bin/python3 models/export/train_demo.py --model all          # the four, one after another
    /usr/bin/python3 models/export/train_demo.py --model swinchex-demo --export-only

Why: the default model repository must serve something without PyTorch and without patient
data, and the attention-map tests need a model that has really learnt where findings are. Each
model trains in minutes on the CPU (the CNNs 3-15 on 2 threads, swinchex-demo ~25 on one
thread of a busy machine: a Swin from scratch needs ~6x the CNNs' steps) on phantoms from
phantoms.py, is evaluated on a held-out phantom set drawn with a different seed (per-label ROC
AUC, accuracy, the CAM pointing game), and is written by its family's exporter
(salient_export/<family>.py) into models/repo/<name>/ with "demo": true and a provenance block
saying how it was made (script, seed, data generator and arguments, steps, held-out metrics).

Training sets are cached under /tmp/salient-phantoms/ and the trained state dicts under
/tmp/salient-demo/ (never in the repository), so --export-only re-exports without retraining.
Deterministic for a seed up to PyTorch's CPU kernels (thread scheduling can change the last bits).
"""
import argparse
import importlib
import inspect
import json
import math
import os
import sys
import time
from multiprocessing import Pool

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import phantoms  # noqa: E402
from salient_export.common import (CHEXNET_LABELS, COVID_LABELS, CXR14_CSV_LABELS, IMAGENET_MEAN,  # noqa: E402
                                   IMAGENET_STD)

REPO = os.path.normpath(os.path.join(HERE, "..", "repo"))
DATA_CACHE = "/tmp/salient-phantoms"
STATE_CACHE = "/tmp/salient-demo"
PHANTOM_SIZE = 256

# Every demo model: its family exporter, architecture, labels, data and schedule. The input
# size is below the upstream 224 to fit a few minutes of CPU training; the manifest's
# preprocess block says so, and so does the provenance.
# Optional keys (swinchex-demo): schedule "warmup_cosine" (linear warm-up over `warmup` of the
# steps, then cosine to 0; default: one-cycle), clip (gradient norm), head_prior (each label's
# output bias starts at the training set's log-odds), detach_absent (labels with no positive in
# the training set train their own head on detached features, so they never reach the backbone),
# head_norm (the pooled features are standardised by a BatchNorm without affine before the head
# while training; its running statistics are folded into the head's first Linear afterwards),
# aux_linear (weight of an auxiliary linear head trained with per-label BCE on the drawn labels
# beside the SwinCheX head, discarded at export: a direct gradient into the backbone),
# decay_matrices_only (no weight decay on norms, biases and other 1-D parameters),
# augment (False: no translation / brightness augmentation; default True).
MODELS = {
    "chexnet-demo": dict(
        family="densenet", arch="densenet121", preset="chexnet", labels=CHEXNET_LABELS, config={},
        task="cxr14", loss="bce", input=128, n_train=3000, epochs=2, batch=24, lr=2e-3, wd=1e-4,
        train_seed=1, heldout_seed=1001, n_heldout=600),
    "covid-resnet-demo": dict(
        family="resnet", arch="resnet18", preset="covid", labels=COVID_LABELS, config={},
        task="covid", loss="ce", input=128, n_train=3000, epochs=2, batch=32, lr=2e-3, wd=1e-4,
        train_seed=2, heldout_seed=1002, n_heldout=600),
    "swinchex-demo": dict(
        family="swin", arch="swin_t", preset="swinchex", labels=CXR14_CSV_LABELS,
        config=dict(patch_size=8, embed_dim=32, depths=[2, 2, 2], num_heads=[1, 2, 4], window_size=4),
        task="cxr14", loss="pairs", input=128, n_train=3000, epochs=12, batch=24, lr=2e-3, wd=0.05,
        schedule="warmup_cosine", warmup=0.05, clip=1.0, head_prior=True, detach_absent=True, head_norm=True,
        aux_linear=1.0, decay_matrices_only=True, augment=False,
        train_seed=1, heldout_seed=1001, n_heldout=600),
    "quadrant-demo": dict(
        family="quadrant_ae", arch="quadrant_ae", preset="covid", labels=COVID_LABELS,
        config=dict(backbones=[{"family": "densenet", "arch": "densenet121", "growth_rate": 24,
                                "block_config": [2, 4, 6, 4], "num_init_features": 32}],
                    encoder=[256, 64, 16], activation="relu", classifier={"kind": "slp"}, input_size=128),
        ae_recon=0.5, task="covid", loss="ce", input=128, n_train=3000, epochs=3, batch=32, lr=3e-3, wd=1e-4,
        train_seed=2, heldout_seed=1002, n_heldout=600),
}


def log(msg):
    """Progress lines on stderr, flushed, so a long run shows it is alive."""
    print("train_demo: %s" % msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- data

def _gen_chunk(args):
    """Worker: one chunk of a phantom set (module-level so multiprocessing can pickle it)."""
    n, seed, start, task = args
    return phantoms.generate(n, seed=seed, size=PHANTOM_SIZE, task=task, start=start)


def phantom_set(task, n, seed, procs=2):
    """(uint8 [n, 256, 256], records) for task/seed, drawn in `procs` processes and cached in
    /tmp/salient-phantoms so the models sharing a set (and re-runs) draw it once."""
    os.makedirs(DATA_CACHE, exist_ok=True)
    path = os.path.join(DATA_CACHE, "%s-seed%d-n%d-%d.npz" % (task, seed, n, PHANTOM_SIZE))
    if os.path.exists(path):
        z = np.load(path, allow_pickle=False)
        return z["images"], json.loads(str(z["records"]))
    t0 = time.time()
    log("drawing %d %s phantoms (seed %d) ..." % (n, task, seed))
    chunk = 200
    jobs = [(min(chunk, n - s), seed, s, task) for s in range(0, n, chunk)]
    with Pool(procs) as pool:
        parts = pool.map(_gen_chunk, jobs)
    imgs = np.concatenate([p[0] for p in parts])
    recs = [r for p in parts for r in p[1]]
    np.savez(path, images=imgs, records=json.dumps(recs))
    log("  %d phantoms in %.0f s -> %s" % (n, time.time() - t0, path))
    return imgs, recs


def targets(recs, task, labels):
    """Training targets: multi-hot [n, L] (cxr14; labels never drawn stay 0) or class index [n]."""
    if task == "covid":
        return torch.tensor([labels.index(r["class"]) for r in recs], dtype=torch.long)
    return torch.from_numpy(np.stack([phantoms.label_vector(r, labels) for r in recs]))


def to_input(batch_u8, size, channels=3):
    """uint8 [B, H, W] -> the network's input [B, C, size, size] exactly as the manifest's
    preprocess block says: resize (bilinear, antialiased), [0, 1], gray replicated, ImageNet
    mean/std."""
    x = torch.from_numpy(np.ascontiguousarray(batch_u8)).float().unsqueeze(1) / 255.0
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    x = x.expand(-1, channels, -1, -1)
    mean = torch.tensor(IMAGENET_MEAN[:channels]).view(1, -1, 1, 1)
    std = torch.tensor(IMAGENET_STD[:channels]).view(1, -1, 1, 1)
    return (x - mean) / std


def preprocess_block(size):
    """The manifest's preprocess block matching to_input()."""
    return {"channels": 3, "resize": [size, size], "interpolation": "bilinear", "antialias": True,
            "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}


def augment(x, gen, shift=0.06):
    """Per-sample random translation (edge padding) and brightness/contrast jitter: on top of
    the phantoms' own pose jitter, it keeps the CAM tied to the lesion rather than to a fixed
    position."""
    b, c, h, w = x.shape
    p = int(round(shift * h))
    xp = F.pad(x, (p, p, p, p), mode="replicate")
    offs = torch.randint(0, 2 * p + 1, (b, 2), generator=gen)
    out = torch.stack([xp[i, :, offs[i, 0]:offs[i, 0] + h, offs[i, 1]:offs[i, 1] + w] for i in range(b)])
    gain = 1 + 0.15 * (torch.rand(b, 1, 1, 1, generator=gen) - 0.5)
    bias = 0.3 * (torch.rand(b, 1, 1, 1, generator=gen) - 0.5)
    return out * gain + bias


# ---------------------------------------------------------------- models

def family_module(family):
    """The exporter module salient_export.<family> (written alongside, by the family's owner)."""
    return importlib.import_module("salient_export." + family)


def build(spec):
    """The family's own reference module in training mode (its state dict names are what the
    exporter and the C loader expect)."""
    fam = family_module(spec["family"])
    m = fam.build_model(spec["arch"], spec["preset"], list(spec["labels"]), **dict(spec["config"]))
    return m.train()


def ae_decoder(model, spec):
    """quadrant_ae: the decoder half of the autoencoder (mirror of the encoder), trained with a
    reconstruction loss on the pooled features beside the classification loss, so the code
    stays an autoencoder's code; only the encoder is exported (the pipeline never decodes)."""
    if not spec.get("ae_recon"):
        return None
    sizes = [l.in_features for l in model.encoder if isinstance(l, torch.nn.Linear)]
    sizes.append(model.encoder[-2].out_features)
    rev = sizes[::-1]
    mods = []
    for j in range(len(rev) - 1):
        mods.append(torch.nn.Linear(rev[j], rev[j + 1]))
        if j < len(rev) - 2:
            mods.append(torch.nn.ReLU())
    return torch.nn.Sequential(*mods)


# The output logit of a label the training set never draws, at initialisation (p ~ 0.001).
ABSENT_LOGIT = -7.0


def init_head_prior(model, y):
    """SwinCheX head: start each label's output at its training prior (bias of the last Linear
    [-l/2, l/2], l = log-odds; ABSENT_LOGIT for a label never drawn), so the first steps do not
    push the mean label rate into the backbone (which, through Adam and LayerNorm, collapses
    its features to one input-independent vector)."""
    p = y.float().mean(0)
    with torch.no_grad():
        for k, mlp in enumerate(model.head):
            lo = float(torch.log(p[k] / (1 - p[k]))) if 0 < p[k] < 1 else ABSENT_LOGIT
            mlp[-1].bias.copy_(torch.tensor([-lo / 2, lo / 2]))


def swin_logits(model, x, absent, hnorm, with_pooled=False):
    """SalientSwin's forward (features, norm, pool, SwinCheX head) for training: the pooled
    features standardised by hnorm (a BatchNorm1d without affine, or None), and the heads of
    the labels in `absent` fed detached features: they learn "never" on their own, and their
    gradient, which never vanishes (the target is a probability of 0), does not reach the
    backbone. with_pooled: (logits, the head's input)."""
    pooled = model.flatten(model.avgpool(model.permute(model.norm(model.features(x)))))
    if hnorm is not None:
        pooled = hnorm(pooled)
    absent = absent or ()
    logits = torch.cat([mlp(pooled.detach() if k in absent else pooled) for k, mlp in enumerate(model.head)], 1)
    return (logits, pooled) if with_pooled else logits


def fold_head_norm(model, hnorm):
    """Fold hnorm's running statistics into each SwinCheX MLP's first Linear
    (W x' + b with x' = (x - mean) / sd  ==  (W / sd) x + b - W (mean / sd)), so the network
    is the plain SalientSwin the exporter writes and salient runs."""
    sd = torch.sqrt(hnorm.running_var + hnorm.eps)
    mean = hnorm.running_mean
    with torch.no_grad():
        for mlp in model.head:
            first = mlp[0]
            first.bias -= first.weight @ (mean / sd)
            first.weight /= sd


def aux_head(model, spec, y):
    """The auxiliary linear head of spec["aux_linear"] (None without it): pooled features ->
    one logit per label the training set draws, trained with BCE beside the real head and
    dropped at export. The SwinCheX MLPs reach the backbone through three ReLU layers each,
    14 separate small signals; a linear head gives the backbone one direct gradient per label
    from the first step, which is what gets the Swin off the label prior."""
    if not spec.get("aux_linear"):
        return None
    drawn = torch.nonzero(y.sum(0) > 0).flatten()
    lin = torch.nn.Linear(model.num_features, len(drawn))
    lin.drawn = drawn
    return lin


def step_loss(model, decoder, spec, x, y, absent=None, hnorm=None, aux=None):
    """The training objective of one batch: the task loss, plus for quadrant_ae the
    autoencoder's reconstruction of the (detached) pooled features. absent, hnorm, aux: for
    the SwinCheX head (swin_logits, aux_head)."""
    if decoder is None and aux is not None:
        logits, pooled = swin_logits(model, x, absent, hnorm, with_pooled=True)
        yd = y[:, aux.drawn].float()
        aux_loss = F.binary_cross_entropy_with_logits(aux(pooled), yd)
        return loss_fn(spec["loss"], logits, y) + spec["aux_linear"] * aux_loss
    if decoder is None:
        swin = absent or hnorm is not None
        return loss_fn(spec["loss"], swin_logits(model, x, absent, hnorm) if swin else model(x), y)
    o = model.outputs(x)
    feats = o["features"].detach()
    return loss_fn(spec["loss"], o["logits"], y) + spec["ae_recon"] * F.mse_loss(decoder(o["code"]), feats)


def loss_fn(kind, logits, y):
    """bce: sigmoid per label; ce: softmax over classes; pairs: SwinCheX's 2-way softmax per label."""
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits, y)
    if kind == "ce":
        return F.cross_entropy(logits, y)
    pairs = logits.view(logits.shape[0], -1, 2)
    return F.cross_entropy(pairs.reshape(-1, 2), y.reshape(-1).long())


def probabilities(kind, logits):
    """Scores as the server reports them (sigmoid, softmax, or softmax(pair)[1])."""
    if kind == "bce":
        return torch.sigmoid(logits)
    if kind == "ce":
        return torch.softmax(logits, dim=1)
    return torch.softmax(logits.view(logits.shape[0], -1, 2), dim=2)[:, :, 1]


def train(name, spec, seed):
    """Train one model; returns (model in eval mode, seconds, steps)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    imgs, recs = phantom_set(spec["task"], spec["n_train"], spec["train_seed"])
    y = targets(recs, spec["task"], list(spec["labels"]))
    model = build(spec)
    if spec.get("head_prior"):
        init_head_prior(model, y)
    absent = set(int(k) for k in torch.nonzero(y.sum(0) == 0).flatten()) if spec.get("detach_absent") else None
    hnorm = torch.nn.BatchNorm1d(model.num_features, affine=False).train() if spec.get("head_norm") else None
    decoder = ae_decoder(model, spec)
    aux = aux_head(model, spec, y)
    params = list(model.parameters()) + [p for m in (decoder, aux) if m is not None for p in m.parameters()]
    if spec.get("decay_matrices_only"):
        groups = [{"params": [p for p in params if p.ndim > 1]},
                  {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]
    else:
        groups = params
    opt = torch.optim.AdamW(groups, lr=spec["lr"], weight_decay=spec["wd"])
    n, bs = len(imgs), spec["batch"]
    steps_per_epoch = n // bs
    total = steps_per_epoch * spec["epochs"]
    if spec.get("schedule") == "warmup_cosine":
        warm = max(1, int(round(spec["warmup"] * total)))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / warm if s < warm else
                                                  0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm))))
    else:
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=spec["lr"], total_steps=total, pct_start=0.15)
    log("%s: %s %s, %d params, %d phantoms x %d epochs, batch %d, input %d" % (
        name, spec["family"], spec["arch"], sum(p.numel() for p in model.parameters()), n, spec["epochs"], bs,
        spec["input"]))
    t0, step, run = time.time(), 0, None
    model.train()
    for ep in range(spec["epochs"]):
        perm = torch.randperm(n, generator=gen).numpy()
        for b in range(steps_per_epoch):
            idx = np.sort(perm[b * bs:(b + 1) * bs])
            x = to_input(imgs[idx], spec["input"])
            if spec.get("augment", True):
                x = augment(x, gen)
            loss = step_loss(model, decoder, spec, x, y[idx], absent, hnorm, aux)
            opt.zero_grad()
            loss.backward()
            if spec.get("clip"):
                torch.nn.utils.clip_grad_norm_(params, spec["clip"])
            opt.step()
            sched.step()
            step += 1
            run = loss.item() if run is None else 0.95 * run + 0.05 * loss.item()
            if step % 20 == 0 or step == total:
                el = time.time() - t0
                log("%s: epoch %d step %d/%d loss %.4f  %.0f s elapsed, ~%.0f s left" % (
                    name, ep + 1, step, total, run, el, el / step * (total - step)))
    if hnorm is not None:
        fold_head_norm(model, hnorm)
    model.eval()
    return model, time.time() - t0, total


# ---------------------------------------------------------------- evaluation

def roc_auc(y, s):
    """ROC AUC of scores s for binary truth y (Mann-Whitney U with tied ranks averaged); None
    when a class is absent (a label the phantoms never draw)."""
    y = np.asarray(y).astype(bool)
    s = np.asarray(s, dtype=np.float64)
    npos, nneg = int(y.sum()), int((~y).sum())
    if npos == 0 or nneg == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    ss = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and ss[j + 1] == ss[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1
        i = j + 1
    return float((ranks[y].sum() - npos * (npos + 1) / 2.0) / (npos * nneg))


@torch.no_grad()
def predict(model, spec, imgs, bs=50):
    """Probabilities [n, L] for uint8 images, in eval mode."""
    out = []
    for i in range(0, len(imgs), bs):
        out.append(probabilities(spec["loss"], model(to_input(imgs[i:i + bs], spec["input"]))))
    return torch.cat(out).numpy()


def _reciprocam(fm, head_probs, k, pool=None):
    """Perturbation CAM in the style of ReciproCAM for a head that is not linear: for every
    cell of the last feature map fm [C, h, w], a copy that keeps only that cell and its
    neighbours (weights 1, 0.5 at the sides, 0.25 at the corners) is average-pooled and run
    through the head, all cells as one batch; label k's score per cell is the map [h, w].
    pool: masked maps [h*w, C, h, w] -> head input (default: global average pool)."""
    c, h, w = fm.shape
    taper = torch.tensor([1.0, 0.5])                            # weight by distance 0, 1; 0 beyond
    dy = (torch.arange(h).view(-1, 1) - torch.arange(h).view(1, -1)).abs()   # [cell row, row]
    dx = (torch.arange(w).view(-1, 1) - torch.arange(w).view(1, -1)).abs()
    wy = torch.where(dy <= 1, taper[dy.clamp(max=1)], torch.zeros(()))
    wx = torch.where(dx <= 1, taper[dx.clamp(max=1)], torch.zeros(()))
    masks = [wy[i].view(h, 1) * wx[j].view(1, w) for i in range(h) for j in range(w)]
    masks = torch.stack(masks)                                  # h*w, h, w
    masked = fm.unsqueeze(0) * masks.unsqueeze(1)              # h*w, C, h, w
    pooled = pool(masked) if pool is not None else masked.mean((2, 3))
    return head_probs(pooled)[:, k].view(h, w)


def _quadrant_pool(masked):
    """quadrant_ae's features from a stitched (2x2 quadrants) map of its one backbone: each
    quadrant average-pooled, concatenated quadrant-major as the pipeline does."""
    h2, w2 = masked.shape[2] // 2, masked.shape[3] // 2
    qs = [masked[:, :, :h2, :w2], masked[:, :, :h2, w2:], masked[:, :, h2:, :w2], masked[:, :, h2:, w2:]]
    return torch.cat([q.mean((2, 3)) for q in qs], 1)


def cam_maps(model, spec, x, ks):
    """Class activation maps [N, h, w] of label index ks[n] for inputs x: exact CAM for a GAP +
    linear head (densenet, resnet), perturbation CAM for the SwinCheX head and for quadrant_ae
    (one backbone: its stitched map, autoencoder encoder + classifier as the head)."""
    fam = spec["family"]
    if fam in ("densenet", "resnet"):
        head = model.classifier if fam == "densenet" else model.fc
        fms = model.feature_map(x)
        return torch.stack([torch.einsum("c,chw->hw", head.weight[k], fm) for fm, k in zip(fms, ks)])
    if fam == "swin":
        fms = model.taps(x)["features"].permute(0, 3, 1, 2)     # NHWC -> NCHW
        hp = lambda pooled: probabilities(spec["loss"], model.head(pooled))  # noqa: E731
        return torch.stack([_reciprocam(fm, hp, k) for fm, k in zip(fms, ks)])
    if fam == "quadrant_ae" and len(model.backbones) == 1 and model.kind != "svm":
        fms = model.outputs(x, maps=True)["backbone0"]
        hp = lambda feats: torch.softmax(model.classifier(model.encoder(feats)), 1)  # noqa: E731
        return torch.stack([_reciprocam(fm, hp, k, _quadrant_pool) for fm, k in zip(fms, ks)])
    return None


def cam_peaks(model, spec, imgs, recs, focal):
    """Pointing game: for each positive of a focal label, is the peak cell of that label's CAM
    (cam_maps) inside its lesion box grown by one feature cell? Returns {label: [hits, cases]},
    or None for a model without a CAM here."""
    if spec["family"] not in ("densenet", "resnet", "swin", "quadrant_ae"):
        return None
    labels = list(spec["labels"])
    cases = [(i, b) for i, r in enumerate(recs) for b in r["boxes"] if b["label"] in focal]
    res = {}
    with torch.no_grad():
        for s in range(0, len(cases), 50):
            part = cases[s:s + 50]
            x = to_input(imgs[[i for i, _ in part]], spec["input"])
            cams = cam_maps(model, spec, x, [labels.index(b["label"]) for _, b in part])
            for cam, (i, b) in zip(cams, part):
                hit = phantoms.peak_in_box(cam.numpy(), b["box"], PHANTOM_SIZE, PHANTOM_SIZE, 1.0)
                hr = res.setdefault(b["label"], [0, 0])
                hr[0] += int(hit)
                hr[1] += 1
    return res


def evaluate(model, spec):
    """Held-out metrics on a phantom set drawn with a different seed: per-label AUC (labels that
    occur), their mean, accuracy for single-label tasks, and the CAM pointing game."""
    imgs, recs = phantom_set(spec["task"], spec["n_heldout"], spec["heldout_seed"])
    labels = list(spec["labels"])
    p = predict(model, spec, imgs)
    m = {"heldout": {"generator": "models/export/phantoms.py", "task": spec["task"], "n": spec["n_heldout"],
                     "seed": spec["heldout_seed"], "size": PHANTOM_SIZE}}
    if spec["task"] == "covid":
        y = np.array([labels.index(r["class"]) for r in recs])
        m["accuracy"] = round(float((p.argmax(1) == y).mean()), 4)
        aucs = {l: roc_auc(y == k, p[:, k]) for k, l in enumerate(labels)}
        focal = ["Viral Pneumonia"]
    else:
        yv = np.stack([phantoms.label_vector(r, labels) for r in recs])
        aucs = {l: roc_auc(yv[:, k], p[:, k]) for k, l in enumerate(labels)}
        hits = ((p > 0.5) == (yv > 0.5))
        drawn = [k for k, l in enumerate(labels) if l in phantoms.FINDINGS]
        m["accuracy_at_0.5_drawn_labels"] = round(float(hits[:, drawn].mean()), 4)
        focal = phantoms.FOCAL
    m["auc"] = {l: round(a, 4) for l, a in aucs.items() if a is not None}
    m["mean_auc"] = round(float(np.mean(list(m["auc"].values()))), 4)
    pg = cam_peaks(model, spec, imgs, recs, focal)
    if pg:
        m["pointing_game"] = {l: {"hits": h, "cases": n, "rate": round(h / n, 4)} for l, (h, n) in pg.items()}
        th, tn = sum(h for h, _ in pg.values()), sum(n for _, n in pg.values())
        m["pointing_game_all"] = round(th / max(tn, 1), 4)
    return m


# ---------------------------------------------------------------- export

def optimizer_text(spec):
    """The optimiser and schedule as the provenance states them."""
    if spec.get("schedule") == "warmup_cosine":
        text = "AdamW (weight decay %g) + linear warm-up over %d%% of the steps, then cosine to 0" % (
            spec["wd"], round(100 * spec["warmup"]))
    else:
        text = "AdamW + one-cycle"
    if spec.get("decay_matrices_only"):
        text += "; no weight decay on norms and biases"
    if spec.get("clip"):
        text += "; gradient norm clipped at %g" % spec["clip"]
    return text


def provenance(name, spec, seed, seconds, steps, metrics):
    """What the manifest says about how these weights were made."""
    extra = {}
    if spec.get("head_prior"):
        extra["head_init"] = ("each label's output bias set to its training log-odds (%g for labels never drawn)"
                              % ABSENT_LOGIT)
    if spec.get("head_norm"):
        extra["head_norm"] = ("while training, the pooled features were standardised (BatchNorm without affine) before "
                              "the head; its running statistics are folded into each head's first Linear, so the "
                              "exported network is the plain architecture")
    if spec.get("aux_linear"):
        extra["aux_head"] = ("while training, an auxiliary linear head on the pooled features (per-label BCE on the "
                             "drawn labels, weight %g) beside the SwinCheX head; not exported" % spec["aux_linear"])
    if spec.get("detach_absent"):
        extra["absent_labels"] = ("labels never drawn train their own head on detached features (the backbone "
                                  "learns from the drawn labels only)")
    return {
        "demo_note": "DEMO weights trained from scratch on synthetic phantoms; not for clinical use",
        "script": "models/export/train_demo.py",
        "command": "/usr/bin/python3 models/export/train_demo.py --model %s --seed %d%s" % (
            name, seed, " --threads %d" % spec["threads"] if spec.get("threads", 2) != 2 else ""),
        "seed": seed,
        "data": {"generator": "models/export/phantoms.py", "task": spec["task"], "n": spec["n_train"],
                 "seed": spec["train_seed"], "size": PHANTOM_SIZE, "p_finding": 0.22, "jitter": True},
        "input_size": spec["input"],
        "input_note": "trained and served at %dx%d (not the upstream 224) to fit CPU training in minutes"
                      % (spec["input"], spec["input"]),
        "config": dict(spec["config"]),
        "epochs": spec["epochs"], "steps": steps, "batch": spec["batch"], "lr": spec["lr"],
        "optimizer": optimizer_text(spec), **extra,
        "augmentation": "translation +-6%, brightness/contrast" if spec.get("augment", True) else "none",
        "train_seconds": round(seconds, 1), "threads": spec.get("threads", 2), "torch": torch.__version__,
        "metrics": metrics,
    }


def export(name, spec, model, prov, out):
    """Write the folder with the family's own exporter (F16 weights, "demo": true)."""
    fam = family_module(spec["family"])
    kw = dict(dtype="f16", demo=True, provenance=prov, version="1")
    params = inspect.signature(fam.export_module).parameters
    if "preprocess" in params:
        kw["preprocess"] = preprocess_block(spec["input"])
        return fam.export_module(model, spec["arch"], spec["preset"], list(spec["labels"]), out, **kw)
    # An exporter without a preprocess argument (swin at the time of writing) takes its
    # preprocessing from a module-level constant: point it at the demo's smaller input for this call.
    saved = {k: getattr(fam, k) for k in ("SWINCHEX_PREPROCESS", "LINEAR_PREPROCESS") if hasattr(fam, k)}
    try:
        for k in saved:
            setattr(fam, k, preprocess_block(spec["input"]))
        return fam.export_module(model, spec["arch"], spec["preset"], list(spec["labels"]), out, **kw)
    finally:
        for k, v in saved.items():
            setattr(fam, k, v)


def run(name, args):
    """Train (or reload), evaluate and export one demo model."""
    spec = dict(MODELS[name])
    for k in ("epochs", "n_train"):
        if getattr(args, k) is not None:
            spec[k] = getattr(args, k)
    spec["threads"] = args.threads
    os.makedirs(STATE_CACHE, exist_ok=True)
    state = os.path.join(STATE_CACHE, name + ".pt")
    if args.export_only:
        if not os.path.exists(state):
            raise SystemExit("train_demo: %s: no trained state at %s; train it first" % (name, state))
        saved = torch.load(state, map_location="cpu")
        model = build(spec)
        model.load_state_dict(saved["state_dict"])
        model.eval()
        seconds, steps, seed = saved["seconds"], saved["steps"], saved["seed"]
        spec.update(saved.get("spec", {}))
    else:
        seed = args.seed
        model, seconds, steps = train(name, spec, seed)
        torch.save({"state_dict": model.state_dict(), "seconds": seconds, "steps": steps, "seed": seed,
                    "spec": {k: spec[k] for k in ("epochs", "n_train", "threads")}}, state)
        log("%s: trained in %.0f s, state saved to %s" % (name, seconds, state))
    metrics = evaluate(model, spec)
    log("%s: held-out %s" % (name, json.dumps(metrics)))
    out = os.path.join(args.out, name)
    size = export(name, spec, model, provenance(name, spec, seed, seconds, steps, metrics), out)
    log("%s: exported %s (%.1f MB of weights)" % (name, out, size / 1e6))
    return metrics


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=sorted(MODELS) + ["all"], help="which demo model")
    ap.add_argument("--seed", type=int, default=0, help="training seed (initialisation, order, augmentation)")
    ap.add_argument("--out", default=REPO, help="model repository to write into (default models/repo)")
    ap.add_argument("--threads", type=int, default=2,
                    help="torch CPU threads (on a machine busier than its cores, 1: OpenMP's waiting threads "
                         "can make 2 threads ten times slower than 1)")
    ap.add_argument("--epochs", type=int, help="override the model's epochs")
    ap.add_argument("--n-train", dest="n_train", type=int, help="override the number of training phantoms")
    ap.add_argument("--export-only", action="store_true",
                    help="re-evaluate and re-export the state saved in /tmp/salient-demo without training")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = sorted(MODELS) if args.model == "all" else [args.model]
    for name in names:
        run(name, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
