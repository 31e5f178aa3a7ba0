"""test_salient_client.py: the Python client and its CLI against a live salientd
(tests/integration/test_clients.sh starts one). Standard library only, so it runs with
`python3 -I -S` (no site-packages), which is how the test runs it.

    SALIENT_URL=http://127.0.0.1:PORT [SALIENT_KEYED_URL=... SALIENT_TEST_KEY=k] \
      python3 -I -S clients/python/test_salient_client.py PHANTOM_DIR OUT_DIR

The server must serve quadrant-demo and covid-resnet-demo. PHANTOM_DIR holds phantom_*.png.
"""
import base64
import io
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from salient_client import Client, SalientError, find_images, main, save_overlays  # noqa: E402

passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok   " + name)
    else:
        failed += 1
        print("FAIL %s: %s" % (name, str(detail)[:600]))


def raises(fn):
    try:
        fn()
    except SalientError as e:
        return e
    return None


def run_cli(argv):
    out = io.StringIO()
    err = io.StringIO()
    old = sys.stderr
    sys.stderr = err
    try:
        rc = main(argv, out=out)
    finally:
        sys.stderr = old
    return rc, out.getvalue(), err.getvalue()


def run(phantoms, out_dir):
    url = os.environ["SALIENT_URL"]
    c = Client(url)
    files = find_images([phantoms])
    xray = [f for f in files if os.path.basename(f).startswith("phantom_")]
    check("find_images walks the folder, sorted", len(xray) >= 2 and xray == sorted(xray), files)

    check("live() and ready()", c.live() is True and c.ready() is True)
    models = {m["name"]: m for m in c.models()}
    check("models() lists quadrant-demo as a ready demo model",
          models.get("quadrant-demo", {}).get("demo") is True and models["quadrant-demo"]["state"] == "READY",
          list(models))

    a = c.predict("quadrant-demo", xray[0])
    p = a["predictions"][0]
    scores = [l["score"] for l in p["labels"]]
    check("predict(path): 3 labels best first, softmax sums to 1, demo",
          a["demo"] is True and len(scores) == 3 and scores == sorted(scores, reverse=True)
          and abs(sum(scores) - 1) < 1e-4, a)
    with open(xray[0], "rb") as f:
        raw = f.read()
    b = c.predict("quadrant-demo", raw, top_k=1)
    check("predict(bytes, top_k=1) agrees with predict(path)",
          len(b["predictions"][0]["labels"]) == 1
          and b["predictions"][0]["labels"][0]["label"] == p["labels"][0]["label"]
          and abs(b["predictions"][0]["labels"][0]["score"] - scores[0]) < 1e-6, b)
    both = c.predict("quadrant-demo", [xray[0], xray[1]], top_k=2)
    check("predict([a, b]): two predictions in order",
          len(both["predictions"]) == 2 and both["predictions"][0]["labels"][0]["label"] == p["labels"][0]["label"],
          both)
    v2 = c.infer_v2("covid-resnet-demo", [xray[0]])
    probs = [o for o in v2["outputs"] if o["name"] == "probs"][0]
    v1 = c.predict("covid-resnet-demo", xray[0])
    order = models["covid-resnet-demo"]["labels"]
    check("infer_v2 probs match v1 scores",
          all(abs(probs["data"][order.index(l["label"])] - l["score"]) < 1e-5 for l in v1["predictions"][0]["labels"]),
          v2)
    e = raises(lambda: c.predict("no-such-model", raw))
    check("unknown model: SalientError 404 with the server's message",
          e is not None and e.status == 404 and e.message == "no model named 'no-such-model' (see GET /v1/models)", e)
    e = raises(lambda: c.predict("quadrant-demo", b"not an image"))
    check("not an image: 415", e is not None and e.status == 415 and "not a JPEG or PNG" in e.message, e)
    e = raises(lambda: Client("http://127.0.0.1:9", timeout=5).models())
    check("no server: status 0, says where", e is not None and e.status == 0
          and "cannot reach salientd at http://127.0.0.1:9" in e.message, e)
    check("metrics() is Prometheus text", 'salient_model_requests_total{model="quadrant-demo",status="200"}'
          in c.metrics())

    # The CLI: a whole folder, JSON lines in input order, progress on stderr.
    rc, out, err = run_cli(["--url", url, "predict", "quadrant-demo", phantoms, "--top-k", "2", "--jobs", "2"])
    lines = [json.loads(l) for l in out.splitlines()]
    check("CLI predict folder: exit 0, one JSON line per image in order",
          rc == 0 and [l["file"] for l in lines] == files and all(len(l["labels"]) == 2 for l in lines), (rc, out, err))
    check("CLI predict: progress on stderr", "[%d/%d]" % (len(files), len(files)) in err and "0 failed" in err, err)
    bad = os.path.join(out_dir, "broken.png")
    with open(bad, "wb") as f:
        f.write(b"not a png")
    rc, out, err = run_cli(["--url", url, "predict", "quadrant-demo", bad, xray[0], "--quiet"])
    lines = [json.loads(l) for l in out.splitlines()]
    check("CLI predict: a bad file is a JSON error line, the others still run, exit 1",
          rc == 1 and lines[0]["status"] == 415 and "error" in lines[0] and "labels" in lines[1] and err == "",
          (rc, out, err))
    rc, out, err = run_cli(["--url", url, "models"])
    check("CLI models", rc == 0 and any(m["name"] == "quadrant-demo" for m in json.loads(out)), out[:200])
    rc, out, err = run_cli(["--url", url, "health"])
    check("CLI health", rc == 0 and json.loads(out) == {"live": True, "ready": True}, out)
    rc, out, err = run_cli(["--url", url, "predict", "no-such-model", xray[0], "--quiet"])
    check("CLI predict unknown model: exit 1, error line", rc == 1 and json.loads(out)["status"] == 404, out)

    # Overlays: every layer's and the CAMs asked for, as files named after the image.
    ov = os.path.join(out_dir, "overlays")
    rc, out, err = run_cli(["--url", url, "predict", "quadrant-demo", xray[0], "--overlays", ov,
                            "--cam-labels", "Normal,COVID-19", "--quiet"])
    line = json.loads(out)
    written = line.get("attention", {}).get("overlays", [])
    pngs = all(open(w["file"], "rb").read(8) == b"\x89PNG\r\n\x1a\n" for w in written)
    ofs = [w["of"] for w in written]
    check("CLI --overlays writes one PNG per layer and CAM, the JSON line names them",
          rc == 0 and pngs and "cam/Normal" in ofs and "cam/COVID-19" in ofs
          and any(o.startswith("attention/") for o in ofs), out[:600])
    check("overlay files named after the image and what they show",
          [os.path.basename(w["file"]) for w in written if w["of"].startswith("cam/")] ==
          ["phantom_00000.cam_Normal.png", "phantom_00000.cam_COVID-19.png"], written)
    # save_overlays on its own, with a fabricated answer.
    one_px = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
    w = save_overlays({"attention": {"overlays": [{"of": "cam/Pleural Thickening", "png": base64.b64encode(one_px).decode()}]}},
                      os.path.join(out_dir, "saved"), "x/y")
    check("save_overlays names files safely", len(w) == 1 and os.path.basename(w[0]["file"]) ==
          "x_y.cam_Pleural_Thickening.png" and open(w[0]["file"], "rb").read() == one_px, w)

    photos = os.environ.get("SALIENT_FACE_PHOTOS", "").split()
    if len(photos) == 2:
        v = c.verify(photos[0], photos[0])
        check("verify(a, a): same person, distance ~0", v["same_person"] is True and v["distance"] < 1e-4, v)
        v = c.verify(photos[0], photos[1], threshold=0.9)
        check("verify(a, b, threshold=0.9): the threshold is the one asked for",
              v["threshold"] == 0.9 and v["same_person"] == (v["distance"] < 0.9), v)
        e = raises(lambda: c.verify(photos[0], xray[0]))
        check("verify with a radiograph: 422, no face in image 2", e is not None and e.status == 422
              and e.message.startswith("no face found in image 2"), e)
        rc, out, err = run_cli(["--url", url, "verify", photos[0], photos[1]])
        v = json.loads(out) if rc == 0 else {}
        check("CLI verify: one JSON line", rc == 0 and v.get("same_person") is False and len(v.get("faces", [])) == 2, out + err)
        rc, out, err = run_cli(["--url", url, "predict", "faces", photos[0], "--quiet"])
        line = json.loads(out) if out else {}
        check("CLI predict on the faces model: faces in the line", rc == 0 and len(line.get("faces", [])) >= 1
              and len(line["faces"][0]["descriptor"]) == 128, out[:300])
    else:
        print("# no face photos: verify not checked")

    keyed = os.environ.get("SALIENT_KEYED_URL")
    if keyed:
        key = os.environ["SALIENT_TEST_KEY"]
        e = raises(lambda: Client(keyed, api_key="").models())
        check("API key: none -> 401", e is not None and e.status == 401, e)
        e = raises(lambda: Client(keyed, api_key="wrong").models())
        check("API key: wrong -> 403", e is not None and e.status == 403, e)
        check("API key: right -> predictions", len(Client(keyed, api_key=key).predict("quadrant-demo", raw)["predictions"]) == 1)
        rc, out, err = run_cli(["--url", keyed, "--api-key", key, "predict", "quadrant-demo", xray[0], "--quiet"])
        check("CLI --api-key", rc == 0 and "labels" in json.loads(out), out)


if __name__ == "__main__":
    run(sys.argv[1], sys.argv[2])
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)
