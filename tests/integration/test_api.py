"""test_api.py: every endpoint and every way of sending an image gives the same predictions;
model listing and metadata fields; /metrics and /openapi.json; model control (unload, load).
Reloads under load, failed reloads onto corrupt weights and SIGTERM under load: test_faults.py.

One salientd on loopback serving copies of chexnet-demo (DenseNet, 14 sigmoid labels) and
covid-resnet-demo (ResNet-18, 3 softmax classes). Most comparisons use the ResNet, which is
fast; the DenseNet is checked on the paths that differ in how its answer is built.
Run by test_api.sh (make check)."""
import base64
import json
import math
import re
import sys
import time

from salientd_harness import (Checks, Response, Server, b64, data, make_repo, max_diff, multipart, parse_raw, raw_http,
                              v1_scores, v2_json, v2_scores)

TOL = 1e-6
CX, CV = "chexnet-demo", "covid-resnet-demo"


def main():
    t = Checks()
    repo = make_repo(t.tmp, [CX, CV])
    png = [data("phantom_%05d.png" % i) for i in range(3)]
    rgb = data("phantom_00000_rgb.png")
    jpg = data("phantom_00000_q90.jpg")
    s = Server(t.tmp, repo).start()
    try:
        run(t, s, repo, png, rgb, jpg)
    finally:
        s.kill()
    return t.finish()


def predict(s, model, body, ctype=None, query=""):
    headers = {"Content-Type": ctype} if ctype else None
    return s.request("POST", "/v1/models/%s:predict%s" % (model, query), body, headers)


def predict_all(s, model, items):
    """predict() for each (body, ctype[, query]) at once: fewer batches on a busy machine. The
    answers of a batch equal those of single requests within TOL (test_concurrency.py)."""
    reqs = []
    for it in items:
        body, ctype, query = (tuple(it) + ("",))[:3]
        reqs.append(("POST", "/v1/models/%s:predict%s" % (model, query), body,
                     {"Content-Type": ctype} if ctype else None))
    return [r if hasattr(r, "status") else Response(0, {}, repr(r).encode()) for r in s.requests(reqs)]


def check_v1_answer(t, name, r, model, n=1, nlabels=None):
    """The fields every v1 prediction answer carries; True if the answer is usable."""
    if not t.check(name + ": 200", r.status == 200, "status %d: %r" % (r.status, r.body[:300])):
        return False
    j = r.json()
    good = (isinstance(j, dict) and set(j) == {"model", "version", "demo", "predictions"} and j["model"] == model
            and j["version"] == "1" and j["demo"] is True and len(j["predictions"]) == n)
    for p in j.get("predictions", []) if good else []:
        tm = p.get("timing_ms", {})
        good = good and set(p) == {"labels", "timing_ms"} and set(tm) == {"queue", "preprocess", "compute", "batch"}
        good = good and all(isinstance(tm[k], (int, float)) and tm[k] >= 0 for k in tm) and tm["batch"] >= 1
        scores = [e["score"] for e in p["labels"]]
        good = good and scores == sorted(scores, reverse=True) and all(0 <= x <= 1 for x in scores)
        if nlabels is not None:
            good = good and len(p["labels"]) == nlabels
    return t.check(name + ": model, version, demo, predictions[].labels sorted, timing_ms", good,
                   r.body[:400].decode("utf-8", "replace"))


def same(t, name, want, got, tol=TOL):
    d = max_diff(want, got)
    return t.check(name, d <= tol, "max difference %g (want <= %g): %r vs %r" % (d, tol, want, got))


def run(t, s, repo, png, rgb, jpg):
    t.ok("salientd serves %s and %s on port %d" % (CX, CV, s.port))

    # ---- the reference: a raw PNG body ----
    r = predict(s, CV, png[0], "image/png")
    check_v1_answer(t, "v1 raw image/png (%s)" % CV, r, CV, nlabels=3)
    ref = v1_scores(r)
    t.check("softmax classes sum to 1", abs(sum(ref.values()) - 1) < 1e-5, repr(ref))
    t.eq("labels are the manifest's", {"COVID-19", "Normal", "Viral Pneumonia"}, set(ref))

    # ---- every v1 input path, same PNG bytes ----
    std = b64(png[0])
    url = base64.urlsafe_b64encode(png[0]).decode().rstrip("=")
    url_lines = "\n".join(url[i:i + 76] for i in range(0, len(url), 76)) + "\n"
    t.check("the URL-safe text really uses - or _", "-" in url or "_" in url)
    body, ctype = multipart([("image", "xray.png", "image/png", png[0])])
    paths = [
        ("v1 JSON base64", {"image": std}, None),
        ("v1 JSON base64 with charset in Content-Type", json.dumps({"image": std}), "application/json; charset=utf-8"),
        ("v1 JSON data: URI", {"image": "data:image/png;base64," + std}, None),
        ("v1 JSON data: URI with a wrong media type (bytes decide)", {"image": "data:image/jpeg;base64," + std},
         None),
        ("v1 JSON URL-safe base64, no padding, newlines every 76", {"image": url_lines}, None),
        ("v1 JSON instances: [string]", {"instances": [std]}, None),
        ("v1 JSON without Content-Type", json.dumps({"image": std}), ""),
        ("v1 raw application/octet-stream", png[0], "application/octet-stream"),
        ("v1 multipart (curl -F image=@xray.png)", body, ctype),
    ]
    for (name, _, _), r in zip(paths, predict_all(s, CV, [p[1:] for p in paths])):
        if check_v1_answer(t, name, r, CV, nlabels=3):
            same(t, name + ": same scores as raw PNG", ref, v1_scores(r))

    # ---- transfer details: chunked upload, Expect: 100-continue (curl's way for big files),
    # several requests on one keep-alive connection ----
    r = s.request("POST", "/v1/models/%s:predict" % CV, iter([png[0][:10000], png[0][10000:]]),
                  {"Content-Type": "image/png"}, chunked=True)
    same(t, "v1 raw PNG sent chunked: same scores", ref, v1_scores(r) if r.status == 200 else None)
    raw = raw_http(s.port, ("POST /v1/models/%s:predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                            "Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % (CV, len(png[0]))).encode(),
                   body_after_continue=png[0])
    t.check("Expect: 100-continue: 100 Continue, then the answer", raw.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"),
            raw[:100])
    r = parse_raw(raw[len(b"HTTP/1.1 100 Continue\r\n\r\n"):])
    same(t, "Expect: 100-continue: same scores", ref, v1_scores(r) if r.status == 200 else None)
    c = s.connect()
    try:
        kept = []
        for i in range(3):
            c.request("POST", "/v1/models/%s:predict" % CV, body=png[0], headers={"Content-Type": "image/png"})
            r = c.getresponse()
            kept.append((r.status, r.read()))
        c.request("GET", "/v2/health/live")
        r = c.getresponse()
        kept.append((r.status, r.read()))
    finally:
        c.close()
    t.check("one keep-alive connection: 3 predictions and a health check, all 200",
            [k[0] for k in kept] == [200] * 4 and all(
                max_diff(ref, {e["label"]: e["score"] for e in json.loads(b)["predictions"][0]["labels"]}) <= TOL
                for _, b in kept[:3]), repr([k[0] for k in kept]))

    # ---- v2 infer, BYTES ----
    r = s.request("POST", "/v2/models/%s/infer" % CV, v2_json(png[0]))
    j = r.json() or {}
    t.eq("v2 infer BYTES: 200", 200, r.status)
    t.check("v2 infer answer: model_name, model_version, parameters.demo, parameters.timing_ms",
            set(j) == {"model_name", "model_version", "parameters", "outputs"} and j["model_name"] == CV
            and j["model_version"] == "1" and j["parameters"].get("demo") is True
            and set(j["parameters"].get("timing_ms", {})) == {"queue", "preprocess", "compute", "batch"}, repr(j)[:400])
    outs = {o["name"]: o for o in j.get("outputs", [])}
    t.check("v2 outputs probs and logits, FP32 [1, 3]",
            set(outs) == {"probs", "logits"} and all(o["datatype"] == "FP32" and o["shape"] == [1, 3]
                                                     and len(o["data"]) == 3 for o in outs.values()), repr(outs))
    meta = s.request("GET", "/v2/models/%s" % CV).json() or {}
    labels = meta.get("parameters", {}).get("labels", [])
    same(t, "v2 probs (in metadata label order) equal v1 scores", ref, v2_scores(r, labels))
    if "logits" in outs:
        lg = outs["logits"]["data"]
        z = sum(math.exp(x) for x in lg)
        same(t, "v2 probs are softmax(logits)", dict(zip(labels, (math.exp(x) / z for x in lg))),
             v2_scores(r, labels), 1e-5)
    r = s.request("POST", "/v2/models/%s/versions/1/infer" % CV, v2_json(png[0]))
    t.eq("v2 infer on /versions/1: 200", 200, r.status)
    same(t, "v2 /versions/1/infer: same probs", ref, v2_scores(r, labels))

    # ---- gray and RGB PNG of the same pixels ----
    r = predict(s, CV, rgb, "image/png")
    if check_v1_answer(t, "v1 RGB PNG of the gray phantom", r, CV):
        same(t, "gray PNG and its RGB copy give the same scores", ref, v1_scores(r))

    # ---- JPEG: other pixels, so JPEG paths are compared with each other ----
    r = predict(s, CV, jpg, "image/jpeg")
    check_v1_answer(t, "v1 raw image/jpeg", r, CV, nlabels=3)
    jref = v1_scores(r)
    t.check("the JPEG's scores are close to the PNG's, not equal (other pixels)",
            0 < max_diff(ref, jref) < 0.05, "difference %g" % max_diff(ref, jref))
    body, ctype = multipart([("image", "xray.jpg", "image/jpeg", jpg)])
    jpaths = [("v1 JSON base64 JPEG", {"image": b64(jpg)}, None),
              ("v1 JSON data: URI JPEG", {"image": "data:image/jpeg;base64," + b64(jpg)}, None),
              ("v1 multipart JPEG", body, ctype)]
    for (name, _, _), r in zip(jpaths, predict_all(s, CV, [p[1:] for p in jpaths])):
        if check_v1_answer(t, name, r, CV):
            same(t, name + ": same scores as raw JPEG", jref, v1_scores(r))
    r = s.request("POST", "/v2/models/%s/infer" % CV, v2_json(jpg))
    same(t, "v2 BYTES JPEG: same probs as raw JPEG", jref, v2_scores(r, labels))

    # ---- several images in one request == one request each ----
    singles = [ref]
    for i in (1, 2):
        r = predict(s, CV, png[i], "image/png")
        singles.append(v1_scores(r))
    r = predict(s, CV, {"instances": [{"image": b64(png[0])}, b64(png[1]),
                                      {"image": "data:image/png;base64," + b64(png[2])}]})
    if check_v1_answer(t, "v1 instances with 3 images", r, CV, n=3, nlabels=3):
        for i in range(3):
            same(t, "instances[%d] == its single request" % i, singles[i], v1_scores(r, i))
        t.check("the 3 instances ran in one batch", all(p["timing_ms"]["batch"] >= 3 for p in r.json()["predictions"]),
                repr([p["timing_ms"] for p in r.json()["predictions"]]))
    r = s.request("POST", "/v2/models/%s/infer" % CV, v2_json(*png))
    t.check("v2 infer with shape [3]: probs [3, 3]",
            r.status == 200 and (r.json() or {}).get("outputs", [{}])[0].get("shape") == [3, 3], r.body[:300])
    if r.status == 200:
        for i in range(3):
            same(t, "v2 row %d == its single v1 request" % i, singles[i], v2_scores(r, labels, i))
    body, ctype = multipart([("image", "a.png", "image/png", png[2]), ("image", "b.png", None, png[1]),
                             ("parameters", None, "application/json", b'{"top_k": 3}')])
    r = predict(s, CV, body, ctype)
    if check_v1_answer(t, "v1 multipart with 2 images and parameters", r, CV, n=2, nlabels=3):
        same(t, "multipart image #1 (phantom 2)", singles[2], v1_scores(r, 0))
        same(t, "multipart image #2 (phantom 1)", singles[1], v1_scores(r, 1))

    # ---- top_k ----
    order = sorted(ref, key=lambda k: -ref[k])
    tpaths = [("parameters.top_k 2 (JSON)", {"image": std, "parameters": {"top_k": 2}}, None, ""),
              ("?top_k=2 on a raw body", png[0], "image/png", "?top_k=2"),
              ("top_k 2 in a multipart parameters field",
               *multipart([("image", "x.png", "image/png", png[0]), ("parameters", None, None, b'{"top_k": 2}')]), ""),
              ("top_k larger than the labels gives them all", {"image": std, "parameters": {"top_k": 100}}, None, "")]
    answers = predict_all(s, CV, [p[1:] for p in tpaths])
    t.eq(tpaths[-1][0], 3, len((answers[-1].json() or {"predictions": [{"labels": []}]})["predictions"][0]["labels"]))
    for (name, _, _, _), r in zip(tpaths[:-1], answers[:-1]):
        if check_v1_answer(t, name, r, CV, nlabels=2):
            got = r.json()["predictions"][0]["labels"]
            t.eq(name + ": the 2 best labels", order[:2], [e["label"] for e in got])
            same(t, name + ": their scores", {k: ref[k] for k in order[:2]}, v1_scores(r))

    # ---- the DenseNet (14 sigmoid labels) through raw, JSON, v2 and top_k ----
    r = predict(s, CX, png[0], "image/png")
    check_v1_answer(t, "v1 raw PNG (%s)" % CX, r, CX, nlabels=14)
    cref = v1_scores(r)
    # Phantom 0 was drawn with Effusion and Cardiomegaly (tests/data/phantoms_ground_truth.json),
    # which the demo model finds with AUC ~1.
    t.check("%s finds phantom 0's Cardiomegaly and Effusion (> 0.5)" % CX,
            cref.get("Cardiomegaly", 0) > 0.5 and cref.get("Effusion", 0) > 0.5, repr(cref))
    t.check("%s: Hernia, never drawn, < 0.5" % CX, cref.get("Hernia", 1) < 0.5, repr(cref))
    r = predict(s, CX, {"image": std, "parameters": {"top_k": 3}})
    if check_v1_answer(t, "v1 JSON top_k 3 (%s)" % CX, r, CX, nlabels=3):
        corder = sorted(cref, key=lambda k: -cref[k])
        t.eq("%s top 3 are the raw answer's best 3" % CX, corder[:3],
             [e["label"] for e in r.json()["predictions"][0]["labels"]])
        same(t, "%s top 3 scores" % CX, {k: cref[k] for k in corder[:3]}, v1_scores(r))
    cmeta = s.request("GET", "/v2/models/%s" % CX).json() or {}
    r = s.request("POST", "/v2/models/%s/infer" % CX, v2_json(png[0]))
    same(t, "%s v2 probs equal v1 scores" % CX, cref, v2_scores(r, cmeta.get("parameters", {}).get("labels", [])))
    if r.status == 200:
        outs = {o["name"]: o for o in r.json()["outputs"]}
        t.check("%s v2 probs are sigmoid(logits)" % CX,
                max(abs(1 / (1 + math.exp(-l)) - p) for l, p in zip(outs["logits"]["data"], outs["probs"]["data"]))
                < 1e-5)

    # ---- listing and metadata ----
    r = s.request("GET", "/v1/models")
    models = {m["name"]: m for m in (r.json() or {}).get("models", [])}
    t.eq("GET /v1/models lists both", {CX, CV}, set(models))
    want = {"name", "version", "family", "task", "demo", "state", "labels", "input", "max_batch_size",
            "max_queue_delay_us", "max_queue_size", "manifest"}
    for name, fam, task, nl in [(CX, "densenet", "multilabel", 14), (CV, "resnet", "classification", 3)]:
        m = models.get(name, {})
        t.check("/v1/models %s fields" % name,
                set(m) == want and m["family"] == fam and m["task"] == task and m["state"] == "READY"
                and len(m["labels"]) == nl and m["input"] == [128, 128, 3] and m["max_batch_size"] == 8
                and m["max_queue_delay_us"] == 2000 and m["max_queue_size"] == 64 and m["demo"] is True
                and m["version"] == "1" and m["manifest"].get("labels") == m["labels"], repr(m)[:300])
        r1 = s.request("GET", "/v1/models/" + name)
        t.eq("GET /v1/models/%s equals its listing entry" % name, m, r1.json())
    t.eq("GET /v1/models/covid-resnet-demo labels", labels, models.get(CV, {}).get("labels"))
    r = s.request("GET", "/v1/models/nope")
    t.check("GET /v1/models/nope: 404 naming it", r.status == 404 and "no model named 'nope'" in (r.error() or ""),
            r.body[:200])

    t.check("/v2/models/%s metadata" % CV,
            meta.get("name") == CV and meta.get("versions") == ["1"] and meta.get("platform") == "salient"
            and meta.get("inputs") == [{"name": "image", "datatype": "BYTES", "shape": [-1]}]
            and meta.get("outputs") == [{"name": "probs", "datatype": "FP32", "shape": [-1, 3]},
                                        {"name": "logits", "datatype": "FP32", "shape": [-1, 3]}]
            and labels == ["COVID-19", "Normal", "Viral Pneumonia"]
            and meta["parameters"].get("input_size") == [128, 128, 3]
            and meta["parameters"].get("max_batch_size") == 8 and meta["parameters"].get("demo") is True, repr(meta))
    t.check("/v2/models/%s metadata: 14 labels, probs [-1, 14]" % CX,
            len(cmeta.get("parameters", {}).get("labels", [])) == 14
            and {"name": "probs", "datatype": "FP32", "shape": [-1, 14]} in cmeta.get("outputs", []), repr(cmeta)[:300])
    r = s.request("GET", "/v2/models/%s/versions/1" % CV)
    t.check("/v2/models/%s/versions/1 == the metadata" % CV, r.status == 200 and r.json() == meta)
    r = s.request("GET", "/v2/models/%s/versions/2" % CV)
    t.check("/v2/models/%s/versions/2: 404" % CV, r.status == 404 and "no version '2'" in (r.error() or ""), r.body)
    for p in ("/v2/models/%s/ready" % CV, "/v2/models/%s/versions/1/ready" % CV):
        r = s.request("GET", p)
        t.check("GET %s: 200 ready" % p, r.status == 200 and r.json() == {"name": CV, "ready": True}, r.body)
    r = s.request("GET", "/v2/health/ready")
    t.check("GET /v2/health/ready: 200", r.status == 200 and r.json() == {"ready": True}, r.body)
    r = s.request("HEAD", "/v2/health/live")
    t.check("HEAD /v2/health/live: 200, no body", r.status == 200 and r.body == b"", r.body)
    r = s.request("GET", "/v2")
    t.check("GET /v2: server metadata", r.status == 200 and (r.json() or {}).get("name") == "salient"
            and "model_repository" in r.json().get("extensions", []), r.body)

    # ---- /openapi.json ----
    r = s.request("GET", "/openapi.json")
    j = r.json()
    t.check("/openapi.json is a JSON OpenAPI 3 document",
            r.status == 200 and r.headers.get("content-type", "").startswith("application/json") and isinstance(j, dict)
            and str(j.get("openapi", "")).startswith("3.") and isinstance(j.get("paths"), dict), r.body[:200])

    # ---- /metrics: counts what was asked since m0 ----
    r = s.request("GET", "/metrics")
    text = r.body.decode("utf-8", "replace")
    t.check("/metrics Content-Type is Prometheus text 0.0.4",
            r.headers.get("content-type", "").startswith("text/plain; version=0.0.4"), r.headers.get("content-type"))
    bad = [l for l in text.splitlines() if l and not l.startswith("# HELP ") and not l.startswith("# TYPE ")
           and not re.match(r'^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9.e+-]+$', l)]
    t.check("/metrics: every line is a HELP, TYPE or sample line", not bad, repr(bad[:3]))
    # Exactly these since m0: 3 single images and one 3-image request answered 200, and one
    # prediction for a model that does not exist (404, counted server-wide only).
    m0 = s.metrics()
    for i in range(3):
        predict(s, CV, png[i], "image/png")
    predict(s, CV, {"instances": [b64(x) for x in png]})
    predict(s, "nope", png[0], "image/png")
    m1 = s.metrics()

    def delta(k):
        return m1.get(k, 0) - m0.get(k, 0)
    t.eq("/metrics: 4 requests of %s answered 200" % CV, 4,
         delta('salient_model_requests_total{model="%s",status="200"}' % CV))
    t.eq("/metrics: 6 images run (inference_count)", 6, delta('salient_model_inference_count_total{model="%s"}' % CV))
    t.check("/metrics: 1..4 batches run (execution_count)",
            1 <= delta('salient_model_execution_count_total{model="%s"}' % CV) <= 4)
    t.eq("/metrics: server-wide 200s: those 4 and the first GET /metrics", 5,
         delta('salient_http_requests_total{status="200"}'))
    t.eq("/metrics: server-wide 404s: the unknown model", 1, delta('salient_http_requests_total{status="404"}'))
    t.check("/metrics: no model label for a model that does not exist",
            not any('model="nope"' in k for k in m1), repr([k for k in m1 if "nope" in k]))
    t.check("/metrics: compute and request time grow",
            delta('salient_model_compute_duration_us_total{model="%s"}' % CV) > 0
            and delta('salient_model_request_duration_us_total{model="%s"}' % CV) > 0)
    t.eq("/metrics: %s is loaded" % CV, 1, m1.get('salient_model_loaded{model="%s"}' % CV))
    t.eq("/metrics: 2 models loaded", 2, m1.get("salient_models_loaded"))
    # A request stays in flight from its headers until libmicrohttpd reports it complete, which
    # may be just after the client has read its answer: wait for the count to settle.
    m2, until = m1, time.monotonic() + 60
    while m2.get("salient_inflight_requests") != 0 and time.monotonic() < until:
        time.sleep(0.02)
        m2 = s.metrics()
    t.eq("/metrics: in flight back to 0 (the metrics request itself not counted)", 0,
         m2.get("salient_inflight_requests"))
    t.eq("/metrics: queue empty", 0, m1.get('salient_model_queue_depth{model="%s"}' % CV))

    # ---- model control from loopback ----
    control(t, s, repo, png[0], ref)


def control(t, s, repo, img, ref):
    p = "/v1/models/%s:predict" % CV
    ct = {"Content-Type": "image/png"}
    r = s.request("POST", "/v2/repository/index")
    t.check("POST /v2/repository/index from loopback: both READY",
            r.status == 200 and r.json() == [{"name": CX, "state": "READY", "version": "1"},
                                             {"name": CV, "state": "READY", "version": "1"}], r.body)
    r = s.request("POST", "/v2/repository/models/%s/unload" % CV)
    t.check("unload: 200 UNAVAILABLE", r.status == 200 and r.json() == {"name": CV, "state": "UNAVAILABLE"}, r.body)
    r = s.request("POST", p, img, ct)
    t.check("predict on an unloaded model: 503 'not loaded: unloaded' + Retry-After",
            r.status == 503 and "model '%s' is not loaded: unloaded" % CV in (r.error() or "")
            and r.headers.get("retry-after") == "1", "%d %r %r" % (r.status, r.body, r.headers))
    r = s.request("POST", "/v2/models/%s/infer" % CV, v2_json(img))
    t.eq("v2 infer on an unloaded model: 503", 503, r.status)
    r = s.request("GET", "/v2/models/%s/ready" % CV)
    t.check("ready of an unloaded model: 503 false", r.status == 503 and r.json() == {"name": CV, "ready": False},
            r.body)
    t.eq("/v2/health/ready with a model unloaded: 503", 503, s.request("GET", "/v2/health/ready").status)
    r = s.request("GET", "/v1/models/" + CV)
    t.check("/v1/models/%s says UNAVAILABLE, unloaded" % CV,
            r.status == 200 and r.json() == {"name": CV, "state": "UNAVAILABLE", "reason": "unloaded"}, r.body)
    r = s.request("POST", "/v2/repository/models/%s/unload" % CV)
    t.check("unload twice: 400 'not loaded'", r.status == 400 and "is not loaded" in (r.error() or ""), r.body)
    r = s.request("POST", "/v2/repository/models/%s/load" % CV)
    t.check("load: 200 READY", r.status == 200 and r.json() == {"name": CV, "state": "READY"}, r.body)
    r = s.request("POST", p, img, ct)
    t.eq("predict after load: 200", 200, r.status)
    same(t, "predict after load: same scores", ref, v1_scores(r) if r.status == 200 else None)
    r = s.request("POST", "/v2/repository/models/nope/load")
    t.check("load of a name not in the repository: 404",
            r.status == 404 and "not in the repository" in (r.error() or ""), r.body)
    t.eq("/v2/health/ready after load: 200", 200, s.request("GET", "/v2/health/ready").status)


if __name__ == "__main__":
    sys.exit(main())
