#!/usr/bin/python3
"""export.py: turn a PyTorch checkpoint into a salient model folder (model.safetensors + manifest.json).

    /usr/bin/python3 models/export/export.py --arch densenet121 --preset chexnet \
        --weights model.pth.tar --out repo/chexnet

Needs Debian's python3-torch and python3-torchvision only. Each family's exporter lives in
salient_export/<family>.py and knows its architectures, presets, key renames and manifest.
A key the architecture does not expect, a missing key or a shape that does not fit is an error
that lists them all. See docs/MODELS.md for step-by-step recipes.
"""
import argparse
import importlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from salient_export.common import ExportError, read_labels  # noqa: E402

# arch -> family module
FAMILIES = {
    "densenet121": "densenet", "densenet161": "densenet", "densenet169": "densenet", "densenet201": "densenet",
    "resnet18": "resnet", "resnet34": "resnet", "resnet50": "resnet", "resnet101": "resnet",
    "swin_t": "swin", "swin_s": "swin", "swin_b": "swin",
    "quadrant_ae": "quadrant_ae",
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", required=True, choices=sorted(FAMILIES), help="architecture")
    ap.add_argument("--preset", help="family preset (densenet: chexnet, xrv, imagenet; swin: linear, swinchex; ...)")
    ap.add_argument("--weights", help="checkpoint: state dict, wrapped state dict, or pickled module; "
                                      "for quadrant_ae a JSON spec (see salient_export/quadrant_ae.py)")
    ap.add_argument("--labels", help="labels, 'a,b,c' or a file with one a line (default: the preset's)")
    ap.add_argument("--out", required=True, help="model folder to create")
    ap.add_argument("--dtype", default="f32", choices=["f32", "f16", "bf16"], help="stored weight type")
    ap.add_argument("--version", default="1", help="model version reported by the server")
    ap.add_argument("--demo", action="store_true", help="mark as demo weights (every response says so)")
    ap.add_argument("--provenance", default=None, help="where the weights came from (free text)")
    args = ap.parse_args(argv)
    try:
        family = importlib.import_module("salient_export." + FAMILIES[args.arch])
        size = family.export(args.arch, args.preset, args.weights, read_labels(args.labels), args)
    except ExportError as e:
        print("export.py: %s" % e, file=sys.stderr)
        return 1
    print("export.py: wrote %s (%d bytes of weights)" % (args.out, size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
