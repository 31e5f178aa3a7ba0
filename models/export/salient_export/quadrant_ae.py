"""quadrant_ae exporter: "deep reproductive features" -- 2x2 image quadrants through CNN backbones,
pooled features concatenated, an autoencoder's encoder half, then an SLP, MLP or SVM classifier.

    build_model("quadrant_ae", "covid", None, backbones=[{"family": "resnet", "arch": "resnet18"}],
                input_size=448, encoder=[512, 128, 32], classifier={"kind": "slp"})
    export_module(model, "quadrant_ae", "covid", None, "repo/covid-qae")
    export("quadrant_ae", "covid", "spec.json", None, args)          # from export.py

The pipeline (the C side, models/quadrant_ae.c, does the same):
  - the preprocessed image [N, C, H, W] (H, W even) is cut into 4 equal quadrants, in the order
    0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right;
  - every quadrant goes through every backbone (torchvision DenseNet / ResNet without its head),
    whose last feature map is global-average-pooled;
  - the pooled vectors are concatenated quadrant-major, backbone-minor:
    [q0 b0 | q0 b1 | ... | q1 b0 | ...], F = 4 * sum(backbone features);
  - the encoder (Linear + activation per layer, e.g. F -> 512 -> 128 -> 32) gives the code;
  - the classifier: "slp" (one Linear), "mlp" (Linears with activations between) -> logits,
    probs = softmax; or "svm" as scikit-learn's SVC computes it: logits = decision_function
    (K(K-1)/2 pairwise values for "ovo", K values for "ovr", one value for two classes), probs =
    softmax over the ovr values (argmax = SVC(break_ties=True).predict; smooth in the input, so
    perturbation saliency maps work; not Platt-calibrated).

Spec for export.py --arch quadrant_ae --weights spec.json (paths relative to the spec file):

    {"input_size": [448, 448],                 optional (default the preset's 448); even
     "preprocess": {...},                      optional: replaces the preset's preprocessing block
     "backbones": [                            1..8, each a torchvision checkpoint (its head is dropped)
        {"family": "densenet", "checkpoint": "densenet121.pth"},
        {"family": "resnet", "arch": "resnet18", "checkpoint": "resnet18.pth"}],
     "autoencoder": {"checkpoint": "ae.pth",   the whole AE's state dict; only the encoder is used:
                     "prefix": "encoder.",     its Linear layers under this prefix, in index order
                     "layers": ["enc1", ...],  (or their names, in order, instead of the prefix)
                     "activation": "relu"},    one name, or one per layer (relu, leaky_relu, sigmoid, gelu, none)
     "classifier": {"kind": "slp" | "mlp", "checkpoint": "head.pth", "prefix": "", "activation": "relu"}
               or  {"kind": "svm", "file": "svm.json" | "svm.npz" | "svm.pkl"}}

An SVM file holds SVC's fitted attributes: support_vectors_, dual_coef_, intercept_, n_support_,
_gamma (or a numeric gamma), kernel (linear, rbf, poly, sigmoid), coef0, degree, classes_,
decision_function_shape, and optionally "scaler": {"mean_": [...], "scale_": [...]} for a
StandardScaler applied to the code first. A .pkl may be a pickled SVC or Pipeline(StandardScaler,
SVC) (needs scikit-learn to unpickle). The SVM's k-th class is the k-th label.

Weight names in model.safetensors: "backbones.<i>." + torchvision names, "encoder.<2j>." (a
Sequential of Linear, activation pairs), "classifier.<2j>." likewise, "svm.support_vectors",
"svm.dual_coef", "svm.intercept" (+ "svm.scaler_mean", "svm.scaler_scale").
"""
import json
import os
import re
from collections import OrderedDict

import torch
import torch.nn.functional as F

from . import densenet as dn
from . import resnet as rn
from .common import (COVID_LABELS, IMAGENET_MEAN, IMAGENET_STD, ExportError, load_checkpoint, match_state_dict,
                     write_model)

QUADRANTS = ["top-left", "top-right", "bottom-left", "bottom-right"]
PRESETS = {
    "covid": dict(labels=COVID_LABELS, input_size=[448, 448],
                  preprocess={"channels": 3, "resize": [448, 448], "interpolation": "bilinear", "antialias": True,
                              "mean": IMAGENET_MEAN, "std": IMAGENET_STD}),
}
PRESETS["generic"] = dict(PRESETS["covid"], labels=None)
ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "gelu", "none")
KERNELS = ("linear", "rbf", "poly", "sigmoid")


def _preset(preset):
    preset = preset or "covid"
    if preset not in PRESETS:
        raise ExportError("unknown quadrant_ae preset '%s' (known: %s)" % (preset, ", ".join(sorted(PRESETS))))
    return preset, PRESETS[preset]


def _act_module(name):
    if name not in ACTIVATIONS:
        raise ExportError("unknown activation '%s' (known: %s)" % (name, ", ".join(ACTIVATIONS)))
    return {"relu": torch.nn.ReLU, "leaky_relu": torch.nn.LeakyReLU, "sigmoid": torch.nn.Sigmoid,
            "gelu": torch.nn.GELU, "none": torch.nn.Identity}[name]()


def _acts(act, n, what):
    acts = [act] * n if isinstance(act, str) else list(act)
    if len(acts) != n:
        raise ExportError("%s: %d activations for %d layers" % (what, len(acts), n))
    return acts


class Backbone(torch.nn.Module):
    """A torchvision DenseNet's `features`, or a ResNet without avgpool/fc, under torchvision's
    names; forward gives the last feature map (NCHW) as the C backbone does."""

    def __init__(self, family, arch="", **config):
        super().__init__()
        self.family = family
        if family == "densenet":
            base = dict(dn.ARCHS.get(arch or "densenet121", dn.ARCHS["densenet121"]), bn_size=4, in_channels=3)
            base.update(config)
            full = dn.DenseNet(num_classes=1, **base)
            self.features = full.features
            self.out_features = full.classifier.in_features
        elif family == "resnet":
            if not config.get("block"):
                if arch not in rn.ARCHS:
                    raise ExportError("resnet backbone: unknown arch '%s' (known: %s)"
                                      % (arch, ", ".join(sorted(rn.ARCHS))))
                config = dict(config, block=rn.ARCHS[arch][0], layers=rn.ARCHS[arch][1])
            full = rn.ResNet(config["block"], config["layers"], config.get("in_channels", 3), 1)
            for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
                setattr(self, name, getattr(full, name))
            self.out_features = full.fc.in_features
        else:
            raise ExportError("unknown backbone family '%s' (known: densenet, resnet)" % family)
        self.arch = arch or ("densenet" if family == "densenet" else "resnet")

    def forward(self, x):
        if self.family == "densenet":
            return F.relu(self.features(x))
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def spec(self):
        """The architecture object the C backbone reads (the family's manifest "arch")."""
        sd = self.state_dict()
        cfg = dn.infer_config(sd) if self.family == "densenet" else rn.infer_config(sd)
        spec = OrderedDict([("name", self.arch)])
        spec.update((k, list(v) if isinstance(v, tuple) else v) for k, v in cfg.items())
        return spec


class SVMHead(torch.nn.Module):
    """scikit-learn SVC's decision function in torch (float64), from its public attributes."""

    def __init__(self, support_vectors, dual_coef, intercept, n_support, kernel="rbf", gamma=1.0, coef0=0.0,
                 degree=3, decision_function_shape="ovo", scaler_mean=None, scaler_scale=None):
        super().__init__()
        if kernel not in KERNELS:
            raise ExportError("svm: kernel '%s' not supported (known: %s)" % (kernel, ", ".join(KERNELS)))
        if decision_function_shape not in ("ovo", "ovr"):
            raise ExportError("svm: decision_function_shape must be 'ovo' or 'ovr', not %r" % decision_function_shape)
        f = lambda a: torch.as_tensor(a, dtype=torch.float32).clone()  # noqa: E731
        self.register_buffer("support_vectors", f(support_vectors))
        self.register_buffer("dual_coef", f(dual_coef))
        self.register_buffer("intercept", f(intercept).reshape(-1))
        if (scaler_mean is None) != (scaler_scale is None):
            raise ExportError("svm: a scaler needs both mean_ and scale_")
        if scaler_mean is not None:
            self.register_buffer("scaler_mean", f(scaler_mean).reshape(-1))
            self.register_buffer("scaler_scale", f(scaler_scale).reshape(-1))
        else:
            self.scaler_mean = self.scaler_scale = None
        self.n_support = [int(v) for v in n_support]
        self.kernel, self.gamma, self.coef0, self.degree = kernel, float(gamma), float(coef0), int(degree)
        self.shape = decision_function_shape
        self._check()

    def _check(self):
        K, nsv = len(self.n_support), sum(self.n_support)
        sv, dc, ic = self.support_vectors, self.dual_coef, self.intercept
        problems = []
        if K < 2:
            problems.append("n_support_ has %d classes; an SVM needs 2 or more" % K)
        if sv.dim() != 2 or sv.shape[0] != nsv:
            problems.append("support_vectors_ has shape %s, expected [%d (sum of n_support_), dim]"
                            % (list(sv.shape), nsv))
        if tuple(dc.shape) != (K - 1, nsv):
            problems.append("dual_coef_ has shape %s, expected [%d, %d]" % (list(dc.shape), K - 1, nsv))
        if ic.numel() != K * (K - 1) // 2:
            problems.append("intercept_ has %d values, expected %d" % (ic.numel(), K * (K - 1) // 2))
        if self.kernel != "linear" and not self.gamma > 0:
            problems.append("gamma must be positive for kernel '%s'" % self.kernel)
        if self.scaler_mean is not None and (self.scaler_mean.numel() != sv.shape[-1]
                                             or self.scaler_scale.numel() != sv.shape[-1]):
            problems.append("scaler mean_/scale_ must have %d values" % sv.shape[-1])
        if problems:
            raise ExportError("svm parameters do not fit:\n  " + "\n  ".join(problems))

    @property
    def nclass(self):
        return len(self.n_support)

    @property
    def dim(self):
        return self.support_vectors.shape[1]

    def pairwise(self, x):
        """[N, K(K-1)/2] decision values for class pairs (0,1), (0,2), ..., (1,2), ... as sklearn's
        SVC(decision_function_shape='ovo').decision_function (for two classes: [N, 1])."""
        x = x.double()
        if self.scaler_mean is not None:
            x = (x - self.scaler_mean.double()) / self.scaler_scale.double()
        sv = self.support_vectors.double()
        if self.kernel == "rbf":
            k = torch.exp(-self.gamma * ((x[:, None, :] - sv[None]) ** 2).sum(-1))
        else:
            k = x @ sv.T
            if self.kernel == "poly":
                k = (self.gamma * k + self.coef0) ** self.degree
            elif self.kernel == "sigmoid":
                k = torch.tanh(self.gamma * k + self.coef0)
        dc, ic = self.dual_coef.double(), self.intercept.double()
        start = [0]
        for n in self.n_support:
            start.append(start[-1] + n)
        out, p = [], 0
        for i in range(self.nclass):
            for j in range(i + 1, self.nclass):
                si, sj = slice(start[i], start[i + 1]), slice(start[j], start[j + 1])
                out.append(k[:, si] @ dc[j - 1, si] + k[:, sj] @ dc[i, sj] + ic[p])
                p += 1
        return torch.stack(out, 1)

    def ovr(self, pair):
        """sklearn's _ovr_decision_function: votes + sum of confidences / (3 (|sum| + 1))."""
        K = self.nclass
        d = -pair if K == 2 else pair  # sklearn flips its public two-class parameters
        votes = torch.zeros(pair.shape[0], K, dtype=pair.dtype)
        conf = torch.zeros_like(votes)
        p = 0
        for i in range(K):
            for j in range(i + 1, K):
                votes[:, i] += (d[:, p] >= 0).to(pair.dtype)
                votes[:, j] += (d[:, p] < 0).to(pair.dtype)
                conf[:, i] += d[:, p]
                conf[:, j] -= d[:, p]
                p += 1
        return votes + conf / (3 * (conf.abs() + 1))

    def forward(self, code):
        """logits as SVC.decision_function, float32."""
        pair = self.pairwise(code)
        if self.nclass == 2 or self.shape == "ovo":
            return pair.float()
        return self.ovr(pair).float()

    def probs(self, code):
        return torch.softmax(self.ovr(self.pairwise(code)), 1).float()

    def manifest(self):
        c = OrderedDict([("kind", "svm"), ("kernel", self.kernel), ("gamma", self.gamma), ("coef0", self.coef0),
                         ("degree", self.degree), ("decision_function_shape", self.shape),
                         ("n_support", self.n_support), ("weights", "svm."),
                         ("scaler", self.scaler_mean is not None),
                         ("probs", "softmax_ovr")])
        return c


def _linear_stack(sizes, acts, last_act=True):
    """Sequential(Linear, act, Linear, act, ...): Linear j is at index 2j."""
    mods = []
    for j in range(len(sizes) - 1):
        mods.append(torch.nn.Linear(sizes[j], sizes[j + 1]))
        mods.append(_act_module(acts[j] if (last_act or j < len(sizes) - 2) else "none"))
    return torch.nn.Sequential(*mods)


class QuadrantAE(torch.nn.Module):
    """The whole pipeline as a torch module: forward(x) gives the logits; predict(x) the probs;
    outputs(x) a dict with logits, probs, features, code and the stitched maps backbone<i>."""

    def __init__(self, backbones, encoder_sizes, encoder_acts, classifier, classifier_kind, classifier_acts=None):
        super().__init__()
        self.backbones = torch.nn.ModuleList(backbones)
        self.features_dim = 4 * sum(b.out_features for b in backbones)
        if encoder_sizes[0] != self.features_dim:
            raise ExportError("the encoder takes %d features; 4 quadrants x (%s) backbone features give %d"
                              % (encoder_sizes[0], " + ".join(str(b.out_features) for b in backbones),
                                 self.features_dim))
        self.encoder_acts = list(encoder_acts)
        self.encoder = _linear_stack(encoder_sizes, encoder_acts)
        self.kind = classifier_kind
        self.classifier_acts = list(classifier_acts or [])
        if classifier_kind == "svm":
            self.svm = classifier
        else:
            self.classifier = classifier

    @staticmethod
    def quadrants(x):
        h, w = x.shape[2], x.shape[3]
        if h % 2 or w % 2:
            raise ValueError("quadrant_ae needs an even input size, got %dx%d" % (h, w))
        h2, w2 = h // 2, w // 2
        return [x[:, :, :h2, :w2], x[:, :, :h2, w2:], x[:, :, h2:, :w2], x[:, :, h2:, w2:]]

    def outputs(self, x, maps=False):
        fmaps = [[b(q) for b in self.backbones] for q in self.quadrants(x)]
        feats = torch.cat([f.mean((2, 3)) for per_q in fmaps for f in per_q], 1)
        code = self.encoder(feats)
        if self.kind == "svm":
            logits, probs = self.svm(code), self.svm.probs(code)
        else:
            logits = self.classifier(code)
            probs = torch.softmax(logits, 1)
        out = {"logits": logits, "probs": probs, "features": feats, "code": code}
        if maps:
            for i in range(len(self.backbones)):
                top = torch.cat([fmaps[0][i], fmaps[1][i]], 3)
                bottom = torch.cat([fmaps[2][i], fmaps[3][i]], 3)
                out["backbone%d" % i] = torch.cat([top, bottom], 2)
        return out

    def forward(self, x):
        return self.outputs(x)["logits"]

    def predict(self, x):
        return self.outputs(x)["probs"]


def _layers_json(seq, prefix, acts):
    layers = []
    lin = [(i, m) for i, m in enumerate(seq) if isinstance(m, torch.nn.Linear)]
    for (i, m), a in zip(lin, acts):
        layers.append(OrderedDict([("weights", "%s.%d" % (prefix, i)), ("in", m.in_features),
                                   ("out", m.out_features), ("activation", a)]))
        if a == "leaky_relu":
            layers[-1]["negative_slope"] = seq[i + 1].negative_slope
    return layers


def build_model(arch, preset, labels, **config):
    """An eval-mode reference QuadrantAE. config:
      backbones   list of {"family": "densenet"|"resnet", "arch": "densenet121"|"resnet18"|..., plus the
                  family's overrides (densenet: growth_rate, block_config, num_init_features, bn_size;
                  both: in_channels)}; default one resnet18
      channels    input channels (default 3; passed to the backbones as in_channels)
      encoder     hidden sizes after the features, e.g. [512, 128, 32] (the last is the code)
      activation  encoder activation name, or one per layer (default relu)
      classifier  {"kind": "slp"} | {"kind": "mlp", "hidden": [16], "activation": "relu"} |
                  {"kind": "svm", SVMHead's arguments...}; an svm without support_vectors gets random
                  ones (n_support default 4 per class, kernel rbf, gamma 1/code)
    Weights are torch's default initialisation."""
    if arch != "quadrant_ae":
        raise ExportError("quadrant_ae exporter asked for arch '%s'" % arch)
    preset, p = _preset(preset)
    labels = list(labels) if labels else (list(p["labels"]) if p["labels"] else None)
    if not labels:
        raise ExportError("preset '%s' has no default labels: give --labels" % preset)
    config = dict(config)
    channels = config.pop("channels", 3)
    bspecs = config.pop("backbones", [{"family": "resnet", "arch": "resnet18"}])
    enc = list(config.pop("encoder", [512, 128, 32]))
    act = config.pop("activation", "relu")
    clf = dict(config.pop("classifier", {"kind": "slp"}))
    input_size = config.pop("input_size", p["input_size"])
    if config:
        raise ExportError("unknown quadrant_ae option(s) %s" % ", ".join(sorted(config)))
    backbones = []
    for s in bspecs:
        s = dict(s)
        fam, a = s.pop("family", None), s.pop("arch", "")
        s.setdefault("in_channels", channels)
        backbones.append(Backbone(fam, a, **s))
    F_ = 4 * sum(b.out_features for b in backbones)
    sizes = [F_] + enc
    enc_acts = _acts(act, len(enc), "encoder")
    kind = clf.pop("kind", "slp")
    code, K = sizes[-1], len(labels)
    if kind in ("slp", "mlp"):
        hidden = list(clf.pop("hidden", [] if kind == "slp" else [max(code // 2, K)]))
        cact = clf.pop("activation", "relu")
        if kind == "slp" and hidden:
            raise ExportError("an slp has no hidden layers (use kind 'mlp')")
        if kind == "mlp" and not hidden:
            raise ExportError("an mlp needs at least one hidden layer")
        if clf:
            raise ExportError("unknown classifier option(s) %s" % ", ".join(sorted(clf)))
        csizes = [code] + hidden + [K]
        cacts = _acts(cact, len(hidden), "classifier") + ["none"]
        head = _linear_stack(csizes, cacts)
        model = QuadrantAE(backbones, sizes, enc_acts, head, kind, cacts)
    elif kind == "svm":
        if "support_vectors" not in clf:
            g = torch.Generator().manual_seed(clf.pop("seed", 0))
            ns = clf.pop("n_support", [4] * K)
            nsv = sum(ns)
            clf.update(support_vectors=torch.randn(nsv, code, generator=g), n_support=ns,
                       dual_coef=torch.randn(K - 1, nsv, generator=g), intercept=0.1 * torch.randn(K * (K - 1) // 2,
                                                                                               generator=g))
            clf.setdefault("gamma", 1.0 / code)
        model = QuadrantAE(backbones, sizes, enc_acts, SVMHead(**clf), "svm")
        if model.svm.dim != code or model.svm.nclass != K:
            raise ExportError("the svm takes %d features and has %d classes; the code has %d, the labels are %d"
                              % (model.svm.dim, model.svm.nclass, code, K))
    else:
        raise ExportError("unknown classifier kind '%s' (slp, mlp or svm)" % kind)
    model.salient = dict(arch=arch, preset=preset, labels=labels, input_size=_size(input_size), channels=channels)
    return model.eval()


def _size(s):
    hw = [int(s), int(s)] if isinstance(s, (int, float)) else [int(v) for v in s]
    if len(hw) != 2 or hw[0] < 2 or hw[1] < 2 or hw[0] % 2 or hw[1] % 2:
        raise ExportError("input_size %s: quadrant_ae needs an even height and width" % (s,))
    return hw


def manifest_for(model, arch, preset, labels, demo=False, provenance=None, version="1", preprocess=None):
    """The manifest.json object for a QuadrantAE."""
    preset, p = _preset(preset)
    info = getattr(model, "salient", {})
    if preprocess is None:
        pre = dict(p["preprocess"])
        pre["resize"] = list(info.get("input_size", p["input_size"]))
    else:
        pre = dict(preprocess)
    channels = model.backbones[0].spec()["in_channels"]
    pre["channels"] = channels
    if channels == 1 and "mean" in pre:
        pre["mean"], pre["std"] = pre["mean"][:1], pre["std"][:1]
    backbones = []
    for i, b in enumerate(model.backbones):
        spec = b.spec()
        if spec["in_channels"] != channels:
            raise ExportError("backbone %d takes %d input channels, backbone 0 takes %d" % (i, spec["in_channels"],
                                                                                             channels))
        backbones.append(OrderedDict([("family", b.family), ("spec", spec), ("weights", "backbones.%d." % i),
                                      ("features", b.out_features)]))
    if model.kind == "svm":
        nclass = model.svm.nclass
        clf = model.svm.manifest()
    else:
        layers = _layers_json(model.classifier, "classifier", model.classifier_acts)
        nclass = layers[-1]["out"]
        clf = OrderedDict([("kind", model.kind), ("layers", layers), ("probs", "softmax")])
    if len(labels) != nclass:
        raise ExportError("%d labels for a classifier with %d classes" % (len(labels), nclass))
    return OrderedDict([
        ("family", "quadrant_ae"),
        ("task", "classification"),
        ("version", str(version)),
        ("demo", bool(demo)),
        ("provenance", provenance or "unknown"),
        ("preset", preset),
        ("labels", list(labels)),
        ("preprocess", pre),
        ("quadrants", QUADRANTS),
        ("feature_order", "quadrant-major, backbone-minor: [q0 b0 | q0 b1 | ... | q1 b0 | ...], each block a "
                          "backbone's global-average-pooled last feature map"),
        ("backbones", backbones),
        ("features", model.features_dim),
        ("encoder", _layers_json(model.encoder, "encoder", model.encoder_acts)),
        ("classifier", clf),
        ("attention", {"layers": ["backbone%d" % i for i in range(len(backbones))], "cam": "perturbation"}),
    ])


def export_module(model, arch, preset, labels, out_dir, dtype="f32", demo=False, provenance=None, version="1",
                  preprocess=None):
    """Write model (a QuadrantAE) as a salient model folder; labels None: those build_model recorded,
    else the preset's. Returns bytes written."""
    if labels is None:
        labels = getattr(model, "salient", {}).get("labels") or _preset(preset)[1]["labels"]
    man = manifest_for(model, arch, preset, labels, demo, provenance, version, preprocess)
    sd = OrderedDict((k, v) for k, v in model.state_dict().items() if torch.is_floating_point(v))
    return write_model(out_dir, sd, man, dtype)


# --- reading a spec and its checkpoints -------------------------------------------------------

def _path(base, p, what):
    if not isinstance(p, str) or not p:
        raise ExportError("spec: %s must be a file name" % what)
    p = p if os.path.isabs(p) else os.path.join(base, p)
    if not os.path.exists(p):
        raise ExportError("spec: %s: %s: no such file" % (what, p))
    return p


def _backbone_from(entry, base, i, channels):
    if not isinstance(entry, dict):
        raise ExportError("spec: backbones[%d] must be an object" % i)
    path = _path(base, entry.get("checkpoint"), "backbones[%d].checkpoint" % i)
    fam = entry.get("family")
    if fam == "densenet" or (fam is None and "densenet" in str(entry.get("arch", ""))):
        sd, _ = dn.read_checkpoint(path)
        fam = "densenet"
        head = ("classifier.",)
    else:
        sd = load_checkpoint(path)
        fam = fam or ("resnet" if "conv1.weight" in sd else None)
        head = ("fc.",)
    if fam not in ("densenet", "resnet"):
        raise ExportError("spec: backbones[%d]: family '%s' unknown (densenet, resnet)" % (i, fam))
    sd = OrderedDict((k, v) for k, v in sd.items() if not k.startswith(head) and k != "op_threshs")
    cfg = dn.infer_config(sd) if fam == "densenet" else rn.infer_config(sd)
    if channels is not None and cfg["in_channels"] != channels:
        raise ExportError("spec: backbones[%d] (%s) takes %d input channels, the first backbone %d"
                          % (i, path, cfg["in_channels"], channels))
    arch = entry.get("arch") or ("densenet" if fam == "densenet" else
                                 {v: k for k, v in rn.ARCHS.items()}.get((cfg["block"], tuple(cfg["layers"])),
                                                                         "resnet"))
    b = Backbone(fam, arch, **cfg)
    match_state_dict(sd, b, path)
    b.load_state_dict(sd, strict=False)
    return b


def _linears(sd, prefix, names, path, what):
    """[(name, weight, bias)] of the Linear layers under prefix (in index order) or named."""
    if names is None:
        sub = OrderedDict((k[len(prefix):], v) for k, v in sd.items() if k.startswith(prefix))
        names = [k[:-len(".weight")] for k, v in sub.items() if k.endswith(".weight") and v.dim() == 2]
        if all(re.fullmatch(r"\d+", n) for n in names):
            names.sort(key=int)
        if not names and "weight" in sub and sub["weight"].dim() == 2:
            names = [""]
        used = set()
        for n in names:
            used.update({(n + "." if n else "") + "weight", (n + "." if n else "") + "bias"})
        extra = [k for k in sub if k not in used and not k.endswith("num_batches_tracked")]
        if extra:
            raise ExportError("%s: %s: tensors under '%s' that are not Linear layers: %s (only Linear + activation "
                              "layers are supported)" % (path, what, prefix, ", ".join(prefix + k for k in extra)))
        full = [prefix + (n + "." if n else "") for n in names]
    else:
        full = [n + "." for n in names]
    if not full:
        raise ExportError("%s: %s: no Linear layers under prefix '%s'" % (path, what, prefix))
    out = []
    for n in full:
        if n + "weight" not in sd:
            raise ExportError("%s: %s: missing tensor '%sweight'" % (path, what, n))
        w = sd[n + "weight"]
        if w.dim() != 2:
            raise ExportError("%s: %s: tensor '%sweight' has shape %s, expected [out, in]" % (path, what, n,
                                                                                            list(w.shape)))
        b = sd.get(n + "bias")
        if b is not None and tuple(b.shape) != (w.shape[0],):
            raise ExportError("%s: %s: tensor '%sbias' has shape %s, expected [%d]" % (path, what, n, list(b.shape),
                                                                                     w.shape[0]))
        out.append((n + "weight", w, b))
    for (n0, w0, _), (n1, w1, _) in zip(out, out[1:]):
        if w1.shape[1] != w0.shape[0]:
            raise ExportError("%s: %s: '%s' takes %d features but '%s' gives %d" % (path, what, n1, w1.shape[1],
                                                                                   n0, w0.shape[0]))
    return out


def _load_linears(seq, layers):
    lin = [m for m in seq if isinstance(m, torch.nn.Linear)]
    for m, (_, w, b) in zip(lin, layers):
        m.weight.data = w.float().clone()
        if b is None:
            m.bias.data.zero_()
        else:
            m.bias.data = b.float().clone()


def _svm_params(path):
    """SVC attributes from a .json, .npz or pickled SVC / Pipeline(StandardScaler, SVC)."""
    ext = os.path.splitext(path)[1].lower()
    scaler = None
    try:
        if ext == ".json":
            with open(path) as f:
                d = json.load(f)
            scaler = d.get("scaler")
        elif ext == ".npz":
            import numpy as np
            z = np.load(path, allow_pickle=False)
            d = {k: z[k].tolist() for k in z.files}
            if "scaler_mean_" in d:
                scaler = {"mean_": d["scaler_mean_"], "scale_": d["scaler_scale_"]}
        elif ext in (".pkl", ".pickle"):
            import pickle
            with open(path, "rb") as f:
                obj = pickle.load(f)
            steps = [s for _, s in obj.steps] if hasattr(obj, "steps") else [obj]
            clf = steps[-1]
            for s in steps[:-1]:
                if hasattr(s, "mean_") and hasattr(s, "scale_") and scaler is None:
                    scaler = {"mean_": s.mean_.tolist(), "scale_": s.scale_.tolist()}
                else:
                    raise ExportError("%s: pipeline step %s is not supported (only one StandardScaler before "
                                      "the SVC)" % (path, type(s).__name__))
            d = {k: getattr(clf, k) for k in ("support_vectors_", "dual_coef_", "intercept_", "n_support_",
                                               "_gamma", "kernel", "coef0", "degree", "classes_",
                                               "decision_function_shape") if hasattr(clf, k)}
            d = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in d.items()}
        else:
            raise ExportError("%s: an SVM file must be .json, .npz or .pkl" % path)
    except ExportError:
        raise
    except Exception as e:  # json, numpy and pickle raise many kinds for a bad file
        raise ExportError("%s: cannot be read: %s" % (path, e))

    def get(name, default=KeyError):
        for k in (name + "_", name, "_" + name):
            if k in d:
                return d[k]
        if default is KeyError:
            raise ExportError("%s: missing '%s_'" % (path, name))
        return default

    kernel = get("kernel", "rbf")
    gamma = d.get("_gamma", d.get("gamma_", d.get("gamma")))
    if kernel != "linear" and not isinstance(gamma, (int, float)):
        raise ExportError("%s: gamma must be a number (sklearn's fitted _gamma, not %r)" % (path, gamma))
    if scaler is not None and not ({"mean_", "scale_"} <= set(scaler)):
        raise ExportError("%s: 'scaler' needs mean_ and scale_" % path)
    return dict(support_vectors=get("support_vectors"), dual_coef=get("dual_coef"), intercept=get("intercept"),
                n_support=get("n_support"), kernel=kernel, gamma=gamma if isinstance(gamma, (int, float)) else 0.0,
                coef0=get("coef0", 0.0), degree=get("degree", 3),
                decision_function_shape=get("decision_function_shape", "ovr"),
                scaler_mean=scaler["mean_"] if scaler else None, scaler_scale=scaler["scale_"] if scaler else None
                ), get("classes", None)


def export(arch, preset, weights_path, labels, args):
    """export.py's entry: read the spec and its checkpoints, check they chain, write the folder."""
    preset, p = _preset(preset)
    if not weights_path:
        raise ExportError("--weights is required for quadrant_ae: a JSON spec (see salient_export/quadrant_ae.py)")
    try:
        with open(weights_path) as f:
            spec = json.load(f)
    except (OSError, ValueError) as e:
        raise ExportError("%s: cannot read the quadrant_ae spec: %s" % (weights_path, e))
    if not isinstance(spec, dict):
        raise ExportError("%s: the spec must be a JSON object" % weights_path)
    unknown = set(spec) - {"input_size", "preprocess", "backbones", "autoencoder", "classifier"}
    if unknown:
        raise ExportError("%s: unknown spec field(s) %s" % (weights_path, ", ".join(sorted(unknown))))
    base = os.path.dirname(os.path.abspath(weights_path))
    bl = spec.get("backbones")
    if not isinstance(bl, list) or not 1 <= len(bl) <= 8:
        raise ExportError("%s: 'backbones' must be a list of 1..8 backbones" % weights_path)
    backbones = []
    for i, e in enumerate(bl):
        backbones.append(_backbone_from(e, base, i, backbones[0].spec()["in_channels"] if backbones else None))

    ae = spec.get("autoencoder")
    if not isinstance(ae, dict):
        raise ExportError("%s: 'autoencoder' must be an object with a 'checkpoint'" % weights_path)
    ae_path = _path(base, ae.get("checkpoint"), "autoencoder.checkpoint")
    enc = _linears(load_checkpoint(ae_path), ae.get("prefix", "encoder."), ae.get("layers"), ae_path, "encoder")
    enc_acts = _acts(ae.get("activation", "relu"), len(enc), "autoencoder.activation")
    for a in enc_acts:
        _act_module(a)
    sizes = [enc[0][1].shape[1]] + [w.shape[0] for _, w, _ in enc]
    feats = 4 * sum(b.out_features for b in backbones)
    if sizes[0] != feats:
        raise ExportError("%s: encoder tensor '%s' takes %d features; 4 quadrants x (%s) backbone features give %d"
                          % (ae_path, enc[0][0], sizes[0], " + ".join(str(b.out_features) for b in backbones),
                             feats))

    c = spec.get("classifier")
    if not isinstance(c, dict) or c.get("kind") not in ("slp", "mlp", "svm"):
        raise ExportError("%s: 'classifier' must be an object with kind slp, mlp or svm" % weights_path)
    kind, code = c["kind"], sizes[-1]
    if kind == "svm":
        svm_path = _path(base, c.get("file"), "classifier.file")
        params, classes = _svm_params(svm_path)
        head = SVMHead(**params)
        if head.dim != code:
            raise ExportError("%s: support vectors have %d features; the encoder's code has %d"
                              % (svm_path, head.dim, code))
        K = head.nclass
        if classes is not None and all(isinstance(v, str) for v in classes):
            if not labels:
                labels = list(classes)
            elif list(labels) != list(classes):
                raise ExportError("%s: classes_ %s differ from the labels %s" % (svm_path, classes, labels))
        cacts = None
    else:
        cpath = _path(base, c.get("checkpoint"), "classifier.checkpoint")
        cl = _linears(load_checkpoint(cpath), c.get("prefix", ""), c.get("layers"), cpath, "classifier")
        if kind == "slp" and len(cl) != 1:
            raise ExportError("%s: an slp has one Linear layer, found %d (use kind 'mlp')" % (cpath, len(cl)))
        if kind == "mlp" and len(cl) < 2:
            raise ExportError("%s: an mlp has 2 or more Linear layers, found %d (use kind 'slp')" % (cpath, len(cl)))
        if cl[0][1].shape[1] != code:
            raise ExportError("%s: classifier tensor '%s' takes %d features; the encoder's code has %d"
                              % (cpath, cl[0][0], cl[0][1].shape[1], code))
        K = cl[-1][1].shape[0]
        cacts = _acts(c.get("activation", "relu"), len(cl) - 1, "classifier.activation") + ["none"]
        head = _linear_stack([code] + [w.shape[0] for _, w, _ in cl], cacts)
        _load_linears(head, cl)
    labels = list(labels) if labels else (list(p["labels"]) if p["labels"] else None)
    if not labels:
        raise ExportError("preset '%s' has no default labels: give --labels (%d of them)" % (preset, K))
    if len(labels) != K:
        raise ExportError("%d labels for a classifier with %d classes" % (len(labels), K))
    model = QuadrantAE(backbones, sizes, enc_acts, head, kind, cacts)
    _load_linears(model.encoder, enc)
    model.salient = dict(arch=arch, preset=preset, labels=labels,
                         input_size=_size(spec.get("input_size", p["input_size"])))
    pre = spec.get("preprocess")
    if pre is not None and not isinstance(pre, dict):
        raise ExportError("%s: 'preprocess' must be an object" % weights_path)
    prov = args.provenance or "exported from %s" % os.path.basename(weights_path)
    return export_module(model.eval(), arch, preset, labels, args.out, args.dtype, args.demo, prov, args.version,
                         preprocess=pre)
