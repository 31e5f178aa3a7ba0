"""ResNet exporter: torchvision ResNet-18/34 (BasicBlock) and 50/101 (Bottleneck) classifiers.

    build_model("resnet18", "covid", None)                 -> eval-mode reference module
    export_module(model, "resnet18", "covid", None, "repo/covid-resnet18")
    export("resnet50", "covid", "model.pth", None, args)  # from export.py

The reference module's forward returns the logits; predict(x) applies the manifest's output
activation (softmax over the labels, or a sigmoid per label). Checkpoints: torchvision state
dicts, with or without DataParallel's 'module.' prefix or a wrapping dict; any input channel
count (read off conv1.weight).
"""
import os
from collections import OrderedDict

import torch
import torchvision

from .common import (COVID_LABELS, IMAGENET_MEAN, IMAGENET_STD, ExportError, check_head_labels, checkpoint_labels,
                     find_preset, load_checkpoint, match_state_dict, module_labels, preset_labels, write_module)

ARCHS = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
}

_IMAGENET_PRE = {"channels": 3, "resize_shorter": 256, "interpolation": "bilinear", "antialias": True,
                 "center_crop": [224, 224], "mean": IMAGENET_MEAN, "std": IMAGENET_STD}
PRESETS = {
    "covid": dict(labels=COVID_LABELS, activation="softmax", task="classification", preprocess=_IMAGENET_PRE),
    "imagenet": dict(labels=None, activation="softmax", task="classification", preprocess=_IMAGENET_PRE),
    "multilabel": dict(labels=None, activation="sigmoid", task="multilabel", preprocess=_IMAGENET_PRE),
}
PRESETS["generic"] = PRESETS["imagenet"]


class ResNet(torchvision.models.ResNet):
    """torchvision's ResNet with a configurable input channel count and the manifest's output
    activation in predict(); state dict names are torchvision's."""

    def __init__(self, block="basic", layers=(2, 2, 2, 2), in_channels=3, num_classes=1000, activation="softmax"):
        blk = torchvision.models.resnet.BasicBlock if block == "basic" else torchvision.models.resnet.Bottleneck
        super().__init__(blk, list(layers), num_classes=num_classes)
        if in_channels != 3:
            self.conv1 = torch.nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.activation = activation

    def feature_map(self, x):
        """layer4's output, NCHW: what the C backbone returns."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def postprocess(self, logits):
        if self.activation == "softmax":
            return torch.softmax(logits, dim=1)
        if self.activation == "sigmoid":
            return torch.sigmoid(logits)
        return logits

    def predict(self, x):
        return self.postprocess(self.forward(x))


def _preset(preset):
    return find_preset("resnet", PRESETS, preset, "covid")


def build_model(arch, preset, labels, **config):
    """An eval-mode reference ResNet for arch ('resnet18', 'resnet34', 'resnet50', 'resnet101') and
    preset ('covid', 'imagenet', 'multilabel'). config: in_channels, activation ('softmax' |
    'sigmoid' | 'none'). Raises ExportError for an unknown arch, preset or option."""
    if arch not in ARCHS:
        raise ExportError("unknown resnet arch '%s' (known: %s)" % (arch, ", ".join(sorted(ARCHS))))
    preset, p = _preset(preset)
    labels = preset_labels(preset, labels, p)
    block, layers = ARCHS[arch]
    in_channels = config.pop("in_channels", 3)
    activation = config.pop("activation", p["activation"])
    if config:
        raise ExportError("unknown resnet option(s) %s" % ", ".join(sorted(config)))
    m = ResNet(block, layers, in_channels, len(labels), activation)
    m.salient = dict(arch=arch, preset=preset, labels=labels,
                     config=dict(block=block, layers=list(layers), in_channels=in_channels))
    return m.eval()


def infer_config(sd):
    """block type, blocks per layer and input channels read off a state dict."""
    if "conv1.weight" not in sd:
        raise ExportError("not a ResNet checkpoint: no tensor 'conv1.weight'")
    layers = []
    for i in range(1, 5):
        n = 0
        while ("layer%d.%d.conv1.weight" % (i, n)) in sd:
            n += 1
        layers.append(n)
    block = "bottleneck" if "layer1.0.conv3.weight" in sd else "basic"
    return dict(block=block, layers=layers, in_channels=int(sd["conv1.weight"].shape[1]))


def manifest_for(model, arch, preset, labels, demo=False, provenance=None, version="1", preprocess=None):
    """The manifest.json object for a torchvision-named ResNet."""
    preset, p = _preset(preset)
    sd = model.state_dict()
    cfg = infer_config(sd)
    check_head_labels(sd, "fc.weight", labels)
    pre = dict(preprocess or p["preprocess"])
    if cfg["in_channels"] == 1:
        pre["channels"] = 1
        if "mean" in pre:
            pre["mean"], pre["std"] = pre["mean"][:1], pre["std"][:1]
    arch_obj = OrderedDict([("name", arch), ("block", cfg["block"]), ("layers", cfg["layers"]),
                            ("in_channels", cfg["in_channels"])])
    return OrderedDict([
        ("family", "resnet"),
        ("task", p["task"]),
        ("version", str(version)),
        ("demo", bool(demo)),
        ("provenance", provenance or "unknown"),
        ("arch", arch_obj),
        ("preset", preset),
        ("labels", list(labels)),
        ("output", {"activation": getattr(model, "activation", p["activation"])}),
        ("preprocess", pre),
        ("attention", {"layers": ["layer1", "layer2", "layer3", "layer4"], "cam": "linear", "features": "features"}),
    ])


def export_module(model, arch, preset, labels, out_dir, dtype="f32", demo=False, provenance=None, version="1",
                  preprocess=None):
    """Write model (from build_model, or a torchvision ResNet) as a salient model folder. labels
    None: those build_model recorded, else the preset's. preprocess overrides the preset's
    preprocessing block. Returns bytes written."""
    labels = module_labels(model, labels, *_preset(preset))
    man = manifest_for(model, arch, preset, labels, demo, provenance, version, preprocess)
    return write_module(out_dir, model, man, dtype)


def export(arch, preset, weights_path, labels, args):
    """export.py's entry: read the checkpoint, check it against the architecture, write the folder."""
    preset, p = _preset(preset)
    if not weights_path:
        raise ExportError("--weights is required for resnet")
    sd = load_checkpoint(weights_path)
    labels = checkpoint_labels(sd, "fc.weight", labels, preset, p, weights_path)
    in_c = int(sd["conv1.weight"].shape[1]) if "conv1.weight" in sd else 3
    m = build_model(arch, preset, labels, in_channels=in_c)
    match_state_dict(sd, m, weights_path)
    m.load_state_dict(sd, strict=False)
    prov = args.provenance or "exported from %s" % os.path.basename(weights_path)
    return export_module(m, arch, preset, labels, args.out, args.dtype, args.demo, prov, args.version)
