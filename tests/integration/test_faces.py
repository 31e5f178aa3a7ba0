#!/usr/bin/python3
"""test_faces: the faces model over HTTP, against a real salientd on a loopback port.

Needs face-api's weights and demo photographs (scripts/fetch-faceapi.sh puts them in
build/faceapi/{model,demo}); skips (77) without them. Checks: v1 predict from a raw JPEG, JSON
and multipart gives the same faces; every face has the fields its tasks ask for; "tasks",
"detector", "max_faces", "score_threshold" act; a chest phantom has no face (an empty list, not
an error); face parameters on a classifier and bad values are 400; v2 infer returns one JSON
document per image in a BYTES output; POST /v1/faces:verify: an image against itself is the
same person at distance ~0, two different people are not, a phantom gives 422. Attention maps
per face: "maps" gives each face its face_expression layer maps and the CAM of its best
expression, "cam_labels" and "attention_layers" choose, bad ones are 400; "png" overlays decode
at the face crop's size and equal the image's crop where the map is zero; v2 names them
image<i>/face<k>/attention/<layer> and image<i>/face<k>/cam/<label>.
Standard library + PIL (python3-pil).
"""
import base64
import glob
import io
import json
import os
import shutil
import sys

from PIL import Image

from salientd_harness import SALIENTD, SRCDIR, Checks, Server, make_repo

BUILDDIR = os.path.dirname(os.path.dirname(os.path.abspath(SALIENTD)))

t = Checks()
check = t.check


def faceapi_dir():
    for d in (os.environ.get("SALIENT_FACEAPI_DIR"), os.path.join(BUILDDIR, "faceapi"),
              os.path.join(SRCDIR, "build", "faceapi")):
        if d and os.path.isfile(os.path.join(d, "model", "ssd_mobilenetv1_model-weights_manifest.json")) \
                and glob.glob(os.path.join(d, "demo", "*.jpg")):
            return d
    return None


def request(s, path, body=None, ctype="application/json"):
    """(status, JSON answer): GET without a body, else POST (bytes as they are, else JSON)."""
    if body is None:
        r = s.request("GET", path)
    else:
        r = s.request("POST", path, body if isinstance(body, bytes) else json.dumps(body).encode(),
                      {"Content-Type": ctype})
    return r.status, r.json() or {}


def numbers(x):
    """Every number in a JSON value, in order (keys sorted)."""
    if isinstance(x, dict):
        return [v for k in sorted(x) for v in numbers(x[k])]
    if isinstance(x, list):
        return [v for e in x for v in numbers(e)]
    return [x] if isinstance(x, (int, float)) and not isinstance(x, bool) else []


def close(a, b, tol=1e-3):
    """Same structure and labels, numbers within tol (a batch of two may round differently)."""
    na, nb = numbers(a), numbers(b)
    strip = lambda x: json.dumps(x, sort_keys=True, default=str) if not numbers(x) else None  # noqa: E731
    return len(na) == len(nb) and all(abs(x - y) <= tol * max(1.0, abs(y)) for x, y in zip(na, nb)) and \
        [f.keys() for f in a] == [f.keys() for f in b] and strip(a) == strip(b)


def multipart(fields):
    b = "----salient-test-boundary"
    out = b""
    for name, fname, data in fields:
        disp = 'form-data; name="%s"' % name + ('; filename="%s"' % fname if fname else "")
        out += ("--%s\r\nContent-Disposition: %s\r\n\r\n" % (b, disp)).encode() + data + b"\r\n"
    return out + ("--%s--\r\n" % b).encode(), "multipart/form-data; boundary=" + b


def main():
    fa = faceapi_dir()
    if not fa:
        print("skip: no face-api weights and photographs (run scripts/fetch-faceapi.sh)")
        t.finish()
        sys.exit(77)
    photos = sorted(glob.glob(os.path.join(fa, "demo", "*.jpg")))
    tmp = t.tmp
    # faces as scripts/prepare-repo.sh assembles it, and a classifier to send face parameters to
    repo = make_repo(tmp, ["chexnet-demo"])
    os.makedirs(os.path.join(repo, "faces"))
    shutil.copy(os.path.join(SRCDIR, "models", "repo", "faces", "manifest.json"), os.path.join(repo, "faces"))
    for f in glob.glob(os.path.join(fa, "model", "*.json")) + glob.glob(os.path.join(fa, "model", "*.bin")):
        shutil.copy(f, os.path.join(repo, "faces"))
    with Server(tmp, repo) as srv:
        jpg = open(photos[0], "rb").read()
        b64 = base64.b64encode(jpg).decode()
        phantom = open(os.path.join(SRCDIR, "tests", "data", "phantom_00000.png"), "rb").read()

        st, raw = request(srv, "/v1/models/faces:predict", jpg, "image/jpeg")
        check("raw JPEG: 200", st == 200, json.dumps(raw)[:300])
        faces = raw["predictions"][0]["faces"] if st == 200 else []
        check("faces found in %s (%d)" % (os.path.basename(photos[0]), len(faces)), len(faces) >= 1)
        check("every response says model, version and demo",
              raw.get("model") == "faces" and "version" in raw and raw.get("demo") is False)
        full = all(set(f) >= {"box", "score", "landmarks", "age", "gender", "expression", "descriptor"} and
                   len(f["landmarks"]) == 68 and len(f["descriptor"]) == 128 and
                   len(f["expression"]["scores"]) == 7 for f in faces)
        check("default tasks: box, score, 68 landmarks, age, gender, 7 expressions, 128-D descriptor", full)
        check("faces best score first", all(faces[i]["score"] >= faces[i + 1]["score"] for i in range(len(faces) - 1)))
        st, js = request(srv, "/v1/models/faces:predict", {"image": b64})
        body, ctype = multipart([("image", "a.jpg", jpg)])
        st2, mp = request(srv, "/v1/models/faces:predict", body, ctype)
        same = st == 200 and st2 == 200 and json.dumps(js["predictions"][0]["faces"]) == json.dumps(faces) and \
            json.dumps(mp["predictions"][0]["faces"]) == json.dumps(faces)
        check("JSON base64 and multipart give the same faces as the raw body", same)

        st, r = request(srv, "/v1/models/faces:predict",
                        {"image": b64, "parameters": {"tasks": ["age_gender"], "max_faces": 1}})
        f = r["predictions"][0]["faces"] if st == 200 else []
        check("tasks [age_gender], max_faces 1: one face with age and gender only",
              len(f) == 1 and set(f[0]) == {"box", "score", "age", "gender"}, json.dumps(f)[:200])
        st, r = request(srv, "/v1/models/faces:predict?detector=tiny_face_detector&tasks=landmarks&score_threshold=0.3",
                        jpg, "image/jpeg")
        f = r["predictions"][0]["faces"] if st == 200 else []
        check("query parameters on a raw body: tiny detector, landmarks only",
              st == 200 and len(f) >= 1 and all(set(x) == {"box", "score", "landmarks"} for x in f), json.dumps(r)[:200])
        st, r = request(srv, "/v1/models/faces:predict", phantom, "image/png")
        check("a chest phantom: 200 with no faces", st == 200 and r["predictions"][0]["faces"] == [], json.dumps(r)[:200])

        for params, want in (({"score_threshold": 3}, "score_threshold"), ({"tasks": ["aura"]}, "aura"),
                             ({"detector": "yolo"}, "parameters.detector"), ({"max_faces": 0}, "max_faces")):
            st, r = request(srv, "/v1/models/faces:predict", {"image": b64, "parameters": params})
            check("bad %s -> 400 naming it" % json.dumps(params), st == 400 and want in r.get("error", ""),
                  "%d %s" % (st, r))
        st, r = request(srv, "/v1/models/chexnet-demo:predict", {"image": b64, "parameters": {"tasks": ["landmarks"]}})
        check("face parameters on a classifier -> 400", st == 400 and "face models only" in r.get("error", ""))

        st, r = request(srv, "/v2/models/faces/infer",
                        {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2], "data": [b64, b64]}]})
        outs = {o["name"]: o for o in r.get("outputs", [])}
        docs = [json.loads(d) for d in outs.get("faces", {}).get("data", [])]
        check("v2 infer: a BYTES 'faces' output, one JSON document per image, as v1 (batch of 2: within 1e-3)",
              st == 200 and len(docs) == 2 and all(close(d, faces) for d in docs),
              json.dumps(r)[:300])
        st, meta = request(srv, "/v2/models/faces")
        check("v2 metadata lists the 'faces' output", st == 200 and meta["outputs"][0]["name"] == "faces")

        st, v = request(srv, "/v1/faces:verify", {"images": [b64, b64]})
        check("verify an image against itself: same person, distance ~0",
              st == 200 and v["same_person"] is True and v["distance"] < 1e-4 and v["threshold"] == 0.6, json.dumps(v))
        other = open(photos[1], "rb").read()
        body, ctype = multipart([("image", "a.jpg", jpg), ("image", "b.jpg", other)])
        st, v = request(srv, "/v1/faces:verify", body, ctype)
        check("verify two different people (multipart): not the same person, distance %.3f" % v.get("distance", -1),
              st == 200 and v["same_person"] is False and v["distance"] > 0.6, json.dumps(v))
        st, v = request(srv, "/v1/faces:verify", {"images": [b64, base64.b64encode(phantom).decode()]})
        check("verify with no face in image 2 -> 422", st == 422 and "image 2" in v.get("error", ""), json.dumps(v))
        st, v = request(srv, "/v1/faces:verify", {"images": [b64]})
        check("verify with one image -> 400", st == 400, json.dumps(v))
        attention(srv, photos[0], tmp)
    sys.exit(t.finish())


LAYERS = ["face_expression/dense%d" % b for b in range(4)]
# server/overlay.c's viridis stops and blend weight: the overlay's specification
VIRIDIS = [(68, 1, 84), (71, 44, 122), (59, 81, 139), (44, 113, 142), (33, 144, 141), (39, 173, 129), (92, 200, 99),
           (170, 220, 50), (253, 231, 37)]


def viridis(v):
    t = min(max(v, 0.0), 1.0) * 8
    i = min(int(t), 7)
    f = t - i
    return [(1 - f) * VIRIDIS[i][c] + f * VIRIDIS[i + 1][c] for c in range(3)]


def upsample(m, gh, gw, u, v):
    """The map at (u, v) in cells, bilinear between cell centres, clamped at the edges."""
    x, y = min(max(u - 0.5, 0), gw - 1), min(max(v - 0.5, 0), gh - 1)
    x0, y0 = int(x), int(y)
    x1, y1 = min(x0 + 1, gw - 1), min(y0 + 1, gh - 1)
    fx, fy = x - x0, y - y0
    top = m[y0 * gw + x0] * (1 - fx) + m[y0 * gw + x1] * fx
    bot = m[y1 * gw + x0] * (1 - fx) + m[y1 * gw + x1] * fx
    return top * (1 - fy) + bot * fy


def blend_check(im, crop, m, c, reg):
    """((pixels where the map is 0, of those changed), pixels matching the blend, pixels where it is not 0)."""
    gh, gw = m["grid"]
    got, src = list(im.getdata()), list(crop.getdata())
    zero, changed, exact, total = 0, 0, 0, 0
    for py in range(c["height"]):
        v = (c["y"] + py + 0.5 - reg["y"]) / reg["size"] * gh
        for px in range(c["width"]):
            u = (c["x"] + px + 0.5 - reg["x"]) / reg["size"] * gw
            a = upsample(m["map"], gh, gw, u, v) if 0 <= u < gw and 0 <= v < gh else 0.0
            p, q = got[py * c["width"] + px], src[py * c["width"] + px]
            if a <= 0:
                zero += 1
                changed += p != q
                continue
            total += 1
            alpha = 0.6 * min(a, 1.0)
            col = viridis(a)
            exact += all(abs(p[k] - ((1 - alpha) * q[k] + alpha * col[k])) <= 1.0 for k in range(3))
    return (zero, changed), exact, total
EXPRESSIONS = ["neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"]


def attention(srv, photo, tmp):
    """Per-face attention maps, overlays and v2 outputs (the manifest names face_expression's blocks)."""
    # a PNG of the photograph, so that the test decodes exactly the pixels salientd decodes
    src = Image.open(photo).convert("RGB")
    png_path = os.path.join(tmp, "faces.png")
    src.save(png_path)
    png = open(png_path, "rb").read()
    b64 = base64.b64encode(png).decode()

    st, r = request(srv, "/v1/models/faces:predict", {"image": b64, "parameters": {"attention": "maps"}})
    faces = r["predictions"][0]["faces"] if st == 200 else []
    check("attention maps: 200 with faces", st == 200 and len(faces) >= 1, json.dumps(r)[:300])
    for k, f in enumerate(faces):
        a = f.get("attention", {})
        layers = a.get("layers", [])
        check("face %d: the manifest's 4 dense-block maps, grids 56/28/14/7, in [0, 1], weights adding to 1" % k,
              [l["name"] for l in layers] == LAYERS and [l["grid"] for l in layers] == [[56, 56], [28, 28], [14, 14], [7, 7]]
              and all(len(l["map"]) == l["grid"][0] * l["grid"][1] and min(l["map"]) == 0 and max(l["map"]) == 1
                      for l in layers) and abs(sum(l["weight"] for l in layers) - 1) < 1e-5, json.dumps(layers)[:300])
        best = f["expression"]["label"]
        cams = a.get("cam", [])
        check("face %d: one CAM by default, of its best expression (%s), 7 x 7, normalised, raw range kept" % (k, best),
              len(cams) == 1 and cams[0]["label"] == best and cams[0]["grid"] == [7, 7] and len(cams[0]["map"]) == 49
              and cams[0]["range"][0] < cams[0]["range"][1], json.dumps(cams)[:300])
        c = a.get("crop", {})
        check("face %d: the crop the heads saw, inside the image" % k,
              c.get("width", 0) > 0 and c.get("height", 0) > 0 and c["x"] >= 0 and c["y"] >= 0 and
              c["x"] + c["width"] <= src.size[0] and c["y"] + c["height"] <= src.size[1], json.dumps(c))
    check("no overlays unless asked", all("overlays" not in f.get("attention", {}) for f in faces))

    st, r = request(srv, "/v1/models/faces:predict",
                    {"image": b64, "parameters": {"attention": "maps", "cam_labels": ["age", "male", "happy"],
                                                  "attention_layers": ["face_expression/dense3"]}})
    f = r["predictions"][0]["faces"][0] if st == 200 else {}
    a = f.get("attention", {})
    check("cam_labels and attention_layers choose", st == 200 and [c["label"] for c in a.get("cam", [])] ==
          ["age", "male", "happy"] and [l["name"] for l in a.get("layers", [])] == ["face_expression/dense3"],
          json.dumps(r)[:300])
    for params, want in (({"attention": "maps", "cam_labels": ["Effusion"]}, "Effusion"),
                         ({"attention": "maps", "attention_layers": ["dense9"]}, "dense9")):
        st, r = request(srv, "/v1/models/faces:predict", {"image": b64, "parameters": params})
        check("bad %s -> 400 naming it" % json.dumps(params), st == 400 and want in r.get("error", ""), "%d %s" % (st, r))

    # png overlays over each face's crop
    st, r = request(srv, "/v1/models/faces:predict?attention=png&cam_labels=happy,age", png, "image/png")
    faces = r["predictions"][0]["faces"] if st == 200 else []
    check("png overlays: 200", st == 200 and len(faces) >= 1, json.dumps(r)[:300])
    for k, f in enumerate(faces):
        a = f["attention"]
        ovs = a.get("overlays", [])
        maps = a["layers"] + a["cam"]
        check("face %d png: one overlay per map" % k, [o["of"] for o in ovs] ==
              ["attention/" + l["name"] for l in a["layers"]] + ["cam/" + c["label"] for c in a["cam"]],
              str([o["of"] for o in ovs]))
        c, reg = a["crop"], a["map_region"]
        crop = src.crop((c["x"], c["y"], c["x"] + c["width"], c["y"] + c["height"]))
        for o, m in zip(ovs, maps):
            im = Image.open(io.BytesIO(base64.b64decode(o["png"])))
            check("face %d png %s: decodes as RGB at the face crop's size %dx%d" % (k, o["of"], c["width"], c["height"]),
                  im.size == (c["width"], c["height"]) and im.mode == "RGB", "%s %s" % (im.size, im.mode))
            if im.size != crop.size:
                continue
            zero, exact, total = blend_check(im, crop, m, c, reg)
            check("face %d png %s: unchanged where the map is 0 (%d px), the viridis blend within 1 level elsewhere "
                  "(%.2f%% of %d px)" % (k, o["of"], zero[0], 100.0 * exact / max(1, total), total),
                  zero[1] == 0 and total > 0 and exact >= 0.995 * total, "%d zero-valued pixels changed" % zero[1])

    st, r = request(srv, "/v2/models/faces/infer",
                    {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [b64]}],
                     "parameters": {"attention": "maps", "cam_labels": ["happy", "age"]}})
    outs = {o["name"]: o for o in r.get("outputs", [])}
    nf = len(json.loads(outs["faces"]["data"][0])) if "faces" in outs else 0
    want = ["image0/face%d/%s" % (k, n) for k in range(nf)
            for n in ["attention/" + l for l in LAYERS] + ["cam/happy", "cam/age"]]
    check("v2: image<i>/face<k>/attention/<layer> and .../cam/<label> FP32 [h, w] for each of %d faces" % nf,
          st == 200 and nf >= 1 and [n for n in outs if n != "faces"] == want and
          all(len(outs[n]["data"]) == outs[n]["shape"][0] * outs[n]["shape"][1] for n in want), json.dumps(list(outs))[:400])


if __name__ == "__main__":
    main()
