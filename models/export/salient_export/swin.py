"""swin: Swin Transformer v1 classifiers (torchvision swin_t/s/b) with a linear or SwinCheX head.

Three entry points:
  export(arch, preset, weights_path, labels, args)  export.py's: a checkpoint file -> model folder
  build_model(arch, preset, labels, **config)        the PyTorch reference (eval mode), for tests and demo training
  export_module(model, arch, preset, labels, out_dir, ...)  a module from build_model -> model folder

Presets
  swinchex        SwinCheX (github rohban-lab/SwinCheX): 14 independent per-label MLPs
                  features -> 384 -> 48 -> 48 -> 2 (ReLU between), P(label) = softmax(pair)[1];
                  labels default to ChestX-ray14's CSV order; preprocessing as their test transform
                  (resize 256 bicubic, centre crop 224, ImageNet mean/std).
  linear          torchvision's head Linear(features, n) + softmax (single-label classes).
  linear_sigmoid  the same head, sigmoid per label (multi-label).
Without --preset, export() takes "linear".

Weight names are torchvision's (features.*, norm.*, head.*). The SwinCheX head is stored as
head.<i>.{0,2,4,6}.{weight,bias} (an nn.Sequential per label: Linear, ReLU, Linear, ReLU, Linear,
ReLU, Linear). export() also accepts, and renames, the layouts of
  - Microsoft's Swin-Transformer code, which SwinCheX (and timm < 0.9) use:
      patch_embed.proj -> features.0.0        patch_embed.norm -> features.0.2
      layers.<s>.blocks.<b>.X -> features.<2s+1>.<b>.X  (mlp.fc1 -> mlp.0, mlp.fc2 -> mlp.3)
      layers.<s>.downsample.X -> features.<2s+2>.X      (merging after stage s)
      norm -> norm;  head -> head (linear presets)
      SwinCheX heads: heads.<i> -> head.<i>.0, heads2.<i> -> head.<i>.2, heads3.<i> -> head.<i>.4,
      heads4.<i> -> head.<i>.6   (their default num_mlp_heads=3; 0..2 hidden layers also load,
      the widths taken from the checkpoint)
  - timm >= 0.9, whose merging opens the next stage: layers.<s>.downsample.X (s >= 1) ->
      features.<2s>.X, and head.fc -> head.
Derived buffers (relative_position_index, attn_mask) are dropped: salient recomputes them.
Absolute position embeddings (ape=True) are not supported.
"""
import re
from collections import OrderedDict

import torch
from torch import nn
from torchvision.models.swin_transformer import SwinTransformer

from .common import (CXR14_CSV_LABELS, IMAGENET_MEAN, IMAGENET_STD, ExportError, load_checkpoint,
                     match_state_dict, write_model)

ARCHS = {
    "swin_t": dict(patch_size=4, embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7,
                   mlp_ratio=4.0),
    "swin_s": dict(patch_size=4, embed_dim=96, depths=[2, 2, 18, 2], num_heads=[3, 6, 12, 24], window_size=7,
                   mlp_ratio=4.0),
    "swin_b": dict(patch_size=4, embed_dim=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32], window_size=7,
                   mlp_ratio=4.0),
}

# preset -> (head type, output post-processing)
PRESETS = {"swinchex": ("swinchex", "softmax_pairs"), "linear": ("linear", "softmax"),
           "linear_sigmoid": ("linear", "sigmoid")}

SWINCHEX_HIDDEN = [384, 48, 48]

# SwinCheX's test transform (data/build.py with TEST.CROP: Resize(int(256/224*224)) bicubic on PIL,
# CenterCrop(224)); PIL's resize filters with antialiasing, as torchvision's antialias=True does.
SWINCHEX_PREPROCESS = {"channels": 3, "resize_shorter": 256, "interpolation": "bicubic", "antialias": True,
                       "center_crop": [224, 224], "mean": IMAGENET_MEAN, "std": IMAGENET_STD}
# torchvision's Swin_T_Weights.IMAGENET1K_V1 transform: resize 232 bicubic, crop 224.
LINEAR_PREPROCESS = {"channels": 3, "resize_shorter": 232, "interpolation": "bicubic", "antialias": True,
                     "center_crop": [224, 224], "mean": IMAGENET_MEAN, "std": IMAGENET_STD}


class _HeadList(nn.ModuleList):
    """SwinCheX's per-label MLPs as a ModuleList, so their names are head.<i>.<j> exactly."""

    def __init__(self, features, nlabels, hidden=SWINCHEX_HIDDEN):
        mods = []
        for _ in range(nlabels):
            layers, d = [], features
            for h in hidden:
                layers += [nn.Linear(d, h), nn.ReLU()]
                d = h
            layers.append(nn.Linear(d, 2))
            mods.append(nn.Sequential(*layers))
        super().__init__(mods)

    def forward(self, x):
        return torch.cat([h(x) for h in self], dim=1)


class SalientSwin(SwinTransformer):
    """torchvision's SwinTransformer (same state_dict names) with salient's heads and outputs.

    forward(x) -> logits [N, nout] (what salient calls logits; for SwinCheX the 14 pairs
    flattened label-major: label i is columns 2i, 2i+1, so a training loss is
    cross_entropy(logits.view(N, 14, 2).transpose(1, 2), targets) with targets [N, 14] in {0, 1});
    probs(logits) -> [N, nlabels] as salient computes them;
    taps(x) -> {"stage1".."stage4", "features"} NHWC maps as salient offers them;
    forward_taps(x) -> (logits, taps) in one pass."""

    def __init__(self, cfg, head, output, nlabels, hidden=SWINCHEX_HIDDEN):
        ws, ps = _pair(cfg["window_size"]), _pair(cfg["patch_size"])
        super().__init__(patch_size=ps, embed_dim=cfg["embed_dim"], depths=list(cfg["depths"]),
                         num_heads=list(cfg["num_heads"]), window_size=ws, mlp_ratio=cfg["mlp_ratio"],
                         stochastic_depth_prob=0.0, num_classes=nlabels)
        nfeat = cfg["embed_dim"] * 2 ** (len(cfg["depths"]) - 1)
        if head == "swinchex":
            self.head = _HeadList(nfeat, nlabels, hidden)
        self.salient_hidden = [int(h) for h in hidden]
        self.salient_config = dict(cfg)
        self.salient_head = head
        self.salient_output = output
        self.nlabels = nlabels
        self.num_features = nfeat

    def probs(self, logits):
        if self.salient_output == "softmax_pairs":
            return torch.softmax(logits.view(logits.shape[0], -1, 2), dim=2)[:, :, 1]
        if self.salient_output == "sigmoid":
            return torch.sigmoid(logits)
        return torch.softmax(logits, dim=1)

    def taps(self, x):
        return self.forward_taps(x)[1]

    def forward_taps(self, x):
        """(logits, taps) in one pass; taps as salient offers them (NHWC)."""
        out, stage = {}, 0
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i % 2 == 1:
                stage += 1
                out["stage%d" % stage] = x
        x = out["features"] = self.norm(x)
        return self.head(self.flatten(self.avgpool(self.permute(x)))), out


def _pair(v):
    return [int(v), int(v)] if isinstance(v, (int, float)) else [int(v[0]), int(v[1])]


def arch_config(arch, **config):
    """The arch's config with overrides (embed_dim, depths, num_heads, window_size, patch_size, mlp_ratio)."""
    if arch not in ARCHS:
        raise ExportError("unknown swin arch '%s' (known: %s)" % (arch, ", ".join(sorted(ARCHS))))
    cfg = dict(ARCHS[arch])
    for k, v in config.items():
        if k not in cfg:
            raise ExportError("unknown swin config key '%s' (known: %s)" % (k, ", ".join(sorted(cfg))))
        cfg[k] = v
    if len(cfg["depths"]) != len(cfg["num_heads"]):
        raise ExportError("swin config: %d depths but %d num_heads" % (len(cfg["depths"]), len(cfg["num_heads"])))
    for s, h in enumerate(cfg["num_heads"]):
        if (cfg["embed_dim"] * 2 ** s) % h:
            raise ExportError("swin config: stage %d width %d is not divisible by %d heads"
                              % (s + 1, cfg["embed_dim"] * 2 ** s, h))
    return cfg


def _preset(preset):
    preset = preset or "linear"
    if preset not in PRESETS:
        raise ExportError("unknown swin preset '%s' (known: %s)" % (preset, ", ".join(sorted(PRESETS))))
    return preset


def _labels(preset, labels, nout_hint=None):
    if labels:
        return list(labels)
    if preset == "swinchex":
        return list(CXR14_CSV_LABELS)
    if nout_hint:
        raise ExportError("--labels is required for preset '%s' (the checkpoint's head has %d outputs)"
                          % (preset, nout_hint))
    raise ExportError("--labels is required for preset '%s'" % preset)


def build_model(arch, preset, labels, head_hidden=SWINCHEX_HIDDEN, **config):
    """An eval-mode SalientSwin for arch (swin_t/s/b; config overrides its hyper-parameters:
    embed_dim, depths, num_heads, window_size, patch_size, mlp_ratio) with preset's head over
    len(labels) labels (labels None: the preset's default, SwinCheX only); head_hidden: the
    SwinCheX MLPs' hidden widths (SwinCheX's num_mlp_heads=3 default: [384, 48, 48]).
    Weights are torchvision's random init; ExportError on a bad arch/preset/config."""
    preset = _preset(preset)
    labels = _labels(preset, labels)
    cfg = arch_config(arch, **config)
    head, output = PRESETS[preset]
    return SalientSwin(cfg, head, output, len(labels), head_hidden).eval()


# Buffers derived from the window size; torchvision and Microsoft's code both store them.
_DERIVED = re.compile(r"(^|\.)(relative_position_index|attn_mask)$")


def _rename_microsoft(sd):
    """Microsoft / SwinCheX / timm layouts -> torchvision names (see the module docstring)."""
    if not any(k.startswith(("patch_embed.", "layers.")) for k in sd):
        return sd
    timm09 = "layers.0.downsample.reduction.weight" not in sd and any(
        re.match(r"layers\.[1-9]\d*\.downsample\.", k) for k in sd)
    out = OrderedDict()
    for k, v in sd.items():
        n = k
        m = re.match(r"patch_embed\.proj\.(.*)", k)
        if m:
            n = "features.0.0." + m.group(1)
        m = re.match(r"patch_embed\.norm\.(.*)", k)
        if m:
            n = "features.0.2." + m.group(1)
        m = re.match(r"layers\.(\d+)\.blocks\.(\d+)\.(.*)", k)
        if m:
            rest = m.group(3).replace("mlp.fc1.", "mlp.0.").replace("mlp.fc2.", "mlp.3.")
            n = "features.%d.%s.%s" % (2 * int(m.group(1)) + 1, m.group(2), rest)
        m = re.match(r"layers\.(\d+)\.downsample\.(.*)", k)
        if m:
            s = int(m.group(1))
            n = "features.%d.%s" % (2 * s if timm09 else 2 * s + 2, m.group(2))
        m = re.match(r"heads(\d?)\.(\d+)\.(.*)", k)
        if m:
            level = int(m.group(1) or 1) - 1
            n = "head.%s.%d.%s" % (m.group(2), 2 * level, m.group(3))
        if k.startswith("head.fc."):
            n = "head." + k[len("head.fc."):]
        out[n] = v
    return out


class _Want:
    """match_state_dict's view of a model: its state dict without the derived buffers."""

    def __init__(self, model):
        self.sd = OrderedDict((k, v) for k, v in model.state_dict().items() if not _DERIVED.search(k))

    def state_dict(self):
        return self.sd


def _swinchex_heads(sd):
    """(number of per-label MLPs, their hidden widths) as the checkpoint holds them."""
    idx = [int(m.group(1)) for m in (re.match(r"head\.(\d+)\.0\.weight$", k) for k in sd) if m]
    hidden, j = [], 0
    while "head.0.%d.weight" % (2 * j) in sd:
        hidden.append(int(sd["head.0.%d.weight" % (2 * j)].shape[0]))
        j += 1
    return (max(idx) + 1 if idx else 0), hidden[:-1]


def manifest_for(model, arch, preset, labels, demo=False, provenance=None, version="1", preprocess=None):
    """The manifest.json object for a SalientSwin (see models/swin.c for what the C side reads)."""
    cfg = model.salient_config
    pre = preprocess or (SWINCHEX_PREPROCESS if model.salient_head == "swinchex" else LINEAR_PREPROCESS)
    head = {"type": model.salient_head}
    if model.salient_head == "swinchex":
        head["hidden"] = list(model.salient_hidden)
    nstages = len(cfg["depths"])
    return OrderedDict([
        ("family", "swin"),
        ("version", str(version)),
        ("task", "multilabel" if model.salient_output in ("softmax_pairs", "sigmoid") else "classification"),
        ("arch", OrderedDict([("name", arch), ("patch_size", int(_pair(cfg["patch_size"])[0])),
                              ("embed_dim", int(cfg["embed_dim"])), ("depths", [int(d) for d in cfg["depths"]]),
                              ("num_heads", [int(h) for h in cfg["num_heads"]]),
                              ("window_size", _pair(cfg["window_size"])), ("mlp_ratio", float(cfg["mlp_ratio"]))])),
        ("preset", preset),
        ("head", head),
        ("output", {"activation": model.salient_output}),
        ("labels", list(labels)),
        ("preprocess", dict(pre)),
        ("attention", {"layers": ["stage%d" % (i + 1) for i in range(nstages)],
                       "cam": "gradient" if model.salient_head == "swinchex" else "linear",
                       "features": "features"}),
        ("provenance", provenance if provenance is not None else "unspecified"),
        ("demo", bool(demo)),
    ])


def export_module(model, arch, preset, labels, out_dir, dtype="f32", demo=False, provenance=None, version="1",
                  preprocess=None):
    """Write model (a SalientSwin, e.g. from build_model, trained or not) to out_dir as a salient
    model folder. labels None: the model's preset default. preprocess overrides the preset's
    preprocessing block (e.g. a smaller input for a demo model; Swin runs at any size).
    Returns bytes of weights written."""
    preset = _preset(preset)
    labels = _labels(preset, labels)
    if len(labels) != model.nlabels:
        raise ExportError("%d labels for a model with %d outputs" % (len(labels), model.nlabels))
    sd = OrderedDict((k, v) for k, v in model.state_dict().items() if not _DERIVED.search(k))
    man = manifest_for(model, arch, preset, labels, demo, provenance, version, preprocess)
    return write_model(out_dir, sd, man, dtype)


def export(arch, preset, weights_path, labels, args):
    """export.py's entry: read weights_path (torchvision, Microsoft/SwinCheX or timm layout), check
    it against arch + preset, write args.out. ExportError on anything that does not fit."""
    preset = _preset(preset)
    if not weights_path:
        raise ExportError("--weights is required for %s" % arch)
    arch_config(arch)  # an unknown arch fails before the checkpoint is read
    sd = load_checkpoint(weights_path)
    if any(k.startswith("absolute_pos_embed") for k in sd):
        raise ExportError("%s: absolute position embeddings (ape=True) are not supported" % weights_path)
    sd = _rename_microsoft(sd)
    sd = OrderedDict((k, v) for k, v in sd.items() if not _DERIVED.search(k))
    head, _ = PRESETS[preset]
    if head == "swinchex":
        nout, hidden = _swinchex_heads(sd)
        if not nout:
            raise ExportError("%s: no SwinCheX heads (head.<i>.0.weight or heads.<i>.weight) for preset swinchex"
                              % weights_path)
    else:
        if "head.weight" not in sd:
            raise ExportError("%s: no 'head.weight' for preset %s" % (weights_path, preset))
        nout, hidden = sd["head.weight"].shape[0], SWINCHEX_HIDDEN
    labels = _labels(preset, labels, nout)
    if len(labels) != nout:
        raise ExportError("%d labels given, the checkpoint's head has %d outputs%s"
                          % (len(labels), nout, " (SwinCheX heads)" if head == "swinchex" else ""))
    model = build_model(arch, preset, labels, head_hidden=hidden)
    match_state_dict(sd, _Want(model), weights_path)
    model.load_state_dict(sd, strict=False)
    return export_module(model, arch, preset, labels, args.out, dtype=args.dtype, demo=args.demo,
                         provenance=args.provenance or "exported from %s" % weights_path, version=args.version)
