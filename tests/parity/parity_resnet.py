#!/usr/bin/python3
"""parity_resnet: salient's resnet family against torchvision.

Seeded random ResNet-18 and ResNet-50 COVID-19 / Normal / Viral Pneumonia classifiers (softmax)
and a one-channel ResNet-18 with sigmoid outputs, saved as users have them (DataParallel
'module.' prefixes, a wrapping dict, a plain state dict), exported with export.py and run with
salient-run at batch 1 and 4: logits and probabilities within 1e-4, and the layer3 tap against
the torch intermediate. Then the bad cases: export.py refuses an unexpected tensor and a wrong
shape, and the C loader refuses a label count that does not match fc and an unknown preset.
"""
import os
import subprocess
import sys
import tempfile
from collections import OrderedDict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import paritylib as pl  # noqa: E402
import torch  # noqa: E402

from salient_export import resnet as rn  # noqa: E402

TOL = 1e-4
rep = pl.Report("resnet")


def seeded(model, seed):
    """Random weights scaled so that logits stay O(1-10) as a trained model's do: with torchvision's
    own init and random batch-norm statistics ResNet-50's logits reach 1e4, where fp32 rounding
    alone exceeds 1e-4."""
    torch.manual_seed(seed)
    for p in model.parameters():
        if p.dim() > 1:
            torch.nn.init.kaiming_normal_(p, nonlinearity="relu")
            p.data *= 0.7
        else:
            torch.nn.init.uniform_(p, -0.1, 0.1)
    return pl.randomize_bn(model, seed)


def compare(name, model_dir, model, x, tap="layer3"):
    pl.compare_classifier(rep, name, model_dir, model, x, tap, getattr(model, tap), TOL)


def main():
    tmp = tempfile.mkdtemp(prefix="parity_resnet.")
    g = torch.Generator().manual_seed(1)

    # 1. ResNet-18, COVID-19 / Normal / Viral Pneumonia, DataParallel checkpoint in a dict, 224.
    m = seeded(rn.build_model("resnet18", "covid", None), 1)
    ck = os.path.join(tmp, "r18.pth")
    torch.save({"model_state_dict": OrderedDict(("module." + k, v) for k, v in m.state_dict().items())}, ck)
    r18 = os.path.join(tmp, "r18")
    if pl.export_ok(rep, "resnet18", r18, ck, preset="covid"):
        compare("resnet18", r18, m, torch.randn(4, 3, 224, 224, generator=g))

    # 2. ResNet-50 (Bottleneck), same labels, plain state dict, 160x160.
    m = seeded(rn.build_model("resnet50", "covid", None), 2)
    ck = os.path.join(tmp, "r50.pth")
    torch.save(m.state_dict(), ck)
    r50 = os.path.join(tmp, "r50")
    if pl.export_ok(rep, "resnet50", r50, ck, preset="covid"):
        pl.set_size(r50, 160)
        compare("resnet50", r50, m, torch.randn(4, 3, 160, 160, generator=g))

    # 3. One-channel ResNet-18 with sigmoid outputs (multilabel), 96x96.
    labels = ["opacity", "effusion", "cardiomegaly", "nodule"]
    m = seeded(rn.build_model("resnet18", "multilabel", labels, in_channels=1), 3)
    ck = os.path.join(tmp, "r18g.pth")
    torch.save(m.state_dict(), ck)
    r18g = os.path.join(tmp, "r18g")
    if pl.export_ok(rep, "resnet18", r18g, ck, preset="multilabel", labels=labels):
        pl.set_size(r18g, 96)
        compare("resnet18-gray-sigmoid", r18g, m, torch.randn(4, 1, 96, 96, generator=g), tap="layer2")

    # 4. export.py must refuse a checkpoint that does not fit, naming the tensor.
    sd = m.state_dict()
    bad = OrderedDict(sd)
    bad["layer2.0.conv4.weight"] = torch.zeros(3)
    torch.save(bad, os.path.join(tmp, "bad1.pth"))
    bad = OrderedDict(sd)
    bad["layer3.1.bn2.running_var"] = torch.ones(255)
    torch.save(bad, os.path.join(tmp, "bad2.pth"))
    for f, what in (("bad1.pth", "unexpected tensor 'layer2.0.conv4.weight'"),
                    ("bad2.pth", "tensor 'layer3.1.bn2.running_var' has shape [255], expected [256]")):
        r = pl.export_main(["--arch", "resnet18", "--preset", "multilabel", "--labels", ",".join(labels),
                            "--weights", os.path.join(tmp, f), "--out", os.path.join(tmp, "bad")])
        rep.check("export.py refuses %s" % f, r.returncode != 0 and what in r.stderr, r.stderr.strip()[-300:])
    r = pl.export_main(["--arch", "resnet18", "--preset", "covid", "--weights", ck, "--out", os.path.join(tmp, "bad")])
    rep.check("export.py refuses 3 labels for 4 outputs", r.returncode != 0 and "'fc.weight'" in r.stderr,
              r.stderr.strip()[-300:])

    # 5. The C loader refuses manifests that do not fit, naming what is wrong.
    x = torch.randn(1, 1, 96, 96, generator=g)
    pl.check_load_errors(rep, r18g, tmp, x, (
        ("labels", lambda man: man["labels"].pop(), "tensor 'fc.weight' [4,512] has 4 outputs"),
        ("preset", lambda man: man.__setitem__("preset", "covid19"), "unknown resnet preset 'covid19'"),
        ("arch", lambda man: man["arch"].update(name="resnet50", block="bottleneck", layers=[3, 4, 6, 3]),
         "layer1.0.conv1.weight' has shape [64,64,3,3], expected [64,64,1,1]")))

    subprocess.run(["rm", "-rf", tmp])
    rep.finish()


if __name__ == "__main__":
    main()
