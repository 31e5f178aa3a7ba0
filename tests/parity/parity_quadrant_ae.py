#!/usr/bin/python3
"""parity_quadrant_ae.py: quadrant_ae (quadrants -> backbones -> AE encoder -> SLP/MLP/SVM) against PyTorch and scikit-learn.

Each case builds the pipeline in PyTorch with seeded weights (batch norms with non-trivial
statistics), saves its parts as a user would have them (torchvision backbone checkpoints with
their heads, a whole autoencoder, a classifier state dict or a fitted scikit-learn SVC), exports
them with export.py --arch quadrant_ae and a JSON spec, runs salient-run at batch 1 and 4 and
compares logits, probs and the taps (stitched backbone maps, features, code). The SVM cases also
check the torch reference and salient against SVC.decision_function itself. Last, manifests that
do not fit must fail to load with a message naming the problem.
"""
import argparse
import copy
import json
import os
import pickle
import shutil
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import paritylib as pl  # noqa: E402
from salient_export import quadrant_ae as qae  # noqa: E402
from salient_export.common import ExportError  # noqa: E402

TOL = 1e-4
SIZE = 128  # quadrants of 64x64: small enough for 2 cores
SMALL_DENSENET = {"family": "densenet", "arch": "densenet", "growth_rate": 8, "block_config": [2, 2],
                  "num_init_features": 16, "bn_size": 2}

try:
    import numpy as np
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC
except ImportError:  # the SVM cases need scikit-learn (Debian: python3-sklearn)
    SVC = None


def seeded_model(seed, labels=None, **config):
    """build_model with seeded weights, batch norms randomised, and every Linear layer rescaled
    so that its outputs over a calibration batch have mean 0 and deviation 1 per unit: with
    torch's default initialisation the pooled features barely vary between images and most
    ReLUs are dead, so the head's outputs would hardly depend on the input and a wrong
    activation or feature order could pass unnoticed."""
    torch.manual_seed(seed)
    m = qae.build_model("quadrant_ae", "covid", labels, input_size=SIZE, **config)
    for i, b in enumerate(m.backbones):
        pl.randomize_bn(b, seed + 1 + i)
    m.eval()
    x = torch.randn(6, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed + 100))
    mods = list(m.encoder) + (list(m.classifier) if m.kind != "svm" else [])
    lin = [mod for mod in mods if isinstance(mod, torch.nn.Linear)]
    with torch.no_grad():
        h = m.outputs(x)["features"]
        for mod in mods:
            if isinstance(mod, torch.nn.Linear):
                # the code and the logits a little smaller: the features' float32 rounding
                # (~1e-5) is amplified by the same gain as their variation between images
                target = 0.25 if mod is lin[-1] or mod is m.encoder[len(m.encoder) - 2] else 1.0
                z = mod(h)
                mu, sd = z.mean(0), z.std(0) / target + 1e-3
                mod.weight.data /= sd[:, None]
                mod.bias.data = (mod.bias.data - mu) / sd
            h = mod(h)
    return m


def save_parts(m, tmp, svm_file=None, classifier_kind=None):
    """The model's parts as user checkpoints, and the export spec naming them."""
    spec = {"input_size": [SIZE, SIZE], "backbones": [], "autoencoder": {}, "classifier": {}}
    g = torch.Generator().manual_seed(99)
    for i, b in enumerate(m.backbones):
        sd = copy.deepcopy(b.state_dict())
        # a torchvision checkpoint still has its head: the exporter must drop it
        head = "classifier" if b.family == "densenet" else "fc"
        sd[head + ".weight"] = torch.randn(10, b.out_features, generator=g)
        sd[head + ".bias"] = torch.randn(10, generator=g)
        path = os.path.join(tmp, "backbone%d.pth" % i)
        torch.save({"state_dict": sd}, path)
        spec["backbones"].append({"family": b.family, "checkpoint": os.path.basename(path)})
    ae = {}
    lin = [mod for mod in m.encoder if isinstance(mod, torch.nn.Linear)]
    for j, mod in enumerate(lin):
        ae["encoder.%d.weight" % (2 * j)] = mod.weight.detach().clone()
        ae["encoder.%d.bias" % (2 * j)] = mod.bias.detach().clone()
    for j, mod in enumerate(reversed(lin)):  # the decoder half, which the export ignores
        ae["decoder.%d.weight" % (2 * j)] = torch.randn(mod.in_features, mod.out_features, generator=g)
    torch.save(ae, os.path.join(tmp, "ae.pth"))
    spec["autoencoder"] = {"checkpoint": "ae.pth", "activation": m.encoder_acts}
    if m.kind == "svm":
        spec["classifier"] = {"kind": "svm", "file": svm_file}
    else:
        torch.save(m.classifier.state_dict(), os.path.join(tmp, "head.pth"))
        spec["classifier"] = {"kind": m.kind, "checkpoint": "head.pth", "activation": m.classifier_acts[:-1] or "relu"}
    path = os.path.join(tmp, "spec.json")
    with open(path, "w") as f:
        json.dump(spec, f)
    return path


def export_here(out, spec, labels=None):
    """export.py's work without a second Python start (cases (a) and (b) run export.py itself)."""
    args = argparse.Namespace(out=out, dtype="f32", demo=False, provenance=None, version="1")
    return qae.export("quadrant_ae", "covid", spec, labels, args)


def compare(rep, name, m, model_dir, x, svc=None):
    """salient-run against the torch module (and svc, if given) at batch 1 and 4."""
    taps = ["backbone%d" % i for i in range(len(m.backbones))] + ["features", "code"]
    with torch.no_grad():
        full = m.outputs(x[:4], maps=True)
    for n in (1, 4):
        xb = x[:n]
        ref = {k: v[:n] for k, v in full.items()}  # torch's images are independent of the batch
        got = pl.salient_run(model_dir, inputs=xb, taps=taps, max_batch=4)
        rep.close("logits %s batch %d" % (name, n), got["logits"], ref["logits"], TOL)
        rep.close("probs %s batch %d" % (name, n), got["probs"], ref["probs"], TOL)
        rep.close("code %s batch %d" % (name, n), got["tap/code"], ref["code"], TOL)
        rep.close("features %s batch %d" % (name, n), got["tap/features"], ref["features"], TOL)
        # the head alone, fed with salient's own features: no backbone rounding in the way
        with torch.no_grad():
            code = m.encoder(got["tap/features"])
            head = m.svm(code) if m.kind == "svm" else m.classifier(code)
        rep.close("head_on_salient_features %s batch %d" % (name, n), got["logits"], head, TOL)
        for i in range(len(m.backbones)):
            # salient-run writes feature maps NCHW, as torch has them
            rep.close("backbone%d %s batch %d" % (i, name, n), got["tap/backbone%d" % i], ref["backbone%d" % i], TOL)
        if svc is not None:
            # the SVM arithmetic alone: sklearn on salient's own code
            dec = torch.from_numpy(np.asarray(svc.decision_function(got["tap/code"].double().numpy())))
            rep.close("svm_vs_sklearn %s batch %d" % (name, n), got["logits"], dec.reshape(got["logits"].shape),
                      TOL)


def fit_svc(m, kind, shape, scaler, seed):
    """An SVC fitted on the torch model's codes for random images (labels from a random
    projection, so there is something to learn); also checks the torch SVMHead layout against
    SVC.decision_function on held-out codes."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(26, 3, SIZE, SIZE, generator=g)
    with torch.no_grad():
        code = m.outputs(x)["code"].double()
    K = m.svm.nclass
    proj = torch.randn(code.shape[1], K, generator=g, dtype=torch.float64)
    y = (code @ proj).argmax(1).numpy()
    y[:K] = range(K)  # every class present
    svc = SVC(kernel=kind, gamma="scale", C=1.0, decision_function_shape=shape)
    est = make_pipeline(StandardScaler(), svc) if scaler else svc
    est.fit(code[:20].numpy(), y[:20])
    return est, code[20:]


def svm_case(rep, tmp, name, kind, shape, scaler, fmt, config, seed, labels=None):
    m = seeded_model(seed, labels, classifier={"kind": "svm", "kernel": kind, "decision_function_shape": shape},
                     **config)
    est, held = fit_svc(m, kind, shape, scaler, seed)
    svc = est.steps[-1][1] if scaler else est
    if fmt == "pkl":
        svm_file = "svm.pkl"
        with open(os.path.join(tmp, svm_file), "wb") as f:
            pickle.dump(est, f)
    else:
        svm_file = "svm.json"
        d = {k: (getattr(svc, k).tolist() if hasattr(getattr(svc, k), "tolist") else getattr(svc, k))
             for k in ("support_vectors_", "dual_coef_", "intercept_", "n_support_", "_gamma", "kernel", "coef0",
                       "degree", "classes_", "decision_function_shape")}
        if scaler:
            sc = est.steps[0][1]
            d["scaler"] = {"mean_": sc.mean_.tolist(), "scale_": sc.scale_.tolist()}
        with open(os.path.join(tmp, svm_file), "w") as f:
            json.dump(d, f)
    params, _ = qae._svm_params(os.path.join(tmp, svm_file))
    m.svm = qae.SVMHead(**params)
    # the torch reference against scikit-learn itself
    with torch.no_grad():
        mine = m.svm(held.float()).double()
    want = torch.from_numpy(np.asarray(est.decision_function(held.numpy()))).reshape(mine.shape)
    rep.close("torch_vs_sklearn %s" % name, mine, want, TOL)
    if shape == "ovr":
        svc.break_ties = True
        pred = torch.from_numpy(np.asarray(est.predict(held.numpy())))
        rep.check("probs argmax = SVC(break_ties=True).predict %s" % name,
                  bool((m.svm.probs(held.float()).argmax(1) == pred).all()))
    out = os.path.join(tmp, "model")
    export_here(out, save_parts(m, tmp, svm_file), labels)
    x = torch.randn(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed + 7))
    # the head is fed with salient's code, so compare its SVM with sklearn on that code
    compare(rep, name, m, out, x, svc=est)
    return out


def expect_load_error(rep, what, model_dir, edit, needle):
    """Copy model_dir, apply edit(manifest dict, dir), and require salient-run to fail naming needle."""
    with tempfile.TemporaryDirectory() as tmp:
        d = os.path.join(tmp, "bad")
        shutil.copytree(model_dir, d)
        with open(os.path.join(d, "manifest.json")) as f:
            man = json.load(f)
        edit(man, d)
        with open(os.path.join(d, "manifest.json"), "w") as f:
            json.dump(man, f)
        try:
            pl.salient_run(d, inputs=torch.zeros(1, 3, SIZE, SIZE))
            rep.fail("bad manifest (%s) loaded" % what)
        except RuntimeError as e:
            msg = str(e)
            rep.check("bad manifest (%s) refused" % what, needle in msg, msg if needle not in msg else needle)


def main():
    rep = pl.Report("quadrant_ae")
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        # (a) one small DenseNet backbone + SLP
        a = os.path.join(tmp, "a")
        os.makedirs(a)
        m = seeded_model(10, backbones=[SMALL_DENSENET], encoder=[48, 24, 12], classifier={"kind": "slp"})
        out_a = os.path.join(a, "model")
        pl.export("quadrant_ae", out_a, save_parts(m, a))
        x = torch.randn(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
        compare(rep, "densenet+slp", m, out_a, x)

        # (b) ResNet-18 and a small DenseNet together + MLP (leaky ReLU in the encoder)
        b = os.path.join(tmp, "b")
        os.makedirs(b)
        m = seeded_model(20, backbones=[{"family": "resnet", "arch": "resnet18"}, SMALL_DENSENET],
                         encoder=[64, 32, 16], activation=["relu", "leaky_relu", "relu"],
                         classifier={"kind": "mlp", "hidden": [12, 8]})
        out_b = os.path.join(b, "model")
        pl.export("quadrant_ae", out_b, save_parts(m, b))
        x = torch.randn(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
        compare(rep, "resnet18+densenet+mlp", m, out_b, x)

        if SVC is None:
            rep.fail("scikit-learn is not installed (Debian: python3-sklearn): SVM cases not run")
        else:
            # (c) SVM, RBF kernel, one-vs-one, from a JSON file
            c = os.path.join(tmp, "c")
            os.makedirs(c)
            out_c = svm_case(rep, c, "svm_rbf_ovo", "rbf", "ovo", False, "json",
                             dict(backbones=[SMALL_DENSENET], encoder=[48, 24, 8]), 30)
            # (d) SVM, linear kernel, one-vs-rest, StandardScaler first, from a pickled Pipeline
            d = os.path.join(tmp, "d")
            os.makedirs(d)
            svm_case(rep, d, "svm_linear_ovr", "linear", "ovr", True, "pkl",
                     dict(backbones=[SMALL_DENSENET], encoder=[48, 24, 8]), 40)
            # (e) polynomial kernel, two classes (sklearn flips the signs of its two-class
            # parameters: one decision value, positive meaning the second label), JSON
            e = os.path.join(tmp, "e")
            os.makedirs(e)
            svm_case(rep, e, "svm_poly_binary", "poly", "ovr", False, "json",
                     dict(backbones=[SMALL_DENSENET], encoder=[48, 24, 8]), 50, labels=["Normal", "Abnormal"])

            def one_more_sv(man, _):
                man["classifier"]["n_support"][0] += 1

            expect_load_error(rep, "n_support sum", out_c, one_more_sv, "svm.support_vectors")
            expect_load_error(rep, "svm probs", out_c, lambda man, _: man["classifier"].update(probs="platt"),
                              "classifier.probs must be")
            expect_load_error(rep, "svm kernel", out_c,
                              lambda man, _: man["classifier"].update(kernel="precomputed"), "kernel 'precomputed'")

        expect_load_error(rep, "encoder in", out_a, lambda man, _: man["encoder"][1].update({"in": 47}),
                          "encoder[1] takes 47 features")
        expect_load_error(rep, "classifier kind", out_a, lambda man, _: man["classifier"].update(kind="tree"),
                          "classifier.kind 'tree' unknown")
        expect_load_error(rep, "odd input", out_a,
                          lambda man, _: man["preprocess"].update(resize=[SIZE + 1, SIZE + 1]), "even height")
        expect_load_error(rep, "labels count", out_a, lambda man, _: man.update(labels=["a", "b"]),
                          "3 outputs for 2 labels")
        expect_load_error(rep, "quadrant order", out_a, lambda man, _: man["quadrants"].reverse(), "quadrants")
        expect_load_error(rep, "backbone weights", out_b,
                          lambda man, _: man["backbones"][1].update(weights="backbones.0."), "backbones[1]")

        # exporter errors a user can make
        with open(os.path.join(a, "spec.json")) as f:
            spec = json.load(f)
        spec["backbones"].append(spec["backbones"][0])  # encoder now takes the wrong width
        with open(os.path.join(a, "bad.json"), "w") as f:
            json.dump(spec, f)
        try:
            export_here(os.path.join(a, "bad"), os.path.join(a, "bad.json"))
            rep.fail("export with an encoder that does not fit succeeded")
        except ExportError as e:
            rep.check("export refuses an encoder that does not fit the backbones", "backbone features give" in str(e),
                      str(e).splitlines()[-1])
    print("time %.1f s" % (time.time() - t0))
    rep.finish()


if __name__ == "__main__":
    main()
