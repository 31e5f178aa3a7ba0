"""load: the PyTorch reference of any salient model folder, and the manifest's preprocessing.

    from salient_export import load
    module, man = load.load_model_folder("models/repo/chexnet-demo")   # eval mode, fp32
    x = load.preprocess(PIL.Image.open("cxr.png"), man)                 # [1, C, H, W]
    probs = load.predict(module, man, x)                                # [1, len(labels)]
    logits, probs = load.outputs(module, man, x)

load_model_folder rebuilds the module from manifest.json alone (family, arch, preset, head,
output, labels; for quadrant_ae the backbones, encoder and classifier), with that family's own
build_model, and loads model.safetensors into it strictly: every tensor of the module must be in
the file with the same shape and nothing else may be (buffers salient derives itself, such as
Swin's relative_position_index, are not expected); F16 and BF16 become F32. Any mismatch is a
LoadError listing every offending tensor.

predict / outputs apply the family module's own post-processing (DenseNet and ResNet
postprocess(), Swin probs(), QuadrantAE outputs()), so the probabilities are what salient's
`probs` output should be, label for label in manifest order.

preprocess implements the manifest's "preprocess" block (models/preprocess.h) with PIL's decoded
pixels and torchvision's tensor transforms, in float32 as a PyTorch user's pipeline runs:
  decode       ImageOps.exif_transpose; channels 3: .convert("RGB") (gray replicated);
               channels 1: gray images as decoded, colour ones the mean of R, G, B
               (torchxrayvision's img.mean(2))
  range        p -> lo + (hi - lo) * p / 255 (ToTensor's [0, 1] by default)
  crop_square  torchxrayvision's XRayCenterCrop (offsets h//2 - s//2, w//2 - s//2)
  resize       [h, w] or resize_shorter N: torchvision Resize (F.interpolate, align_corners=False,
               antialias as the manifest says, default true), bilinear or bicubic
  center_crop  torchvision CenterCrop (offsets round((in - out) / 2))
  mean, std    torchvision Normalize
The range is applied first, as ToTensor and torchxrayvision's normalize do; every later step is
linear, so the order only matters for rounding.
"""
import json
import math
import os
import struct
from collections import OrderedDict

import torch

from .common import ExportError

FAMILIES = ("densenet", "resnet", "swin", "quadrant_ae")


class LoadError(ExportError):
    """A model folder that cannot be rebuilt: unreadable files, an unknown family or a weights
    file that does not fit the manifest's architecture."""


# --- files ------------------------------------------------------------------------------------

_DT = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def read_safetensors(path):
    """name -> float32 tensor from a safetensors file (F32, F16 or BF16), and its metadata."""
    try:
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
            data = f.read()
    except (OSError, ValueError, struct.error) as e:
        raise LoadError("%s: cannot be read as safetensors: %s" % (path, e))
    meta = header.pop("__metadata__", {})
    out = OrderedDict()
    for name, h in header.items():
        if h.get("dtype") not in _DT:
            raise LoadError("%s: tensor '%s' has dtype %s (F32, F16 or BF16 expected)" % (path, name, h.get("dtype")))
        b, e = h["data_offsets"]
        if not 0 <= b <= e <= len(data):
            raise LoadError("%s: tensor '%s' lies outside the file" % (path, name))
        t = torch.frombuffer(bytearray(data[b:e]), dtype=_DT[h["dtype"]]) if e > b else torch.zeros(0)
        out[name] = t.to(torch.float32).reshape(h["shape"])
    return out, meta


def read_manifest(model_dir):
    path = os.path.join(model_dir, "manifest.json")
    try:
        with open(path) as f:
            return json.load(f, object_pairs_hook=OrderedDict)
    except (OSError, ValueError) as e:
        raise LoadError("%s: %s" % (path, e))


# --- one builder per family -------------------------------------------------------------------

def _densenet(man, sd):
    from . import densenet as dn
    a = dict(man.get("arch") or {})
    name = a.pop("name", "densenet121")
    cfg = {k: (tuple(v) if k == "block_config" else v) for k, v in a.items()
           if k in ("growth_rate", "block_config", "num_init_features", "bn_size", "in_channels")}
    out = man.get("output") or {}
    preset = man.get("preset") or "chexnet"
    m = dn.build_model(name if name in dn.ARCHS else "densenet121", preset, man.get("labels"),
                       activation=out.get("activation", dn.PRESETS.get(preset, {}).get("activation", "sigmoid")),
                       **cfg)
    calibrated = out.get("calibration", dn.PRESETS.get(preset, {}).get("calibration")) == "op_threshs"
    if calibrated and m.op_threshs is None:
        del m.op_threshs
        m.register_buffer("op_threshs", torch.full((len(man["labels"]),), 0.5))
    elif not calibrated:
        m.op_threshs = None  # a None buffer is left out of the state dict: plain sigmoid outputs
    return m, ()


def _resnet(man, sd):
    from . import resnet as rn
    a = man.get("arch") or {}
    name = a.get("name", "resnet18")
    preset = man.get("preset") or "covid"
    activation = (man.get("output") or {}).get("activation", rn.PRESETS.get(preset, {}).get("activation", "softmax"))
    in_c = int(a.get("in_channels", 3))
    if name in rn.ARCHS and (a.get("block") in (None, rn.ARCHS[name][0])) and \
            (a.get("layers") is None or tuple(a["layers"]) == rn.ARCHS[name][1]):
        m = rn.build_model(name, preset, man.get("labels"), in_channels=in_c, activation=activation)
    else:  # a custom depth: the same class, configured from the manifest
        m = rn.ResNet(a["block"], a["layers"], in_c, len(man["labels"]), activation).eval()
    return m, ()


def _swin(man, sd):
    from . import swin
    a = dict(man.get("arch") or {})
    name = a.pop("name", "swin_t")
    head = man.get("head") or {}
    kw = {}
    if "hidden" in head:
        kw["head_hidden"] = list(head["hidden"])
    cfg = {k: v for k, v in a.items() if k in swin.ARCHS["swin_t"]}
    m = swin.build_model(name if name in swin.ARCHS else "swin_t", man.get("preset"), man.get("labels"), **kw, **cfg)
    return m, (swin._DERIVED,)


def _quadrant_ae(man, sd):
    from . import quadrant_ae as qae
    backbones = []
    for b in man["backbones"]:
        spec = dict(b["spec"])
        name = spec.pop("name", "")
        backbones.append(dict(family=b["family"], arch=name, **spec))
    enc = man["encoder"]
    clf = man["classifier"]
    if clf["kind"] == "svm":
        classifier = dict(kind="svm", support_vectors=sd.get("svm.support_vectors"), dual_coef=sd.get("svm.dual_coef"),
                          intercept=sd.get("svm.intercept"), n_support=clf["n_support"], kernel=clf["kernel"],
                          gamma=clf.get("gamma", 1.0), coef0=clf.get("coef0", 0.0), degree=clf.get("degree", 3),
                          decision_function_shape=clf.get("decision_function_shape", "ovr"))
        missing = [k for k in ("support_vectors", "dual_coef", "intercept") if classifier[k] is None]
        if clf.get("scaler"):
            classifier.update(scaler_mean=sd.get("svm.scaler_mean"), scaler_scale=sd.get("svm.scaler_scale"))
            missing += [k for k in ("scaler_mean", "scaler_scale") if classifier[k] is None]
        if missing:
            raise LoadError("missing tensor(s) %s" % ", ".join("'svm.%s'" % k for k in missing))
    else:
        layers = clf["layers"]
        classifier = dict(kind=clf["kind"], hidden=[l["out"] for l in layers[:-1]],
                          activation=[l.get("activation", "relu") for l in layers[:-1]])
        if clf["kind"] == "slp":
            del classifier["hidden"], classifier["activation"]
    pre = man.get("preprocess") or {}
    size = pre.get("center_crop") or pre.get("resize")
    kw = {"input_size": size} if size else {}
    m = qae.build_model("quadrant_ae", man.get("preset"), man.get("labels"), backbones=backbones,
                        channels=int(man["backbones"][0]["spec"].get("in_channels", 3)),
                        encoder=[l["out"] for l in enc], activation=[l.get("activation", "relu") for l in enc],
                        classifier=classifier, **kw)
    # leaky_relu's slope is a manifest number, not a build_model option
    for seq, layers in ((m.encoder, enc), (getattr(m, "classifier", None), clf.get("layers") or [])):
        lin = [i for i, mod in enumerate(seq or []) if isinstance(mod, torch.nn.Linear)]
        for i, l in zip(lin, layers):
            if l.get("activation") == "leaky_relu" and "negative_slope" in l:
                seq[i + 1].negative_slope = float(l["negative_slope"])
    return m, ()


_BUILDERS = {"densenet": _densenet, "resnet": _resnet, "swin": _swin, "quadrant_ae": _quadrant_ae}


def check_state_dict(sd, module, origin, derived=()):
    """Every floating-point tensor of module must be in sd with its shape, and sd must hold
    nothing else (integer buffers such as num_batches_tracked, and names matching one of the
    `derived` regexes, are not expected in the file). Raises LoadError listing every problem."""
    want = OrderedDict((k, v) for k, v in module.state_dict().items()
                       if torch.is_floating_point(v) and not any(r.search(k) for r in derived))
    problems = []
    for k, v in want.items():
        if k not in sd:
            problems.append("missing tensor '%s' %s" % (k, list(v.shape)))
        elif tuple(sd[k].shape) != tuple(v.shape):
            problems.append("tensor '%s' has shape %s, expected %s" % (k, list(sd[k].shape), list(v.shape)))
    problems += ["unexpected tensor '%s' %s" % (k, list(v.shape)) for k, v in sd.items() if k not in want]
    if problems:
        more = "" if len(problems) <= 20 else "\n  ... and %d more" % (len(problems) - 20)
        raise LoadError("%s does not fit the manifest's architecture:\n  %s%s" % (origin, "\n  ".join(problems[:20]),
                                                                                 more))


def load_model_folder(model_dir):
    """(torch module in eval mode, manifest dict) for the salient model folder model_dir
    (manifest.json + model.safetensors), any family. The module's weights are exactly the file's,
    in float32. Raises LoadError (an ExportError) when the folder cannot be rebuilt."""
    man = read_manifest(model_dir)
    family = man.get("family")
    if family not in _BUILDERS:
        raise LoadError("%s: family '%s' has no PyTorch reference (known: %s)" % (model_dir, family,
                                                                                  ", ".join(FAMILIES)))
    wpath = os.path.join(model_dir, "model.safetensors")
    sd, _ = read_safetensors(wpath)
    try:
        module, derived = _BUILDERS[family](man, sd)
    except (KeyError, TypeError, ValueError) as e:
        raise LoadError("%s: manifest does not describe a %s model: %s %s" % (model_dir, family, type(e).__name__, e))
    except ExportError as e:
        raise LoadError("%s: %s" % (model_dir, e))
    check_state_dict(sd, module, wpath, derived)
    module.load_state_dict(sd, strict=False)  # strictness checked above (derived buffers stay as built)
    module.float().eval()
    return module, man


# --- running it -------------------------------------------------------------------------------

def outputs(module, manifest, x):
    """(logits, probs) of module on the preprocessed batch x [N, C, H, W], as salient-run writes
    them: logits are the head's raw outputs, probs the manifest's post-processing."""
    family = manifest.get("family")
    with torch.no_grad():
        if family in ("densenet", "resnet"):
            logits = module(x)
            return logits, module.postprocess(logits)
        if family == "swin":
            logits = module(x)
            return logits, module.probs(logits)
        if family == "quadrant_ae":
            out = module.outputs(x)
            return out["logits"], out["probs"]
    raise LoadError("family '%s' has no PyTorch reference (known: %s)" % (family, ", ".join(FAMILIES)))


def predict(module, manifest, x):
    """Label probabilities [N, len(labels)] of module on the preprocessed batch x."""
    return outputs(module, manifest, x)[1]


# --- preprocessing ----------------------------------------------------------------------------

def pixels(pil_image, channels):
    """PIL's decoded pixels as salient sees them: float32 [C, H, W] in 0..255 (EXIF orientation
    applied, alpha dropped; channels 1: gray as decoded, colour as the mean of R, G, B)."""
    import torchvision.transforms.functional as TF
    from PIL import ImageOps
    im = ImageOps.exif_transpose(pil_image)
    if channels == 3:
        return TF.pil_to_tensor(im.convert("RGB")).float()
    if channels != 1:
        raise LoadError("preprocess: channels must be 1 or 3, not %r" % (channels,))
    if im.mode in ("L", "LA"):
        return TF.pil_to_tensor(im.convert("L")).float()
    return TF.pil_to_tensor(im.convert("RGB")).float().mean(0, keepdim=True)  # torchxrayvision: img.mean(2)


def preprocess_pixels(x, pre):
    """The manifest's preprocess block (a dict) on decoded pixels x [C, H, W] (float, 0..255):
    the network's input [C, out_h, out_w], float32."""
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode
    lo, hi = [float(v) for v in pre.get("range", [0.0, 1.0])]
    x = x.float()
    x = x / 255.0 if (lo, hi) == (0.0, 1.0) else lo + (hi - lo) * x / 255.0
    if pre.get("crop_square"):
        h, w = x.shape[1:]
        s = min(h, w)
        y0, x0 = h // 2 - s // 2, w // 2 - s // 2  # XRayCenterCrop
        x = x[:, y0:y0 + s, x0:x0 + s]
    interp = {"bilinear": InterpolationMode.BILINEAR,
              "bicubic": InterpolationMode.BICUBIC}[pre.get("interpolation", "bilinear")]
    antialias = bool(pre.get("antialias", True))
    if pre.get("resize"):
        x = TF.resize(x, [int(v) for v in pre["resize"]], interpolation=interp, antialias=antialias)
    elif pre.get("resize_shorter"):
        x = TF.resize(x, int(pre["resize_shorter"]), interpolation=interp, antialias=antialias)
    if pre.get("center_crop"):
        x = TF.center_crop(x, [int(v) for v in pre["center_crop"]])
    if "mean" in pre or "std" in pre:
        c = x.shape[0]
        mean = [float(v) for v in pre.get("mean", [0.0] * c)]
        std = [float(v) for v in pre.get("std", [1.0] * c)]
        x = TF.normalize(x, mean, std)
    return x.contiguous()


def preprocess(pil_image, manifest):
    """A PIL image -> the network's input [1, C, H, W] (float32) as the manifest's "preprocess"
    block says (manifest: the whole manifest, or just its preprocess block)."""
    pre = manifest.get("preprocess", manifest) if isinstance(manifest, dict) else manifest
    x = pixels(pil_image, int(pre.get("channels", 3)))
    return preprocess_pixels(x, pre)[None]


def input_scale(manifest):
    """The size of one 'normalised unit' of the input: 1, or for a wide range such as
    torchxrayvision's [-1024, 1024] its half-width, to compare preprocessing errors fairly."""
    pre = manifest.get("preprocess", manifest)
    lo, hi = [float(v) for v in pre.get("range", [0.0, 1.0])]
    return max(1.0, (hi - lo) / 2.0) if math.isfinite(hi - lo) else 1.0
