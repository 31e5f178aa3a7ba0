#!/usr/bin/python3
"""models.py: the PyTorch side of bench/run_models.sh (run with Debian's /usr/bin/python3, which has torch).

    models.py export --out DIR [--models densenet121,resnet50,swin_t]
        For each model: seeded random weights (as the parity tests seed them: logits O(1-10), batch
        norm statistics non-trivial), written as a salient model folder DIR/<model>/ (the exporters
        in models/export/salient_export), as DIR/<model>.onnx (torch.onnx.export, opset 14, batch
        dimension dynamic), and DIR/<model>.json: the multiply-adds of one 224x224 image (counted
        with forward hooks: convolutions, linear layers, Swin's two attention matmuls) and a
        fixed batch-1 input with torch's logits for it, so every runtime can show it ran the same
        network (max abs difference of its logits).
    models.py time --out DIR --model NAME [--threads 2] [--reps1 N] [--reps8 N]
        PyTorch eager (torch.inference_mode, NCHW) on the same folder: batch-1 latency (median of
        reps1 after warm-up), batch-8 images/s (median of reps8), peak RSS; one JSON line.
"""
import argparse
import json
import os
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "models", "export"))

import torch  # noqa: E402

MODELS = ["densenet121", "resnet50", "swin_t"]
SIZE = 224
LABELS = ["class%d" % i for i in range(1000)]


def seeded(model, seed):
    """Kaiming-normal weights scaled by 0.7 and small biases, random batch-norm statistics: the
    parity tests' recipe, so logits stay O(1-10) (with random init ResNet-50 reaches 1e4)."""
    torch.manual_seed(seed)
    for p in model.parameters():
        if p.dim() > 1:
            torch.nn.init.kaiming_normal_(p, nonlinearity="relu")
            p.data *= 0.7
        else:
            torch.nn.init.uniform_(p, -0.1, 0.1)
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.weight.data = 0.5 + torch.rand(n, generator=g)
            m.bias.data = 0.2 * torch.randn(n, generator=g)
            m.running_mean.data = 0.2 * torch.randn(n, generator=g)
            m.running_var.data = 0.5 + torch.rand(n, generator=g)
        if isinstance(m, torch.nn.LayerNorm):
            m.weight.data = 1.0 + 0.1 * torch.randn(m.weight.shape, generator=g)
    return model.eval()


def build(name):
    """(reference module, exporter module, preset) for a model name."""
    if name == "densenet121":
        from salient_export import densenet as ex
        return ex.build_model(name, "imagenet", LABELS), ex, "imagenet"
    if name == "resnet50":
        from salient_export import resnet as ex
        return ex.build_model(name, "imagenet", LABELS), ex, "imagenet"
    if name == "swin_t":
        from salient_export import swin as ex
        return ex.build_model(name, "linear", LABELS), ex, "linear"
    raise SystemExit("models.py: unknown model '%s' (known: %s)" % (name, ", ".join(MODELS)))


def count_macs(model, x):
    """Multiply-adds of one forward pass of x: Conv2d and Linear layers by hooks, plus Swin's
    window attention, whose qkv and proj weights torchvision applies with F.linear (no hook
    fires): 4 C^2 for them and 2 T C for q k^T and A v per padded token (T tokens per window)."""
    total = [0]
    hooks = []

    def conv(m, inp, out):
        total[0] += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def lin(m, inp, out):
        total[0] += out.numel() * m.in_features

    def attn(m, inp, out):
        b, h, w, c = inp[0].shape
        wh, ww = m.window_size
        ph, pw = -(-h // wh) * wh, -(-w // ww) * ww
        total[0] += b * ph * pw * (4 * c * c + 2 * wh * ww * c)

    from torchvision.models.swin_transformer import ShiftedWindowAttention
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            hooks.append(m.register_forward_hook(conv))
        elif isinstance(m, torch.nn.Linear):
            hooks.append(m.register_forward_hook(lin))
        elif isinstance(m, ShiftedWindowAttention):
            hooks.append(m.register_forward_hook(attn))
    with torch.inference_mode():
        model(x)
    for h in hooks:
        h.remove()
    return total[0]


def export(args):
    os.makedirs(args.out, exist_ok=True)
    for i, name in enumerate(args.models.split(",")):
        model, ex, preset = build(name)
        seeded(model, 100 + i)
        ex.export_module(model, name, preset, LABELS, os.path.join(args.out, name))
        x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(7))
        with torch.no_grad():
            logits = model(x)
        macs = count_macs(model, x)
        onnx_path = os.path.join(args.out, name + ".onnx")
        with torch.no_grad():
            torch.onnx.export(model, x, onnx_path, opset_version=14, input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, do_constant_folding=True)
        info = {"model": name, "size": SIZE, "macs": macs, "input": x.flatten().tolist(),
                "logits": logits.flatten().tolist()}
        with open(os.path.join(args.out, name + ".json"), "w") as f:
            json.dump(info, f)
        print("models.py: %s: salient folder, %s (%.2f GMAC per image)" % (name, os.path.basename(onnx_path),
                                                                        macs / 1e9), flush=True)


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def time_model(args):
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    model, _, _ = build(args.model)
    seeded(model, 100 + MODELS.index(args.model))
    with open(os.path.join(args.out, args.model + ".json")) as f:
        info = json.load(f)
    x1 = torch.tensor(info["input"]).reshape(1, 3, SIZE, SIZE)
    x8 = torch.randn(8, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(8))
    with torch.inference_mode():
        diff = (model(x1).flatten() - torch.tensor(info["logits"])).abs().max().item()
        for _ in range(3):
            model(x1)
        t1 = []
        for _ in range(args.reps1):
            t = time.perf_counter()
            model(x1)
            t1.append(time.perf_counter() - t)
        model(x8)
        t8 = []
        for _ in range(args.reps8):
            t = time.perf_counter()
            model(x8)
            t8.append(time.perf_counter() - t)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"runtime": "pytorch", "version": torch.__version__, "model": args.model,
                      "threads": args.threads, "b1_ms": 1e3 * median(t1), "b8_img_s": 8 / median(t8),
                      "peak_rss_mb": rss / 1024.0, "max_abs_diff": diff}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export")
    e.add_argument("--out", required=True)
    e.add_argument("--models", default=",".join(MODELS))
    t = sub.add_parser("time")
    t.add_argument("--out", required=True)
    t.add_argument("--model", required=True, choices=MODELS)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--reps1", type=int, default=15)
    t.add_argument("--reps8", type=int, default=5)
    args = ap.parse_args()
    export(args) if args.cmd == "export" else time_model(args)


if __name__ == "__main__":
    main()
