#!/usr/bin/python3
"""parity_densenet: salient's densenet family against torchvision / torchxrayvision semantics.

Seeded random DenseNets (non-trivial batch-norm statistics) are saved as a user would have them
(CheXNet-era key names under 'module.densenet121.', a whole pickled module of a class that is not
importable as torchxrayvision ships them, a plain torchvision state dict), exported with
export.py and run with salient-run at batch 1 and 4: logits and probabilities within 1e-4, and
the denseblock2 tap against the torch intermediate. Then the bad cases: export.py refuses an
unexpected tensor and a wrong shape, and the C loader refuses a label count that does not match
the classifier, an unknown preset and a missing tensor, each naming the culprit.
"""
import math
import os
import pickle
import subprocess
import sys
import tempfile
from collections import OrderedDict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import paritylib as pl  # noqa: E402
import torch  # noqa: E402

from salient_export import densenet as dn  # noqa: E402
from salient_export.common import XRV_LABELS  # noqa: E402

TOL = 1e-4
rep = pl.Report("densenet")


def seeded(model, seed):
    torch.manual_seed(seed)
    for p in model.parameters():  # keep activations O(1) through 100+ layers
        if p.dim() > 1:
            torch.nn.init.kaiming_uniform_(p, a=math.sqrt(5))
        else:
            torch.nn.init.uniform_(p, -0.1, 0.1)
    return pl.randomize_bn(model, seed)


def compare(name, model_dir, model, x, tap="denseblock2"):
    pl.compare_classifier(rep, name, model_dir, model, x, tap, getattr(model.features, tap), TOL)


def main():
    tmp = tempfile.mkdtemp(prefix="parity_densenet.")
    g = torch.Generator().manual_seed(1)

    # 1. DenseNet-121, CheXNet preset, checkpoint with CheXNet's old names under DataParallel.
    m = seeded(dn.build_model("densenet121", "chexnet", None), 1)
    old = OrderedDict()
    for k, v in m.state_dict().items():
        k = k.replace("norm1.", "norm.1.").replace("norm2.", "norm.2.").replace("conv1.", "conv.1.")
        k = k.replace("conv2.", "conv.2.").replace("classifier.", "classifier.0.")
        old["module.densenet121." + k] = v
    ck = os.path.join(tmp, "chexnet.pth.tar")
    torch.save({"epoch": 3, "state_dict": old}, ck)
    if pl.export_ok(rep, "densenet121", os.path.join(tmp, "chexnet"), ck, preset="chexnet"):
        x = torch.randn(4, 3, 224, 224, generator=g)
        compare("chexnet", os.path.join(tmp, "chexnet"), m, x)

    # 2. torchxrayvision: one channel, [-1024, 1024], op_threshs with a NaN, pickled whole module.
    op = [0.05 + 0.9 * i / 17 for i in range(18)]
    op[15] = float("nan")
    m = seeded(dn.build_model("densenet121", "xrv", None, op_threshs=op), 2)
    ck = os.path.join(tmp, "xrv-densenet121.pt")
    save_foreign_module(m, ck)
    if pl.export_ok(rep, "densenet121", os.path.join(tmp, "xrv"), ck, preset="xrv"):
        x = (torch.rand(4, 1, 224, 224, generator=g) * 2 - 1) * 1024
        compare("xrv", os.path.join(tmp, "xrv"), m, x)
        lg, pr, _ = pl.reference(m, x[:1])
        rep.check("xrv NaN threshold gives 0.5 (label %r)" % XRV_LABELS[15], abs(pr[0, 15].item() - 0.5) < 1e-7)

    # 3. A small configuration (the demo models' kind), plain torchvision state dict, 96x96.
    labels = ["a", "b", "c", "d", "e"]
    m = seeded(dn.build_model("densenet121", "multilabel", labels, growth_rate=12, block_config=(2, 3, 4, 3),
                              num_init_features=24, bn_size=2), 3)
    ck = os.path.join(tmp, "small.pth")
    torch.save(m.state_dict(), ck)
    small = os.path.join(tmp, "small")
    if pl.export_ok(rep, "densenet121", small, ck, preset="multilabel", labels=labels):
        pl.set_size(small, 96)
        x = torch.randn(4, 3, 96, 96, generator=g)
        compare("small", small, m, x, tap="denseblock3")

    # 4. export.py must refuse a checkpoint that does not fit, naming the tensor.
    sd = m.state_dict()
    bad = OrderedDict(sd)
    bad["features.denseblock1.denselayer1.extra.weight"] = torch.zeros(3)
    torch.save(bad, os.path.join(tmp, "bad1.pth"))
    bad = OrderedDict(sd)
    bad["features.norm5.weight"] = torch.zeros(7)
    torch.save(bad, os.path.join(tmp, "bad2.pth"))
    for f, what in (("bad1.pth", "unexpected tensor 'features.denseblock1.denselayer1.extra.weight'"),
                    ("bad2.pth", "tensor 'features.norm5.weight' has shape [7]")):
        r = pl.export_main(["--arch", "densenet121", "--preset", "multilabel", "--labels", ",".join(labels),
                            "--weights", os.path.join(tmp, f), "--out", os.path.join(tmp, "bad")])
        rep.check("export.py refuses %s" % f, r.returncode != 0 and what in r.stderr, r.stderr.strip()[-300:])

    # 5. The C loader refuses manifests and weights that do not fit, naming what is wrong.
    x = torch.randn(1, 3, 96, 96, generator=g)
    pl.check_load_errors(rep, small, tmp, x, (
        ("labels", lambda man: man["labels"].append("f"), "'classifier.weight'"),
        ("preset", lambda man: man.__setitem__("preset", "chexpert"), "unknown densenet preset 'chexpert'"),
        ("arch", lambda man: man["arch"].__setitem__("growth_rate", 16),
         "tensor 'features.denseblock1.denselayer1.conv1.weight' has shape")))
    d = os.path.join(tmp, "bad-missing")
    subprocess.run(["cp", "-r", small, d], check=True)
    w, _ = pl.read_safetensors(os.path.join(d, "model.safetensors"))
    del w["features.transition2.conv.weight"]
    pl.write_safetensors(os.path.join(d, "model.safetensors"), w)
    err = pl.load_error(d, x)
    rep.check("salient-run refuses a missing tensor", err is not None and "features.transition2.conv.weight" in err,
              (err or "loaded")[-300:])

    subprocess.run(["rm", "-rf", tmp])
    rep.finish()


def save_foreign_module(model, path):
    """torch.save a whole module whose class lives in a module the exporter cannot import, as
    torchxrayvision's released checkpoints are."""
    import types
    name = "xrv_not_installed"
    mod = types.ModuleType(name)
    cls = type("DenseNet", (dn.DenseNet,), {"__module__": name})
    mod.DenseNet = cls
    sys.modules[name] = mod
    try:
        model.__class__ = cls
        torch.save(model, path, pickle_module=pickle)
    finally:
        model.__class__ = dn.DenseNet
        del sys.modules[name]


if __name__ == "__main__":
    main()
