"""Shared pieces of the exporters: checkpoint loading, key checks, safetensors and manifest writing.

Only Debian's python3-torch (and python3-torchvision for the architectures) is needed:
safetensors files are written by hand (8-byte little-endian header length, JSON header, raw data).
"""
import json
import os
import struct
from collections import OrderedDict

import torch


class ExportError(Exception):
    """A problem with the user's checkpoint or arguments; the message says what and where."""


def load_checkpoint(path):
    """Return a flat state dict (name -> tensor) from a .pth/.pt/.tar file holding a state dict,
    a dict wrapping one ('state_dict', 'model', 'model_state_dict', 'net'), or a whole pickled
    module (as torchxrayvision ships some); strips DataParallel's 'module.' prefixes."""
    if not os.path.exists(path):
        raise ExportError("%s: no such file" % path)
    try:
        obj = torch.load(path, map_location="cpu")
    except Exception as e:  # torch raises many types for a bad file; report it plainly
        raise ExportError("%s: cannot be read by torch.load: %s" % (path, e))
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model", "net"):
            if key in obj and isinstance(obj[key], (dict, torch.nn.Module)):
                obj = obj[key]
                if isinstance(obj, torch.nn.Module):
                    obj = obj.state_dict()
                break
    if not isinstance(obj, dict) or not obj:
        raise ExportError("%s: holds no state dict (found %s)" % (path, type(obj).__name__))
    sd = OrderedDict()
    for k, v in obj.items():
        if not torch.is_tensor(v):
            continue
        while k.startswith("module."):
            k = k[len("module."):]
        sd[k] = v
    return sd


def match_state_dict(sd, model, path="checkpoint"):
    """Check sd against model.state_dict(): every key present with the same shape, nothing
    unexpected (num_batches_tracked is ignored). Raises ExportError listing every problem."""
    want = model.state_dict()
    problems = []
    for k, v in want.items():
        if k.endswith("num_batches_tracked"):
            continue
        if k not in sd:
            problems.append("missing tensor '%s' %s" % (k, list(v.shape)))
        elif tuple(sd[k].shape) != tuple(v.shape):
            problems.append("tensor '%s' has shape %s, expected %s" % (k, list(sd[k].shape), list(v.shape)))
    for k in sd:
        if k not in want and not k.endswith("num_batches_tracked"):
            problems.append("unexpected tensor '%s' %s" % (k, list(sd[k].shape)))
    if problems:
        shown = problems[:20]
        more = "" if len(problems) <= 20 else "\n  ... and %d more" % (len(problems) - 20)
        raise ExportError("%s does not fit the architecture:\n  %s%s" % (path, "\n  ".join(shown), more))


_DTYPES = {"f32": (torch.float32, "F32"), "f16": (torch.float16, "F16"), "bf16": (torch.bfloat16, "BF16")}


def write_safetensors(path, tensors, dtype="f32", metadata=None):
    """Write name -> tensor as safetensors in dtype (f32, f16 or bf16); integer buffers such as
    num_batches_tracked are dropped. Returns the file size."""
    tdtype, tag = _DTYPES[dtype]
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs, off = [], 0
    for name, t in tensors.items():
        if not torch.is_floating_point(t):
            continue
        t = t.detach().to(tdtype).contiguous()
        b = t.view(torch.int16).numpy().tobytes() if tdtype == torch.bfloat16 else t.numpy().tobytes()
        header[name] = {"dtype": tag, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    return 8 + len(h) + off


def write_model(out_dir, state_dict, manifest, dtype="f32"):
    """Create out_dir with model.safetensors and manifest.json."""
    os.makedirs(out_dir, exist_ok=True)
    size = write_safetensors(os.path.join(out_dir, "model.safetensors"), state_dict, dtype,
                             {"format": "pt", "exporter": "salient models/export/export.py"})
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    return size



def write_module(out_dir, model, manifest, dtype="f32"):
    """write_model with model's floating-point state (integer buffers such as BatchNorm's
    num_batches_tracked are not weights and stay out)."""
    sd = OrderedDict((k, v) for k, v in model.state_dict().items() if torch.is_floating_point(v))
    return write_model(out_dir, sd, manifest, dtype)


# --- presets and labels of the classifier families (densenet.py, resnet.py) ----------------------

def find_preset(family, presets, preset, default):
    """(name, settings) of family's preset (None: default). Raises ExportError naming the known ones."""
    preset = preset or default
    if preset not in presets:
        raise ExportError("unknown %s preset '%s' (known: %s)" % (family, preset, ", ".join(sorted(presets))))
    return preset, presets[preset]


def preset_labels(preset, labels, p):
    """labels as given, else preset p's default labels; ExportError if there are none."""
    labels = list(labels) if labels else (list(p["labels"]) if p["labels"] else None)
    if not labels:
        raise ExportError("preset '%s' has no default labels: give --labels" % preset)
    return labels


def module_labels(model, labels, preset, p):
    """export_module's labels: those given, else the ones build_model recorded on model, else the
    preset's."""
    if labels is None:
        labels = getattr(model, "salient", {}).get("labels")
    if labels is None:
        labels = preset_labels(preset, None, p)
    return labels


def check_head_labels(sd, head, labels):
    """One label per output of the classifier weight sd[head] (salient's loader insists too)."""
    nout = sd[head].shape[0]
    if len(labels) != nout:
        raise ExportError("%d labels for a classifier with %d outputs (tensor '%s' %s)"
                          % (len(labels), nout, head, list(sd[head].shape)))


def checkpoint_labels(sd, head, labels, preset, p, weights_path):
    """export()'s labels for a checkpoint: those given, else the preset's, checked against the
    classifier weight sd[head]. Raises ExportError if the head is missing or the count is off."""
    if head not in sd:
        raise ExportError("%s: missing tensor '%s' (the classifier head)" % (weights_path, head))
    if not labels:
        labels = p["labels"]
        if not labels:
            raise ExportError("preset '%s' has no default labels: give --labels (%d of them, the classifier's "
                              "outputs)" % (preset, sd[head].shape[0]))
    check_head_labels(sd, head, labels)
    return labels


def read_labels(arg):
    """Labels from 'a,b,c' or from a file with one label a line."""
    if arg is None:
        return None
    if os.path.exists(arg):
        with open(arg) as f:
            labels = [l.strip() for l in f if l.strip()]
    else:
        labels = [l.strip() for l in arg.split(",") if l.strip()]
    if not labels:
        raise ExportError("--labels gives no labels")
    return labels


IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

# ChestX-ray14 labels in CheXNet's output order.
CHEXNET_LABELS = ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
                  "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia"]
# ChestX-ray14 labels in the dataset CSV's (alphabetical) order, as SwinCheX uses them.
CXR14_CSV_LABELS = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Emphysema", "Fibrosis",
                    "Hernia", "Infiltration", "Mass", "Nodule", "Pleural_Thickening", "Pneumonia", "Pneumothorax"]
# torchxrayvision's default pathologies (xrv.datasets.default_pathologies), its 18 outputs.
XRV_LABELS = ["Atelectasis", "Consolidation", "Infiltration", "Pneumothorax", "Edema", "Emphysema", "Fibrosis",
              "Effusion", "Pneumonia", "Pleural_Thickening", "Cardiomegaly", "Nodule", "Mass", "Hernia",
              "Lung Lesion", "Fracture", "Lung Opacity", "Enlarged Cardiomediastinum"]
COVID_LABELS = ["COVID-19", "Normal", "Viral Pneumonia"]
