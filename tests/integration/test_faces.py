#!/usr/bin/python3
"""test_faces: the faces model over HTTP, against a real salientd on a loopback port.

Needs face-api's weights and demo photographs (scripts/fetch-faceapi.sh puts them in
build/faceapi/{model,demo}); skips (77) without them. Checks: v1 predict from a raw JPEG, JSON
and multipart gives the same faces; every face has the fields its tasks ask for; "tasks",
"detector", "max_faces", "score_threshold" act; a chest phantom has no face (an empty list, not
an error); face parameters on a classifier and bad values are 400; v2 infer returns one JSON
document per image in a BYTES output; POST /v1/faces:verify: an image against itself is the
same person at distance ~0, two different people are not, a phantom gives 422.
Standard library only.
"""
import base64
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

SRCDIR = os.environ.get("SALIENT_SRCDIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
SALIENTD = os.environ.get("SALIENTD", os.path.join(SRCDIR, "build", "server", "salientd"))
BUILDDIR = os.path.dirname(os.path.dirname(os.path.abspath(SALIENTD)))

passed = failed = 0


def check(what, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok   " + what, flush=True)
    else:
        failed += 1
        print("FAIL " + what + (": " + detail if detail else ""), flush=True)


def faceapi_dir():
    for d in (os.environ.get("SALIENT_FACEAPI_DIR"), os.path.join(BUILDDIR, "faceapi"),
              os.path.join(SRCDIR, "build", "faceapi")):
        if d and os.path.isfile(os.path.join(d, "model", "ssd_mobilenetv1_model-weights_manifest.json")) \
                and glob.glob(os.path.join(d, "demo", "*.jpg")):
            return d
    return None


def request(base, path, body=None, ctype="application/json"):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, headers={"Content-Type": ctype},
                                 method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


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


def start(repo, tmp):
    log = open(os.path.join(tmp, "salientd.log"), "w+")
    p = subprocess.Popen([SALIENTD, "--model-repo", repo, "--port", "0", "--host", "127.0.0.1"], stderr=log)
    for _ in range(2400):
        log.seek(0)
        for line in log.read().splitlines():
            if "listening on http://127.0.0.1:" in line:
                return p, "http://127.0.0.1:%s" % line.split(":")[-1].split()[0]
        if p.poll() is not None:
            break
        time.sleep(0.05)
    p.kill()
    log.seek(0)
    sys.exit("salientd did not start:\n" + log.read())


def main():
    fa = faceapi_dir()
    if not fa:
        print("skip: no face-api weights and photographs (run scripts/fetch-faceapi.sh)")
        sys.exit(77)
    photos = sorted(glob.glob(os.path.join(fa, "demo", "*.jpg")))
    tmp = tempfile.mkdtemp()
    proc = None
    try:
        repo = os.path.join(tmp, "repo")
        os.makedirs(os.path.join(repo, "faces"))
        shutil.copy(os.path.join(SRCDIR, "models", "repo", "faces", "manifest.json"), os.path.join(repo, "faces"))
        for f in glob.glob(os.path.join(fa, "model", "*.json")) + glob.glob(os.path.join(fa, "model", "*.bin")):
            shutil.copy(f, os.path.join(repo, "faces"))
        shutil.copytree(os.path.join(SRCDIR, "models", "repo", "chexnet-demo"), os.path.join(repo, "chexnet-demo"))
        proc, base = start(repo, tmp)
        jpg = open(photos[0], "rb").read()
        b64 = base64.b64encode(jpg).decode()
        phantom = open(os.path.join(SRCDIR, "tests", "data", "phantom_00000.png"), "rb").read()

        st, raw = request(base, "/v1/models/faces:predict", jpg, "image/jpeg")
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
        st, js = request(base, "/v1/models/faces:predict", {"image": b64})
        body, ctype = multipart([("image", "a.jpg", jpg)])
        st2, mp = request(base, "/v1/models/faces:predict", body, ctype)
        same = st == 200 and st2 == 200 and json.dumps(js["predictions"][0]["faces"]) == json.dumps(faces) and \
            json.dumps(mp["predictions"][0]["faces"]) == json.dumps(faces)
        check("JSON base64 and multipart give the same faces as the raw body", same)

        st, r = request(base, "/v1/models/faces:predict",
                        {"image": b64, "parameters": {"tasks": ["age_gender"], "max_faces": 1}})
        f = r["predictions"][0]["faces"] if st == 200 else []
        check("tasks [age_gender], max_faces 1: one face with age and gender only",
              len(f) == 1 and set(f[0]) == {"box", "score", "age", "gender"}, json.dumps(f)[:200])
        st, r = request(base, "/v1/models/faces:predict?detector=tiny_face_detector&tasks=landmarks&score_threshold=0.3",
                        jpg, "image/jpeg")
        f = r["predictions"][0]["faces"] if st == 200 else []
        check("query parameters on a raw body: tiny detector, landmarks only",
              st == 200 and len(f) >= 1 and all(set(x) == {"box", "score", "landmarks"} for x in f), json.dumps(r)[:200])
        st, r = request(base, "/v1/models/faces:predict", phantom, "image/png")
        check("a chest phantom: 200 with no faces", st == 200 and r["predictions"][0]["faces"] == [], json.dumps(r)[:200])

        for params, want in (({"score_threshold": 3}, "score_threshold"), ({"tasks": ["aura"]}, "aura"),
                             ({"detector": "yolo"}, "parameters.detector"), ({"max_faces": 0}, "max_faces")):
            st, r = request(base, "/v1/models/faces:predict", {"image": b64, "parameters": params})
            check("bad %s -> 400 naming it" % json.dumps(params), st == 400 and want in r.get("error", ""),
                  "%d %s" % (st, r))
        st, r = request(base, "/v1/models/chexnet-demo:predict", {"image": b64, "parameters": {"tasks": ["landmarks"]}})
        check("face parameters on a classifier -> 400", st == 400 and "face models only" in r.get("error", ""))

        st, r = request(base, "/v2/models/faces/infer",
                        {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2], "data": [b64, b64]}]})
        outs = {o["name"]: o for o in r.get("outputs", [])}
        docs = [json.loads(d) for d in outs.get("faces", {}).get("data", [])]
        check("v2 infer: a BYTES 'faces' output, one JSON document per image, as v1 (batch of 2: within 1e-3)",
              st == 200 and len(docs) == 2 and all(close(d, faces) for d in docs),
              json.dumps(r)[:300])
        st, meta = request(base, "/v2/models/faces")
        check("v2 metadata lists the 'faces' output", st == 200 and meta["outputs"][0]["name"] == "faces")

        st, v = request(base, "/v1/faces:verify", {"images": [b64, b64]})
        check("verify an image against itself: same person, distance ~0",
              st == 200 and v["same_person"] is True and v["distance"] < 1e-4 and v["threshold"] == 0.6, json.dumps(v))
        other = open(photos[1], "rb").read()
        body, ctype = multipart([("image", "a.jpg", jpg), ("image", "b.jpg", other)])
        st, v = request(base, "/v1/faces:verify", body, ctype)
        check("verify two different people (multipart): not the same person, distance %.3f" % v.get("distance", -1),
              st == 200 and v["same_person"] is False and v["distance"] > 0.6, json.dumps(v))
        st, v = request(base, "/v1/faces:verify", {"images": [b64, base64.b64encode(phantom).decode()]})
        check("verify with no face in image 2 -> 422", st == 422 and "image 2" in v.get("error", ""), json.dumps(v))
        st, v = request(base, "/v1/faces:verify", {"images": [b64]})
        check("verify with one image -> 400", st == 400, json.dumps(v))
    finally:
        if proc:
            proc.terminate()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(0 if failed == 0 else 1)


if __name__ == "__main__":
    main()
