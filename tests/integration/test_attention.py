#!/usr/bin/python3
"""test_attention: attention maps over HTTP, against a real salientd on a loopback port.

- v1 "attention": "maps": every manifest layer with its grid, weights summing to 1, maps in
  [0, 1]; the best label's CAM by default; attention_layers / cam_labels select; bad names 400.
- The server's maps equal salient-run --attention's for the same image (same code, and the
  batcher hands each request its own rows: a 3-image request and three 1-image requests agree).
- "png": one overlay per map, a PNG of the input's size that differs from the input only where
  the map is non-zero (the centre of the map's zero cell keeps the input's pixel exactly).
- v2 infer with "attention": "maps": attention/<layer> and cam/<label> FP32 outputs [n, h, w].
- SwinCheX's gradient CAM through the server (the head's activations tapped in the batched
  forward): a 3-image v1 request's best-label CAMs and v2's every-label CAMs equal
  salient-run --attention's.
Standard library + PIL (python3-pil) only.
"""
import base64
import io
import json
import os
import subprocess
import sys

from PIL import Image

from salientd_harness import SRCDIR, Checks, Server, make_repo, read_safetensors

RUN = os.environ.get("SALIENT_RUN", os.path.join(SRCDIR, "build", "tools", "salient-run"))
sys.path.insert(0, os.path.join(SRCDIR, "models", "export"))
import phantoms  # noqa: E402

t = Checks()
check = t.check


def post(s, path, body, ctype="application/json"):
    """(status, JSON answer) of a POST; body: bytes as they are, anything else as JSON."""
    r = s.request("POST", path, body if isinstance(body, bytes) else json.dumps(body).encode(),
                  {"Content-Type": ctype})
    return r.status, r.json() or {}


def maxdiff(a, b):
    return max(abs(x - y) for x, y in zip(a, b)) if len(a) == len(b) else float("inf")


def main():
    tmp = t.tmp
    repo = make_repo(tmp, ["chexnet-demo", "quadrant-demo", "swinchex-demo"])
    with Server(tmp, repo) as srv:
        imgs, recs = phantoms.generate(3, seed=77, size=256)
        paths = []
        for i, im in enumerate(imgs):
            p = os.path.join(tmp, "ph%d.png" % i)
            Image.fromarray(im).save(p)
            paths.append(p)
        b64 = [base64.b64encode(open(p, "rb").read()).decode() for p in paths]
        man = json.load(open(os.path.join(repo, "chexnet-demo", "manifest.json")))
        layers = man["attention"]["layers"]

        # v1 maps, defaults
        st, r = post(srv, "/v1/models/chexnet-demo:predict", {"image": b64[0], "parameters": {"attention": "maps"}})
        check("v1 maps: 200", st == 200, json.dumps(r)[:300])
        pred = r["predictions"][0]
        att = pred.get("attention", {})
        got_layers = [l["name"] for l in att.get("layers", [])]
        check("v1 maps: every manifest layer, in order", got_layers == layers, str(got_layers))
        ok_maps = all(len(l["map"]) == l["grid"][0] * l["grid"][1] and all(0 <= v <= 1 for v in l["map"])
                      for l in att.get("layers", []))
        check("v1 maps: maps sized by their grid, values in [0, 1]", ok_maps)
        wsum = sum(l["weight"] for l in att.get("layers", []))
        check("v1 maps: layer weights sum to 1", abs(wsum - 1) < 1e-4, "%.6f" % wsum)
        cams = att.get("cam", [])
        check("v1 maps: one CAM by default, for the best label",
              len(cams) == 1 and cams[0]["label"] == pred["labels"][0]["label"], json.dumps(cams)[:200])
        check("v1 maps: CAM range is [min, max] of the raw map",
              len(cams) == 1 and cams[0]["range"][0] <= cams[0]["range"][1] and min(cams[0]["map"]) == 0.0)

        # the same maps as salient-run --attention
        out = os.path.join(tmp, "run.safetensors")
        subprocess.run([RUN, "--model", os.path.join(repo, "chexnet-demo"), "--image", paths[0], "--output", out,
                        "--attention", "--quiet"], check=True)
        ref = read_safetensors(out)
        worst = 0.0
        for l in att.get("layers", []):
            worst = max(worst, maxdiff(l["map"], ref["attention/" + l["name"]][1]))
        for c in cams:
            lo, hi = c["range"]
            raw = [lo + v * (hi - lo) for v in c["map"]]
            worst = max(worst, maxdiff(raw, ref["cam/" + c["label"]][1]) / max(1e-6, abs(hi - lo)))
        check("server maps equal salient-run --attention (worst %.2e)" % worst, worst < 1e-5)

        # selection and a batch of three
        sel = {"attention": "maps", "attention_layers": ["denseblock4", "denseblock2"], "cam_labels": ["Mass", "Nodule"]}
        st, r3 = post(srv, "/v1/models/chexnet-demo:predict",
                      {"instances": [{"image": b} for b in b64], "parameters": sel})
        check("v1 selected maps, 3 images: 200", st == 200, json.dumps(r3)[:300])
        a3 = [p["attention"] for p in r3.get("predictions", [])]
        check("attention_layers picks layers in the order asked",
              all([l["name"] for l in a["layers"]] == ["denseblock4", "denseblock2"] for a in a3))
        check("cam_labels picks CAMs in the order asked", all([c["label"] for c in a["cam"]] == ["Mass", "Nodule"] for a in a3))
        same = True
        for i in range(3):
            st1, r1 = post(srv, "/v1/models/chexnet-demo:predict", {"image": b64[i], "parameters": sel})
            a1 = r1["predictions"][0]["attention"]
            for x, y in zip(a1["layers"] + a1["cam"], a3[i]["layers"] + a3[i]["cam"]):
                same &= maxdiff(x["map"], y["map"]) < 1e-5
        check("each image of a 3-image request has the maps it has alone", same)

        for params, want in (({"attention": "maps", "attention_layers": ["nope"]}, "is not a layer of model"),
                             ({"attention": "maps", "cam_labels": ["Flu"]}, "is not a label of model"),
                             ({"attention": "maps", "cam_labels": "Mass"}, "must be a list"),
                             ({"attention": "heat"}, "must be \"none\", \"maps\" or \"png\"")):
            st, r = post(srv, "/v1/models/chexnet-demo:predict", {"image": b64[0], "parameters": params})
            check("bad attention parameter %s -> 400 '%s'" % (json.dumps(params), want),
                  st == 400 and want in r.get("error", ""), "%d %s" % (st, r))

        # png overlays, raw body with query parameters
        body = open(paths[1], "rb").read()
        st, r = post(srv, "/v1/models/quadrant-demo:predict?attention=png", body, "image/png")
        check("png overlays: 200", st == 200, json.dumps(r)[:300])
        a = r["predictions"][0]["attention"]
        ovs = a.get("overlays", [])
        check("png: one overlay per map", [o["of"] for o in ovs] ==
              ["attention/" + l["name"] for l in a["layers"]] + ["cam/" + c["label"] for c in a["cam"]],
              str([o["of"] for o in ovs]))
        src = Image.open(paths[1]).convert("RGB")
        for o, m in zip(ovs, a["layers"] + a["cam"]):
            im = Image.open(io.BytesIO(base64.b64decode(o["png"])))
            check("png %s: decodes as RGB at the input's size" % o["of"], im.size == src.size and im.mode == "RGB")
            gh, gw = m["grid"]
            z = m["map"].index(0.0)
            cx = int((z % gw + 0.5) * src.size[0] / gw)
            cy = int((z // gw + 0.5) * src.size[1] / gh)
            diff = sum(1 for p, q in zip(im.getdata(), src.getdata()) if p != q) / (src.size[0] * src.size[1])
            check("png %s: the zero cell's centre keeps the input pixel; %.0f%% of pixels tinted" % (o["of"], 100 * diff),
                  im.getpixel((cx, cy)) == src.getpixel((cx, cy)) and diff > 0.3)

        # v2
        st, r = post(srv, "/v2/models/chexnet-demo/infer",
                     {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2], "data": b64[:2]}],
                      "parameters": {"attention": "maps"}})
        names = {o["name"]: o for o in r.get("outputs", [])}
        check("v2 maps: 200", st == 200, json.dumps(r)[:300])
        check("v2: attention/<layer> [2, h, w] for every layer",
              all("attention/" + l in names and names["attention/" + l]["shape"][0] == 2 for l in layers))
        check("v2: cam/<label> [2, h, w] for every label",
              all("cam/" + l in names and len(names["cam/" + l]["data"]) == 2 * names["cam/" + l]["shape"][1] *
                  names["cam/" + l]["shape"][2] for l in man["labels"]))

        # SwinCheX: gradient CAMs, server against salient-run
        sman = json.load(open(os.path.join(repo, "swinchex-demo", "manifest.json")))
        check("swinchex-demo's CAM is the gradient map", sman["attention"]["cam"] == "gradient")
        out = os.path.join(tmp, "swin.safetensors")
        cmd = [RUN, "--model", os.path.join(repo, "swinchex-demo"), "--output", out, "--attention", "--quiet"]
        subprocess.run(cmd + sum((["--image", p] for p in paths), []), check=True)
        ref = read_safetensors(out)
        st, r = post(srv, "/v1/models/swinchex-demo:predict",
                     {"instances": [{"image": b} for b in b64], "parameters": {"attention": "maps"}})
        check("swinchex v1 maps, 3 images: 200", st == 200, json.dumps(r)[:300])
        worst = 0.0 if st == 200 else float("inf")
        for i, pred in enumerate(r.get("predictions", [])):
            c = pred["attention"]["cam"][0]
            lo, hi = c["range"]
            n = len(c["map"])
            worst = max(worst, maxdiff([lo + v * (hi - lo) for v in c["map"]],
                                       ref["cam/" + c["label"]][1][i * n:(i + 1) * n]) / max(1e-6, abs(hi - lo)))
        check("swinchex best-label CAMs of a 3-image request equal salient-run's (worst %.2e)" % worst, worst < 1e-5)
        st, r = post(srv, "/v2/models/swinchex-demo/infer",
                     {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [3], "data": b64}],
                      "parameters": {"attention": "maps"}})
        names = {o["name"]: o for o in r.get("outputs", [])}
        worst = max((maxdiff(names["cam/" + l]["data"], ref["cam/" + l][1]) if "cam/" + l in names else float("inf"))
                    for l in sman["labels"])
        check("swinchex v2 every label's CAM equals salient-run's (worst %.2e log-odds)" % worst, st == 200 and worst < 1e-4)
    sys.exit(t.finish())


if __name__ == "__main__":
    main()
