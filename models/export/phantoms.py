#!/usr/bin/python3
"""phantoms.py: synthetic chest radiograph phantoms with findings of known kind and position.

    /usr/bin/python3 models/export/phantoms.py --n 200 --seed 7 --out /tmp/phantoms
    /usr/bin/python3 models/export/phantoms.py --task covid --n 60 --seed 3 --out /tmp/covid

Why: salient's demo checkpoints are trained from scratch on these (no patient data, no
pretrained weights), and the attention-map tests need images whose lesion boxes are known
exactly (the pointing game: does the class activation map peak inside the lesion?).

Each image is a frontal (PA) view, grayscale uint8: body and soft tissue, two lung fields with
vessel-like markings, posterior ribs, clavicles, spine, mediastinum, heart silhouette,
hemidiaphragms over a bright abdomen, then exposure / contrast / gamma variation, film noise
and a small rotation / scale / shift jitter. The patient's right is on the image's left.

Findings (task "cxr14", ChestX-ray14 names; each drawn independently, ground truth = box of
what was drawn, in output pixels [x, y, w, h]):
  Nodule         small round opacity (radius ~2-3.5% of the width) inside a lung field
  Mass           larger lobulated opacity (radius ~6-9%)
  Consolidation  dense patchy opacity filling part of one lobe (upper / lower zone)
  Effusion       basal haze with a meniscus that rises laterally, blunting one costophrenic angle
  Cardiomegaly   heart wider than half the thorax (box = the heart)
  Pneumothorax   dark rim without lung markings at one apex / lateral wall, with a pleural line
Labels a phantom never draws (Atelectasis, Infiltration, ...) are always negative.

Task "covid" (classes COVID-19 / Normal / Viral Pneumonia, one per image):
  COVID-19         bilateral, peripheral, lower-zone ground-glass opacities (faint, patchy)
  Viral Pneumonia  one focal lobar consolidation
  Normal           no finding
Deterministic: image i of seed s is the same whatever n is (its generator is seeded [s, i]).

Importable: generate(n, seed, ...) -> (uint8 array [n, H, W], list of ground-truth records);
peak_in_box(cam, box, width, height) scores one pointing-game case.
Needs numpy and PIL only.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
from PIL import Image, ImageDraw

FINDINGS = ["Nodule", "Mass", "Consolidation", "Effusion", "Cardiomegaly", "Pneumothorax"]
FOCAL = ["Nodule", "Mass", "Consolidation"]          # small, well-localised: the pointing game's cases
COVID_CLASSES = ["COVID-19", "Normal", "Viral Pneumonia"]
TASKS = ("cxr14", "covid")


# ---------------------------------------------------------------- small image helpers

def _gauss_kernel(sigma):
    """1-D Gaussian taps (odd length), for the separable blur below."""
    r = max(1, int(math.ceil(3 * sigma)))
    x = np.arange(-r, r + 1, dtype=np.float32)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def blur(a, sigma):
    """Separable Gaussian blur with edge replication; numpy only (PIL cannot blur float images,
    and the tests should not need scipy)."""
    if sigma <= 0:
        return a
    k = _gauss_kernel(sigma)
    r = len(k) // 2
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (r, r)
        p = np.pad(a, pad, mode="edge")
        out = np.zeros_like(a)
        n = a.shape[axis]
        for i, w in enumerate(k):
            sl = [slice(None), slice(None)]
            sl[axis] = slice(i, i + n)
            out += w * p[tuple(sl)]
        a = out
    return a


def smooth_noise(rng, size, cells):
    """Zero-mean, unit-std noise with features about size/cells pixels across (a random grid
    upsampled bicubically): texture for lung markings, patchy opacities and exposure drift."""
    g = rng.standard_normal((cells + 3, cells + 3)).astype(np.float32)
    big = int(round(size * (cells + 3) / cells))
    im = Image.fromarray(g, mode="F").resize((big, big), Image.BICUBIC)
    off = (big - size) // 2
    a = np.asarray(im, dtype=np.float32)[off:off + size, off:off + size]
    return (a - a.mean()) / (a.std() + 1e-6)


def smoothstep(edge0, edge1, x):
    """0 below edge0, 1 above edge1, smooth between: soft-edged shapes without aliasing."""
    t = np.minimum(np.maximum((x - edge0) * (1.0 / (edge1 - edge0)), 0.0), 1.0)
    return t * t * (3 - 2 * t)


def mask_box(mask, thresh=0.5):
    """Bounding box [x, y, w, h] (pixels) of mask > thresh, or None if empty."""
    ys, xs = np.nonzero(mask > thresh)
    if len(xs) == 0:
        return None
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]


# ---------------------------------------------------------------- geometry

class Frame:
    """Canonical chest coordinates (u right, v down, both in [-1, 1] across the image before
    jitter) for every output pixel: anatomy and findings are drawn as functions of (u, v), so
    the jitter moves them together and lesion boxes are measured on the final pixels."""

    def __init__(self, rng, size, jitter):
        self.size = size
        ang = math.radians(rng.uniform(-6, 6)) if jitter else 0.0
        scale = rng.uniform(0.92, 1.08) if jitter else 1.0
        sx, sy = (rng.uniform(-0.05, 0.05), rng.uniform(-0.05, 0.05)) if jitter else (0.0, 0.0)
        c = (size - 1) / 2.0
        y, x = np.mgrid[0:size, 0:size].astype(np.float32)
        x = (x - c) / c - sx
        y = (y - c) / c - sy
        ca, sa = math.cos(ang), math.sin(ang)
        self.u = (ca * x + sa * y) / scale
        self.v = (-sa * x + ca * y) / scale
        self.px_per_unit = c * scale  # pixels per canonical unit, for sizes in pixels


def ellipse(f, cx, cy, rx, ry, soft=0.02):
    """Soft ellipse mask (1 inside)."""
    d = np.sqrt(((f.u - cx) / rx) ** 2 + ((f.v - cy) / ry) ** 2)
    return 1.0 - smoothstep(1.0 - soft / min(rx, ry), 1.0 + soft / min(rx, ry), d)


# ---------------------------------------------------------------- anatomy

def anatomy(rng, f, cardiomegaly):
    """Draw the normal chest; return (image float, dict of masks and parameters the findings
    need: each lung's mask and extent, heart mask, markings layer)."""
    u, v = f.u, f.v
    size = f.size
    # body: a rounded trapezoid, shoulders at the top; air outside is dark
    half_w = 0.86 + 0.06 * np.clip(v, -1, 1) + rng.uniform(-0.03, 0.03)
    body = 1.0 - smoothstep(half_w - 0.03, half_w + 0.03, np.abs(u))
    body *= smoothstep(-1.05, -0.92, v + 0.12 * u ** 2)
    img = 0.04 + 0.42 * body

    # lungs: ellipses cut below by the hemidiaphragm domes (right dome higher, as the liver pushes it)
    lungs = {}
    # heart: cardiothoracic ratio ~0.45 normal, ~0.65-0.75 enlarged
    heart_rx = rng.uniform(0.46, 0.54) if cardiomegaly else rng.uniform(0.29, 0.34)
    heart_ry = rng.uniform(0.27, 0.31) if cardiomegaly else rng.uniform(0.21, 0.25)
    heart_cx = 0.09 + 0.4 * (heart_rx - 0.31) + rng.uniform(-0.02, 0.02)
    heart_cy = rng.uniform(0.38, 0.43)
    for side, sgn in (("right", -1), ("left", 1)):
        cx = sgn * rng.uniform(0.37, 0.42)
        rx = rng.uniform(0.28, 0.33)
        cy = rng.uniform(-0.05, 0.02)
        ry = rng.uniform(0.68, 0.76)
        dome = (0.50 if side == "right" else 0.56) + rng.uniform(-0.04, 0.04)
        dome_v = dome + 0.9 * ((u - cx) / rx) ** 2 * 0.25
        m = ellipse(f, cx, cy, rx, ry, soft=0.03) * (1.0 - smoothstep(dome_v - 0.02, dome_v + 0.02, v))
        m *= smoothstep(0.06, 0.11, sgn * u)  # medial edge: mediastinum
        lungs[side] = {"mask": m, "cx": cx, "cy": cy, "rx": rx, "ry": ry, "dome": dome, "sgn": sgn}
    heart = ellipse(f, heart_cx, heart_cy, heart_rx, heart_ry, soft=0.03)
    lung = np.clip(lungs["right"]["mask"] + lungs["left"]["mask"], 0, 1) * (1 - heart)
    for L in lungs.values():
        L["mask"] = L["mask"] * (1 - heart)

    # markings: ridged noise (vessel-like lines), stronger near the hila
    ridges = 0.0
    for cells, w in ((10, 0.6), (22, 0.5)):
        r = np.maximum(1.0 - np.abs(smooth_noise(rng, size, cells)) * 1.2, 0.0)
        ridges = ridges + w * r ** 6
    hilum = np.exp(-((np.abs(u) - 0.22) ** 2 / 0.08 + (v - 0.05) ** 2 / 0.25))
    markings = 0.16 * ridges * (0.5 + hilum)
    img = img * (1 - lung) + lung * (0.12 + markings)

    # abdomen under the domes, brighter; mediastinum and spine
    below = 0.0
    for L in lungs.values():
        dome_v = L["dome"] + 0.9 * ((u - L["cx"]) / L["rx"]) ** 2 * 0.25
        side_region = smoothstep(-0.02, 0.02, L["sgn"] * u)
        below = np.maximum(below, side_region * smoothstep(dome_v - 0.02, dome_v + 0.04, v))
    img = img + 0.12 * below * body
    medi = (1 - smoothstep(0.10, 0.14, np.abs(u - 0.01))) * smoothstep(-0.9, -0.8, v)
    img = img + 0.14 * medi * (1 - lung)
    spine = 1 - smoothstep(0.055, 0.075, np.abs(u))
    period = rng.uniform(0.13, 0.16)
    vert = 0.5 + 0.5 * np.cos(2 * np.pi * (v - rng.uniform(0, 1)) / period)
    img = img + spine * (0.10 + 0.05 * vert) * body

    # heart silhouette (over the mediastinum, masking the medial lung)
    img = img * (1 - heart) + heart * rng.uniform(0.5, 0.56)

    # ribs: posterior ribs as arcs sloping down laterally, 9 a side
    ribs = np.zeros_like(u)
    au = np.abs(u)
    gap = rng.uniform(0.135, 0.15)
    for k in range(10):
        v0 = -0.86 + k * gap + rng.uniform(-0.01, 0.01)
        center = v0 + 1.0 * (au - 0.3) ** 2 - 0.05
        d = np.abs(v - center)
        th = 0.028 + 0.004 * k / 9
        band = 1 - smoothstep(th * 0.7, th, d)
        cortex = np.exp(-((d - th * 0.8) / (th * 0.25)) ** 2)
        ribs = ribs + (band * 0.6 + 0.4 * cortex) * smoothstep(0.08, 0.14, au) * (1 - smoothstep(0.78, 0.86, au))
    img = img + 0.09 * np.clip(ribs, 0, 1.2) * body

    # clavicles
    for sgn in (-1, 1):
        t = np.clip((sgn * u - 0.08) / 0.5, 0, 1)
        line_v = -0.76 + 0.08 * t - 0.10 * t * (1 - t) * 4 * 0.3
        d = np.abs(v - line_v)
        clav = (1 - smoothstep(0.02, 0.035, d)) * smoothstep(0.05, 0.1, sgn * u) * (1 - smoothstep(0.55, 0.62, sgn * u))
        img = img + 0.14 * clav
    geo = {"lungs": lungs, "lung": lung, "heart": heart, "markings": markings,
           "heart_params": (heart_cx, heart_cy, heart_rx, heart_ry)}
    return img, geo


# ---------------------------------------------------------------- findings

def _point_in_lung(rng, geo, side=None, zone=None, margin=0.12):
    """A random (u, v) well inside one lung field (canonical coordinates), optionally on a
    given side and zone ('upper' / 'lower'), so that a finding is visible and not behind the
    heart; returns (side, u, v)."""
    for _ in range(200):
        s = side or ("right" if rng.random() < 0.5 else "left")
        L = geo["lungs"][s]
        a = rng.uniform(0, 2 * np.pi)
        r = math.sqrt(rng.uniform(0, 1)) * (1 - margin / min(L["rx"], L["ry"]) * 1.0)
        cu = L["cx"] + r * L["rx"] * math.cos(a)
        cv = L["cy"] + r * L["ry"] * math.sin(a)
        if zone == "upper" and cv > -0.05:
            continue
        if zone == "lower" and cv < 0.05:
            continue
        hx, hy, hrx, hry = geo["heart_params"]
        if ((cu - hx) / (hrx + margin)) ** 2 + ((cv - hy) / (hry + margin)) ** 2 < 1:
            continue
        dome_v = L["dome"] + 0.9 * ((cu - L["cx"]) / L["rx"]) ** 2 * 0.25
        if cv > dome_v - margin or abs(cu) < 0.1 + margin * 0.5:
            continue
        return s, cu, cv
    return s, L["cx"], L["cy"]


def blob(rng, f, cu, cv, radius, lobulated):
    """Round (or lobulated) soft opacity mask centred at (cu, cv), radius in canonical units."""
    ang = np.arctan2(f.v - cv, f.u - cu)
    r = radius
    if lobulated:
        r = radius * (1 + 0.12 * np.sin(3 * ang + rng.uniform(0, 6.3)) + 0.08 * np.sin(5 * ang + rng.uniform(0, 6.3)))
    d = np.sqrt((f.u - cu) ** 2 + (f.v - cv) ** 2)
    return 1 - smoothstep(r * 0.75, r * 1.05, d)


def draw_nodule(rng, f, img, geo, mass=False):
    """Nodule (small) or mass (large, lobulated): a dense round opacity inside a lung."""
    radius = rng.uniform(0.11, 0.17) if mass else rng.uniform(0.045, 0.07)
    _, cu, cv = _point_in_lung(rng, geo, margin=radius + 0.04)
    m = blob(rng, f, cu, cv, radius, lobulated=mass)
    dens = rng.uniform(0.28, 0.38) if mass else rng.uniform(0.30, 0.42)
    img = img + dens * m * (0.85 + 0.15 * smooth_noise(rng, f.size, 20))
    return img, m


def draw_consolidation(rng, f, img, geo, side=None, zone=None, dens=None):
    """Lobar consolidation: dense patchy opacity filling a zone of one lung (clipped to it),
    with air-bronchogram-like dark streaks inside."""
    side = side or ("right" if rng.random() < 0.5 else "left")
    zone = zone or ("upper" if rng.random() < 0.4 else "lower")
    _, cu, cv = _point_in_lung(rng, geo, side=side, zone=zone, margin=0.12)
    rx, ry = rng.uniform(0.14, 0.2), rng.uniform(0.14, 0.22)
    shape = ellipse(f, cu, cv, rx, ry, soft=0.06)
    patch = smoothstep(-0.6, 0.4, smooth_noise(rng, f.size, 9) + 1.2 * (shape - 0.5))
    m = np.clip(shape * patch, 0, 1) * geo["lungs"][side]["mask"]
    m = blur(m, f.size / 200.0)
    dens = dens if dens is not None else rng.uniform(0.26, 0.36)
    bronch = np.clip(smooth_noise(rng, f.size, 24), 0, None) * 0.25
    img = img + dens * m * (1 - bronch)
    return img, m


def draw_effusion(rng, f, img, geo):
    """Pleural effusion: graded haze over one lung base under a meniscus that rises toward the
    lateral chest wall (blunting the costophrenic angle)."""
    side = "right" if rng.random() < 0.5 else "left"
    L = geo["lungs"][side]
    level = L["dome"] - rng.uniform(0.12, 0.28)
    lateral = np.clip(L["sgn"] * (f.u - L["cx"]) / L["rx"], -1, 1.2)
    meniscus = level - 0.16 * np.clip(lateral + 0.3, 0, None) ** 2
    fluid = smoothstep(meniscus - 0.03, meniscus + 0.08, f.v)
    region = ellipse(f, L["cx"], L["cy"] + 0.03, L["rx"] * 1.08, L["ry"] * 1.06, soft=0.02)
    region *= smoothstep(0.05, 0.1, L["sgn"] * f.u)
    m = fluid * region * (1 - geo["heart"])
    grade = np.clip((f.v - meniscus) / 0.25, 0.3, 1.0)
    img = img * (1 - 0.5 * m) + m * grade * 0.36 + m * 0.06
    return img, m


def draw_pneumothorax(rng, f, img, geo):
    """Pneumothorax: the lung edge retracts from the apex / lateral wall; the rim between is
    dark and has no markings, the visceral pleura a thin bright line."""
    side = "right" if rng.random() < 0.5 else "left"
    L = geo["lungs"][side]
    k = rng.uniform(0.72, 0.84)
    cx = L["cx"] - L["sgn"] * L["rx"] * (1 - k) * 0.8
    cy = L["cy"] + L["ry"] * (1 - k) * 0.9
    inner = ellipse(f, cx, cy, L["rx"] * k, L["ry"] * k, soft=0.01)
    rim = L["mask"] * (1 - inner) * smoothstep(0.25, 0.45, -(f.v - L["dome"] + 0.3))
    img = img - rim * (geo["markings"] + 0.07)
    d = np.sqrt(((f.u - cx) / (L["rx"] * k)) ** 2 + ((f.v - cy) / (L["ry"] * k)) ** 2)
    line = np.exp(-((d - 1.0) / 0.012) ** 2) * smoothstep(0.0, 0.1, blur(rim, 2.0))
    img = img + 0.10 * line
    return img, rim


def draw_ground_glass(rng, f, img, geo, side):
    """COVID-19 pattern on one side: faint patchy ground-glass in the peripheral lower zone."""
    L = geo["lungs"][side]
    cu = L["cx"] + L["sgn"] * L["rx"] * rng.uniform(0.3, 0.55)
    cv = L["cy"] + L["ry"] * rng.uniform(0.25, 0.5)
    shape = ellipse(f, cu, cv, rng.uniform(0.14, 0.2), rng.uniform(0.2, 0.3), soft=0.08)
    patch = smoothstep(-0.5, 0.8, smooth_noise(rng, f.size, 14) + (shape - 0.5))
    m = np.clip(shape * patch, 0, 1) * L["mask"]
    m = blur(m, f.size / 120.0)
    img = img + rng.uniform(0.12, 0.18) * m
    return img, m


# ---------------------------------------------------------------- exposure and noise

def expose(rng, img, size):
    """Acquisition variation: exposure drift, contrast, gamma, blur and quantum noise; returns uint8."""
    img = blur(img, size / 256.0 * rng.uniform(0.6, 1.2))
    img = img + 0.04 * smooth_noise(rng, size, 3)
    lo, hi = np.percentile(img, 0.5), np.percentile(img, 99.5)
    img = (img - lo) / (hi - lo + 1e-6)
    img = np.clip(img, 0, 1) ** rng.uniform(0.8, 1.25)
    img = img * rng.uniform(0.8, 1.0) + rng.uniform(0.0, 0.1)
    img = img + rng.normal(0, rng.uniform(0.01, 0.025), img.shape)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


# ---------------------------------------------------------------- one phantom

def _pick_findings(rng, task, findings, p_finding):
    """The findings (cxr14) or class (covid) of one image."""
    if task == "covid":
        cls = findings[0] if findings else COVID_CLASSES[int(rng.integers(0, 3))]
        if cls not in COVID_CLASSES:
            raise ValueError("unknown covid class %r" % cls)
        return cls, []
    if findings is not None:
        bad = [x for x in findings if x not in FINDINGS]
        if bad:
            raise ValueError("unknown findings %s (known: %s)" % (bad, ", ".join(FINDINGS)))
        return None, list(findings)
    return None, [x for x in FINDINGS if rng.random() < p_finding]


def draw_phantom(rng, size=256, task="cxr14", findings=None, p_finding=0.22, jitter=True):
    """One phantom: (uint8 [size, size], record with 'labels', 'boxes' and for task covid
    'class'). findings forces the findings (cxr14: any subset of FINDINGS; covid: [class])."""
    cls, todo = _pick_findings(rng, task, findings, p_finding)
    f = Frame(rng, size, jitter)
    img, geo = anatomy(rng, f, cardiomegaly="Cardiomegaly" in todo)
    boxes = []

    def add(label, m, thresh=0.5):
        b = mask_box(m, thresh)
        if b is not None:
            boxes.append({"label": label, "box": b})

    if task == "covid":
        if cls == "COVID-19":
            for side in ("right", "left"):
                img, m = draw_ground_glass(rng, f, img, geo, side)
                add("COVID-19", m, 0.3)
        elif cls == "Viral Pneumonia":
            img, m = draw_consolidation(rng, f, img, geo)
            add("Viral Pneumonia", m, 0.3)
        labels = [cls]
    else:
        for name in todo:
            if name in ("Nodule", "Mass"):
                img, m = draw_nodule(rng, f, img, geo, mass=(name == "Mass"))
                add(name, m)
            elif name == "Consolidation":
                img, m = draw_consolidation(rng, f, img, geo)
                add(name, m, 0.3)
            elif name == "Effusion":
                img, m = draw_effusion(rng, f, img, geo)
                add(name, m, 0.3)
            elif name == "Pneumothorax":
                img, m = draw_pneumothorax(rng, f, img, geo)
                add(name, m, 0.3)
            elif name == "Cardiomegaly":
                add(name, geo["heart"])
        labels = [b["label"] for b in boxes]  # a finding that fell outside the image is not a label
    out = expose(rng, img, size)
    rec = {"labels": labels, "boxes": boxes}
    if task == "covid":
        rec["class"] = cls
    return out, rec


def generate(n, seed=0, size=256, task="cxr14", findings=None, p_finding=0.22, jitter=True, start=0,
             progress=False):
    """n phantoms as (uint8 array [n, size, size], list of records). Image i comes from
    np.random.default_rng([seed, start + i]), so a set can be extended or split reproducibly.
    Each record: {"index", "labels", "boxes": [{"label", "box": [x, y, w, h]}], "class"?}."""
    if task not in TASKS:
        raise ValueError("task must be one of %s" % (TASKS,))
    imgs = np.zeros((n, size, size), np.uint8)
    recs = []
    for i in range(n):
        rng = np.random.default_rng([seed, start + i])
        imgs[i], rec = draw_phantom(rng, size, task, findings, p_finding, jitter)
        rec = dict(index=start + i, **rec)
        recs.append(rec)
        if progress and (i + 1) % 200 == 0:
            print("phantoms: %d/%d" % (i + 1, n), file=sys.stderr, flush=True)
    return imgs, recs


def label_vector(rec, labels):
    """Multi-hot float32 vector of rec's labels in the order of `labels` (labels a phantom
    never draws stay 0, i.e. negatives)."""
    return np.array([1.0 if l in rec["labels"] else 0.0 for l in labels], np.float32)


def peak_in_box(cam, box, width, height, margin_cells=1.0):
    """Pointing game for one case: does the peak of `cam` (a map [h, w] over the whole image,
    any grid) fall inside box [x, y, w, h] (pixels of a width x height image) grown by
    margin_cells cells of that grid? The peak cell's centre is the point tested."""
    cam = np.asarray(cam, dtype=np.float64)
    gh, gw = cam.shape
    j = int(np.argmax(cam))
    cw, ch = width / gw, height / gh
    px, py = (j % gw + 0.5) * cw, (j // gw + 0.5) * ch
    x, y, w, h = box
    mx, my = margin_cells * cw, margin_cells * ch
    return bool(x - mx <= px <= x + w + mx and y - my <= py <= y + h + my)


# ---------------------------------------------------------------- files

COLORS = {"Nodule": (255, 60, 60), "Mass": (255, 160, 0), "Consolidation": (60, 220, 60),
          "Effusion": (60, 160, 255), "Cardiomegaly": (230, 60, 230), "Pneumothorax": (255, 255, 0),
          "COVID-19": (255, 60, 60), "Viral Pneumonia": (60, 220, 60)}


def contact_sheet(imgs, recs, cols=8, max_images=48, thumb=160):
    """An RGB PIL image of the first phantoms with their boxes and labels drawn, for a person to
    check that the findings look right and the boxes sit on them."""
    k = min(len(imgs), max_images)
    rows = (k + cols - 1) // cols
    size = imgs.shape[1]
    sheet = Image.new("RGB", (cols * thumb, rows * (thumb + 14)), (0, 0, 0))
    s = thumb / size
    for i in range(k):
        im = Image.fromarray(imgs[i]).convert("RGB").resize((thumb, thumb), Image.BILINEAR)
        d = ImageDraw.Draw(im)
        for b in recs[i]["boxes"]:
            x, y, w, h = b["box"]
            color = COLORS.get(b["label"], (255, 255, 255))
            d.rectangle([x * s, y * s, (x + w) * s - 1, (y + h) * s - 1], outline=color)
        ox, oy = (i % cols) * thumb, (i // cols) * (thumb + 14)
        sheet.paste(im, (ox, oy))
        text = "%d: %s" % (recs[i]["index"], ",".join(recs[i]["labels"]) or "-")
        ImageDraw.Draw(sheet).text((ox + 2, oy + thumb + 1), text[:30], fill=(220, 220, 220))
    return sheet


def write_set(out, imgs, recs, args):
    """PNG per image, ground_truth.json (one record per image, plus how the set was made) and
    contact_sheet.png."""
    os.makedirs(out, exist_ok=True)
    for img, rec in zip(imgs, recs):
        rec["file"] = "phantom_%05d.png" % rec["index"]
        Image.fromarray(img).save(os.path.join(out, rec["file"]))
    meta = {"generator": "models/export/phantoms.py", "seed": args.seed, "n": args.n, "size": args.size,
            "task": args.task, "p_finding": args.p_finding, "jitter": not args.no_jitter,
            "box_format": "[x, y, w, h] in pixels", "records": recs}
    with open(os.path.join(out, "ground_truth.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    contact_sheet(imgs, recs).save(os.path.join(out, "contact_sheet.png"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="number of phantoms")
    ap.add_argument("--seed", type=int, default=7, help="seed (image i uses [seed, start + i])")
    ap.add_argument("--start", type=int, default=0, help="index of the first phantom")
    ap.add_argument("--size", type=int, default=256, help="width = height in pixels")
    ap.add_argument("--task", default="cxr14", choices=TASKS, help="cxr14 findings or covid classes")
    ap.add_argument("--findings", help="force these findings on every image, e.g. 'Nodule' or 'Mass,Effusion' "
                                       "(covid: one class)")
    ap.add_argument("--p-finding", type=float, default=0.22, help="cxr14: probability of each finding")
    ap.add_argument("--no-jitter", action="store_true", help="no rotation / scale / shift jitter")
    ap.add_argument("--out", required=True, help="output directory")
    args = ap.parse_args(argv)
    findings = [x.strip() for x in args.findings.split(",")] if args.findings else None
    try:
        imgs, recs = generate(args.n, args.seed, args.size, args.task, findings, args.p_finding,
                              not args.no_jitter, args.start, progress=True)
    except ValueError as e:
        print("phantoms.py: %s" % e, file=sys.stderr)
        return 2
    write_set(args.out, imgs, recs, args)
    print("phantoms.py: wrote %d phantoms, ground_truth.json and contact_sheet.png to %s" % (args.n, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
