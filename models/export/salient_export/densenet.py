"""DenseNet exporter: torchvision DenseNet-121/161/169/201 and small variants, with the CheXNet,
torchxrayvision ("xrv") and generic presets.

    build_model("densenet121", "chexnet", None)           -> eval-mode reference module
    export_module(model, "densenet121", "chexnet", None, "repo/chexnet")
    export("densenet121", "xrv", "nih-densenet121-....pt", None, args)   # from export.py

The reference module's forward returns the logits (what a trainer needs); predict(x) applies the
preset's post-processing (sigmoid, softmax, or sigmoid + torchxrayvision's op_threshs
calibration) exactly as the C side does. Checkpoints accepted: torchvision state dicts (with or
without DataParallel's 'module.'), CheXNet's old key names ('norm.1' for 'norm1', a
'densenet121.' wrapper prefix, 'classifier.0.' for a Linear+Sigmoid head), and whole pickled
modules as torchxrayvision ships them (their classes need not be importable).
"""
import math
import os
import pickle
import re
import sys
import types
from collections import OrderedDict

import torch
import torch.nn.functional as F
import torchvision

from .common import (CHEXNET_LABELS, IMAGENET_MEAN, IMAGENET_STD, XRV_LABELS, ExportError, check_head_labels,
                     checkpoint_labels, find_preset, load_checkpoint, match_state_dict, module_labels, preset_labels,
                     write_module)

ARCHS = {
    "densenet121": dict(growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64),
    "densenet161": dict(growth_rate=48, block_config=(6, 12, 36, 24), num_init_features=96),
    "densenet169": dict(growth_rate=32, block_config=(6, 12, 32, 32), num_init_features=64),
    "densenet201": dict(growth_rate=32, block_config=(6, 12, 48, 32), num_init_features=64),
}

# Preset -> input channels, default labels, output post-processing, preprocessing.
_IMAGENET_PRE = {"channels": 3, "resize_shorter": 256, "interpolation": "bilinear", "antialias": True,
                 "center_crop": [224, 224], "mean": IMAGENET_MEAN, "std": IMAGENET_STD}
PRESETS = {
    "chexnet": dict(in_channels=3, labels=CHEXNET_LABELS, activation="sigmoid", calibration=None,
                    task="multilabel", preprocess=_IMAGENET_PRE),
    # torchxrayvision: XRayCenterCrop, XRayResizer(224), normalize(img, 255) -> [-1024, 1024], one channel.
    "xrv": dict(in_channels=1, labels=XRV_LABELS, activation="sigmoid", calibration="op_threshs",
                task="multilabel",
                preprocess={"channels": 1, "crop_square": True, "resize": [224, 224], "interpolation": "bilinear",
                            "antialias": True, "range": [-1024.0, 1024.0]}),
    "imagenet": dict(in_channels=3, labels=None, activation="softmax", calibration=None, task="classification",
                     preprocess=_IMAGENET_PRE),
    "multilabel": dict(in_channels=3, labels=None, activation="sigmoid", calibration=None, task="multilabel",
                       preprocess=_IMAGENET_PRE),
}
PRESETS["generic"] = PRESETS["imagenet"]

# torchxrayvision's published operating points for its DenseNet-121 releases (its model_urls
# table), keyed by the release file name; used when a pickled module does not carry them.
_XRV_OP_THRESHS = {
    "nih-pc-chex-mimic_ch-google-openi-kaggle-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt":
        [0.07422872, 0.038290843, 0.09814756, 0.0098118475, 0.023601074, 0.0022490358, 0.010060724, 0.103246614,
         0.056810737, 0.026791653, 0.050318155, 0.023985857, 0.01939503, 0.042889766, 0.053369623, 0.035975814,
         0.20204692, 0.05015312],
    "nih-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt":
        [0.039117552, 0.0034529066, 0.11396341, 0.0057298196, 0.00045666535, 0.0018880932, 0.012037827,
         0.038744126, 0.0037213727, 0.014730946, 0.016149804, 0.054241467, 0.037198864, 0.0004403434,
         math.nan, math.nan, math.nan, math.nan],
    "pc-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt":
        [0.031012505, 0.013347598, 0.081435576, 0.001262615, 0.002587246, 0.0035944257, 0.0023071, 0.055412333,
         0.044385884, 0.042766232, 0.043258056, 0.037629247, 0.005658899, 0.0091741895, math.nan, 0.026507627,
         math.nan, math.nan],
    "chex-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt":
        [0.1988969, 0.05710573, math.nan, 0.0531293, 0.1435217, math.nan, math.nan, 0.27212676, 0.07749717,
         math.nan, 0.19712369, math.nan, math.nan, math.nan, 0.09932402, 0.09273402, 0.3270967, 0.10888247],
    "kaggle-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt":
        [math.nan] * 8 + [0.13486601] + [math.nan] * 7 + [0.13511065, math.nan],
    "mimic_nb-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt":
        [0.08558747, 0.011884617, math.nan, 0.0040595434, 0.010733786, math.nan, math.nan, 0.118761964,
         0.022924708, math.nan, 0.06358637, math.nan, math.nan, math.nan, 0.022143636, 0.017476924, 0.1258702,
         0.014020768],
    "mimic_ch-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt":
        [0.09121389, 0.010573786, math.nan, 0.005023008, 0.003698257, math.nan, math.nan, 0.08001232, 0.037242252,
         math.nan, 0.05006329, math.nan, math.nan, math.nan, 0.019866971, 0.03823637, 0.11303808, 0.0069147074],
}


def op_norm(p, t):
    """torchxrayvision's operating-point calibration of sigmoid outputs p [N, L] by thresholds t [L]:
    p < t -> p / (2t), else 1 - (1 - p) / (2 (1 - t)); a NaN threshold (a label the model was not
    trained on) gives 0.5, as torchxrayvision's op_norm does."""
    t = t.to(p.dtype).expand_as(p)
    nan = torch.isnan(t)
    ts = torch.where(nan, torch.full_like(t, 0.5), t)
    low = p / (ts * 2)
    high = 1.0 - (1.0 - p) / ((1.0 - ts) * 2)
    out = torch.where(p < ts, low, high)
    return torch.where(nan, torch.full_like(p, 0.5), out)


class DenseNet(torchvision.models.DenseNet):
    """torchvision's DenseNet with a configurable number of input channels, an optional
    'op_threshs' buffer (xrv) and the preset's post-processing in predict(). State dict names are
    torchvision's ('features.*', 'classifier.*') plus 'op_threshs' when calibrated."""

    def __init__(self, growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64, bn_size=4,
                 in_channels=3, num_classes=1000, activation="sigmoid", op_threshs=None):
        super().__init__(growth_rate=growth_rate, block_config=tuple(block_config),
                         num_init_features=num_init_features, bn_size=bn_size, num_classes=num_classes)
        if in_channels != 3:
            self.features.conv0 = torch.nn.Conv2d(in_channels, num_init_features, kernel_size=7, stride=2,
                                                  padding=3, bias=False)
        self.activation = activation
        if op_threshs is not None:
            self.register_buffer("op_threshs", torch.as_tensor(op_threshs, dtype=torch.float32).clone())
        else:
            self.op_threshs = None

    def feature_map(self, x):
        """The last feature map as the C backbone returns it: relu(norm5(...)), NCHW."""
        return F.relu(self.features(x))

    def postprocess(self, logits):
        """Logits -> label probabilities as the manifest's "output" says."""
        if self.activation == "softmax":
            return torch.softmax(logits, dim=1)
        if self.activation == "none":
            return logits
        p = torch.sigmoid(logits)
        if self.op_threshs is not None:
            p = op_norm(p, self.op_threshs)
        return p

    def predict(self, x):
        return self.postprocess(self.forward(x))


def _preset(preset):
    return find_preset("densenet", PRESETS, preset, "chexnet")


def build_model(arch, preset, labels, **config):
    """An eval-mode reference DenseNet for arch ('densenet121', ...) and preset ('chexnet', 'xrv',
    'imagenet', 'multilabel'). config overrides the architecture (growth_rate, block_config,
    num_init_features, bn_size, in_channels) and may give op_threshs (xrv preset only; default
    0.5 for every label, where the calibration is the identity) or activation. Weights are torch's
    default initialisation. Raises ExportError for an unknown arch or preset."""
    if arch not in ARCHS:
        raise ExportError("unknown densenet arch '%s' (known: %s)" % (arch, ", ".join(sorted(ARCHS))))
    preset, p = _preset(preset)
    labels = preset_labels(preset, labels, p)
    cfg = dict(ARCHS[arch], bn_size=4, in_channels=p["in_channels"])
    op = config.pop("op_threshs", None)
    activation = config.pop("activation", p["activation"])
    for k in list(config):
        if k not in cfg:
            raise ExportError("unknown densenet option '%s'" % k)
    cfg.update(config)
    if p["calibration"] == "op_threshs" and op is None:
        op = [0.5] * len(labels)
    m = DenseNet(num_classes=len(labels), activation=activation,
                 op_threshs=op if p["calibration"] == "op_threshs" else None, **cfg)
    m.salient = dict(arch=arch, preset=preset, labels=labels, config=cfg)
    return m.eval()


def infer_config(sd):
    """Architecture numbers read off a state dict's shapes (so custom variants export as is)."""
    try:
        w0 = sd["features.conv0.weight"]
        blocks = []
        b = 1
        while any(k.startswith("features.denseblock%d." % b) for k in sd):
            n = 0
            while ("features.denseblock%d.denselayer%d.conv2.weight" % (b, n + 1)) in sd:
                n += 1
            blocks.append(n)
            b += 1
        g = sd["features.denseblock1.denselayer1.conv2.weight"].shape[0]
        bott = sd["features.denseblock1.denselayer1.conv1.weight"].shape[0]
    except KeyError as e:
        raise ExportError("not a DenseNet checkpoint: no tensor %s" % e)
    if not blocks or 0 in blocks or bott % g:
        raise ExportError("not a DenseNet checkpoint: dense blocks %s, growth %d, bottleneck %d" % (blocks, g, bott))
    return dict(growth_rate=int(g), block_config=tuple(blocks), num_init_features=int(w0.shape[0]),
                bn_size=int(bott // g), in_channels=int(w0.shape[1]))


def manifest_for(model, arch, preset, labels, demo=False, provenance=None, version="1", preprocess=None):
    """The manifest.json object for a DenseNet built by build_model (or any torchvision-named one)."""
    preset, p = _preset(preset)
    sd = model.state_dict()
    cfg = infer_config(sd)
    check_head_labels(sd, "classifier.weight", labels)
    pre = dict(preprocess or p["preprocess"])
    pre["channels"] = cfg["in_channels"] if cfg["in_channels"] in (1, 3) else pre["channels"]
    if cfg["in_channels"] == 1 and "mean" in pre:
        pre["mean"], pre["std"] = pre["mean"][:1], pre["std"][:1]
    output = {"activation": getattr(model, "activation", p["activation"])}
    # Always explicit: the C loader's default for preset xrv is to calibrate.
    output["calibration"] = "op_threshs" if "op_threshs" in sd else "none"
    arch_obj = {"name": arch}
    arch_obj.update({k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()})
    nblocks = len(cfg["block_config"])
    return OrderedDict([
        ("family", "densenet"),
        ("task", p["task"]),
        ("version", str(version)),
        ("demo", bool(demo)),
        ("provenance", provenance or "unknown"),
        ("arch", arch_obj),
        ("preset", preset),
        ("labels", list(labels)),
        ("output", output),
        ("preprocess", pre),
        ("attention", {"layers": ["denseblock%d" % (i + 1) for i in range(nblocks)], "cam": "linear",
                       "features": "features"}),
    ])


def export_module(model, arch, preset, labels, out_dir, dtype="f32", demo=False, provenance=None, version="1",
                  preprocess=None):
    """Write model (a DenseNet from build_model, or a torchvision DenseNet) as a salient model folder.
    labels None: the ones build_model recorded, else the preset's. preprocess overrides the
    preset's preprocessing block (e.g. a smaller input for a demo model). Returns bytes written."""
    labels = module_labels(model, labels, *_preset(preset))
    man = manifest_for(model, arch, preset, labels, demo, provenance, version, preprocess)
    return write_module(out_dir, model, man, dtype)


# --- reading real checkpoints ---------------------------------------------------------------

class _StubUnpickler(pickle.Unpickler):
    """Unpickles whole modules whose defining package (torchxrayvision, a training script) is not
    installed: any class it cannot import becomes an empty nn.Module subclass, so the module tree,
    its parameters and buffers still come back and state_dict() works."""

    def find_class(self, module, name):
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            return type(name, (torch.nn.Module,), {"__module__": module, "forward": lambda self, *a: None})


_stub_pickle = types.ModuleType("salient_stub_pickle")
_stub_pickle.__dict__.update({k: getattr(pickle, k) for k in dir(pickle) if not k.startswith("__")})
_stub_pickle.Unpickler = _StubUnpickler
_stub_pickle.load = lambda f, **kw: _StubUnpickler(f, **kw).load()


def _strip(k):
    while k.startswith("module."):
        k = k[len("module."):]
    return k


def read_checkpoint(path):
    """(state dict, op_threshs or None) from any accepted checkpoint file."""
    if not os.path.exists(path or ""):
        raise ExportError("%s: no such file" % path)
    op = None
    # Some torch builds (Debian's 1.13) ignore pickle_module unless weights_only, so the module
    # torch.load reads it from is swapped for the duration of the call as well.
    import torch.serialization as ser
    saved = ser.pickle
    try:
        ser.pickle = _stub_pickle
        obj = torch.load(path, map_location="cpu", pickle_module=_stub_pickle)
    except Exception:
        obj = None  # let the common loader report it plainly
    finally:
        ser.pickle = saved
    if isinstance(obj, torch.nn.Module):
        for mod in obj.modules():  # very old pickles predate this attribute
            if not hasattr(mod, "_non_persistent_buffers_set"):
                mod._non_persistent_buffers_set = set()
        t = getattr(obj, "op_threshs", None)
        if t is not None and not torch.is_tensor(t):
            op = torch.tensor([float(v) for v in t], dtype=torch.float32)
        sd = OrderedDict((_strip(k), v) for k, v in obj.state_dict().items() if torch.is_tensor(v))
    else:
        sd = load_checkpoint(path)
    if "op_threshs" in sd:
        op = sd.pop("op_threshs").float()
    return rename_keys(sd), op


_OLD_LAYER = re.compile(r"(\.denselayer\d+\.)(norm|relu|conv)\.([12])\.")


def rename_keys(sd):
    """CheXNet-era names -> torchvision's: 'norm.1' -> 'norm1' (and relu/conv), a
    'densenet121.' wrapper prefix dropped, 'classifier.0.' (Linear in a Sequential with Sigmoid)
    -> 'classifier.'."""
    out = OrderedDict()
    for k, v in sd.items():
        k = re.sub(r"^densenet\d+\.", "", k)
        k = _OLD_LAYER.sub(r"\1\2\3.", k)
        if k.startswith("classifier.0."):
            k = "classifier." + k[len("classifier.0."):]
        out[k] = v
    return out


def export(arch, preset, weights_path, labels, args):
    """export.py's entry: read the checkpoint, check it against the architecture, write the folder."""
    preset, p = _preset(preset)
    if not weights_path:
        raise ExportError("--weights is required for densenet")
    sd, op = read_checkpoint(weights_path)
    cfg = infer_config(sd)
    base = ARCHS.get(arch, {})
    if base and (tuple(base["block_config"]) != cfg["block_config"] or base["growth_rate"] != cfg["growth_rate"]):
        print("export.py: note: checkpoint is a DenseNet with growth %d and blocks %s, not %s's; exporting it "
              "as found" % (cfg["growth_rate"], list(cfg["block_config"]), arch), file=sys.stderr)
    labels = checkpoint_labels(sd, "classifier.weight", labels, preset, p, weights_path)
    nout = sd["classifier.weight"].shape[0]
    if cfg["in_channels"] != p["in_channels"]:
        print("export.py: note: the checkpoint takes %d input channels; preset '%s' uses %d, so the "
              "preprocessing makes %d" % (cfg["in_channels"], preset, p["in_channels"], cfg["in_channels"]),
              file=sys.stderr)
    if p["calibration"] == "op_threshs" and op is None:
        op = _XRV_OP_THRESHS.get(os.path.basename(weights_path))
        if op is None:
            print("export.py: note: no op_threshs in the checkpoint and not a known torchxrayvision release: "
                  "exporting plain sigmoid outputs", file=sys.stderr)
    if op is not None and len(op) != nout:
        raise ExportError("op_threshs has %d values for %d outputs" % (len(op), nout))
    m = build_model(arch if arch in ARCHS else "densenet121", preset, labels,
                    op_threshs=op if p["calibration"] == "op_threshs" else None, **cfg)
    if p["calibration"] == "op_threshs" and op is None:
        m.op_threshs = None  # a None buffer leaves the state dict: plain sigmoid outputs
    if op is not None and p["calibration"] != "op_threshs":
        print("export.py: note: the checkpoint carries op_threshs; preset '%s' does not use them" % preset,
              file=sys.stderr)
    if m.op_threshs is not None:
        sd["op_threshs"] = torch.as_tensor(op, dtype=torch.float32)
    match_state_dict(sd, m, weights_path)
    m.load_state_dict(sd, strict=False)
    prov = args.provenance or "exported from %s" % os.path.basename(weights_path)
    return export_module(m, arch, preset, labels, args.out, args.dtype, args.demo, prov, args.version)
