#!/usr/bin/env python3
"""salient_client: a client for salientd using only Python's standard library (3.8+).

As a module:

    from salient_client import Client, SalientError
    c = Client("http://localhost:8080", api_key=None)     # or $SALIENT_URL / $SALIENT_API_KEY
    for m in c.models():
        print(m["name"], m["demo"], m["labels"])
    answer = c.predict("chexnet-demo", "xray.png", top_k=3, attention="png")
    pred = answer["predictions"][0]
    print(pred["labels"][0])                              # {"label": "Effusion", "score": 0.81}
    save_overlays(pred, "out/", "xray")                    # out/xray.cam_Effusion.png, ...
    c.verify("a.jpg", "b.jpg")                              # the faces model: same person or not

Every call returns the server's decoded JSON answer (metrics(): the Prometheus text). An answer
that is not 2xx raises SalientError with the HTTP status and the server's own message.

As a command (the `salient` CLI; see clients/README.md):

    salient_client.py models
    salient_client.py predict chexnet-demo xray.png scans/ --top-k 3 --overlays out/ > results.jsonl
    salient_client.py verify a.jpg b.jpg
    salient_client.py health
"""
import argparse
import base64
import concurrent.futures
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

__all__ = ["Client", "SalientError", "save_overlays", "find_images", "main"]

DEFAULT_URL = "http://localhost:8080"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class SalientError(Exception):
    """An answer that is not 2xx (status is the HTTP status), or no answer at all (status 0)."""

    def __init__(self, status, message, body=None):
        super().__init__("HTTP %d: %s" % (status, message) if status else message)
        self.status = status
        self.message = message
        self.body = body


def _image_bytes(image):
    """bytes of an image given as bytes, a path, or a binary file object."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image)
    if hasattr(image, "read"):
        return image.read()
    with open(os.fspath(image), "rb") as f:
        return f.read()


def _b64(image):
    return base64.b64encode(_image_bytes(image)).decode("ascii")


class Client:
    """One salientd. Thread-safe: every call is its own HTTP request."""

    def __init__(self, url=None, api_key=None, timeout=120.0):
        self.url = (url or os.environ.get("SALIENT_URL") or DEFAULT_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else (os.environ.get("SALIENT_API_KEY") or None)
        self.timeout = timeout

    # ---- transport ------------------------------------------------------------------------

    def request(self, method, path, body=None, content_type=None, raw=False):
        """Send one request; the decoded JSON answer (raw=True: the text). Raises SalientError."""
        headers = {"Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = "Bearer " + self.api_key
        data = None
        if body is not None:
            if isinstance(body, (bytes, bytearray)):
                data = bytes(body)
            else:
                data = json.dumps(body).encode("utf-8")
                content_type = content_type or "application/json"
            headers["Content-Type"] = content_type or "application/octet-stream"
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                text = r.read().decode("utf-8")
        except urllib.error.HTTPError as e:
            text = e.read().decode("utf-8", "replace")
            try:
                payload = json.loads(text)
                message = payload.get("error") or text
            except ValueError:
                payload, message = None, text.strip() or e.reason
            raise SalientError(e.code, message, payload) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise SalientError(0, "cannot reach salientd at %s: %s" % (self.url, reason)) from None
        if raw:
            return text
        try:
            return json.loads(text)
        except ValueError:
            raise SalientError(0, "the answer from %s%s is not JSON" % (self.url, path)) from None

    # ---- endpoints ------------------------------------------------------------------------

    def live(self):
        """True when the process answers (GET /v2/health/live)."""
        return bool(self.request("GET", "/v2/health/live").get("live"))

    def ready(self):
        """True when every model is loaded and the server is not draining; False on 503."""
        try:
            return bool(self.request("GET", "/v2/health/ready").get("ready"))
        except SalientError as e:
            if e.status == 503:
                return False
            raise

    def server(self):
        """Server metadata (GET /v2): name, version, extensions."""
        return self.request("GET", "/v2")

    def models(self):
        """The models, loaded or not: [{"name", "version", "demo", "state", "labels", "manifest", ...}]."""
        return self.request("GET", "/v1/models")["models"]

    def model(self, name):
        """One model's description (GET /v1/models/{name})."""
        return self.request("GET", "/v1/models/" + urllib.parse.quote(name, safe=""))

    def predict(self, model, images, top_k=None, attention=None, attention_layers=None, cam_labels=None):
        """POST /v1/models/{model}:predict with one image (bytes, path or file) or a list of them.

        attention: "none", "maps" (grids of floats) or "png" (maps plus base64 PNG overlays of
        the input's size); attention_layers: which layers (default: the manifest's); cam_labels:
        the labels whose class activation maps to return (default: the best label). Returns
        {"model", "version", "demo", "predictions": [...]} with one prediction per image, in order.
        """
        params = {}
        if top_k is not None:
            params["top_k"] = top_k
        if attention is not None:
            params["attention"] = attention
        if attention_layers is not None:
            params["attention_layers"] = list(attention_layers)
        if cam_labels is not None:
            params["cam_labels"] = list(cam_labels)
        if isinstance(images, (list, tuple)):
            body = {"instances": [{"image": _b64(i)} for i in images]}
        else:
            body = {"image": _b64(images)}
        if params:
            body["parameters"] = params
        return self.request("POST", "/v1/models/%s:predict" % urllib.parse.quote(model, safe=""), body)

    def infer_v2(self, model, images, parameters=None):
        """Open Inference Protocol v2: POST /v2/models/{model}/infer with the images as one BYTES
        input. Returns the v2 answer: {"model_name", "outputs": [{"name": "probs", ...}, ...]}."""
        if not isinstance(images, (list, tuple)):
            images = [images]
        body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [len(images)],
                            "data": [_b64(i) for i in images]}]}
        if parameters:
            body["parameters"] = parameters
        return self.request("POST", "/v2/models/%s/infer" % urllib.parse.quote(model, safe=""), body)

    def verify(self, image_a, image_b, threshold=None, model=None):
        """Face verification (POST /v1/faces:verify): the best face of each image ->
        {"distance", "threshold", "same_person", "faces": [two boxes], ...}. threshold: the
        descriptor distance under which it is one person (server default 0.6, face-api's);
        model: the faces model (default "faces"). An image without a face is a 422."""
        body = {"images": [_b64(image_a), _b64(image_b)]}
        if threshold is not None:
            body["threshold"] = threshold
        if model is not None:
            body["model"] = model
        return self.request("POST", "/v1/faces:verify", body)

    def metrics(self):
        """GET /metrics as Prometheus text."""
        return self.request("GET", "/metrics", raw=True)


# ---- helpers --------------------------------------------------------------------------------

def _safe(name):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "overlay"


def save_overlays(prediction, out_dir, stem):
    """Write each base64 PNG overlay of one prediction (asked with attention="png") to
    out_dir/<stem>.<of>.png, "/" in `of` becoming "_" (attention/denseblock4 ->
    <stem>.attention_denseblock4.png). Returns [{"of", "file"}] in the answer's order."""
    written = []
    overlays = (prediction.get("attention") or {}).get("overlays") or []
    os.makedirs(out_dir, exist_ok=True)
    for o in overlays:
        path = os.path.join(out_dir, "%s.%s.png" % (_safe(stem), _safe(o["of"].replace("/", "_"))))
        with open(path, "wb") as f:
            f.write(base64.b64decode(o["png"]))
        written.append({"of": o["of"], "file": path})
    return written


def find_images(paths):
    """Files as given, folders walked (sorted) for .png/.jpg/.jpeg; raises FileNotFoundError."""
    found = []
    for p in paths:
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for f in sorted(files):
                    if f.lower().endswith(IMAGE_SUFFIXES) and not f.startswith("."):
                        found.append(os.path.join(root, f))
        elif os.path.isfile(p):
            found.append(p)
        else:
            raise FileNotFoundError("no such file or folder: %s" % p)
    return found


class _Progress:
    """[n/total] lines on stderr; one line rewritten in place when stderr is a terminal."""

    def __init__(self, total, quiet):
        self.total, self.done, self.failed = total, 0, 0
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.t0 = time.monotonic()

    def step(self, path, error=None):
        self.done += 1
        self.failed += error is not None
        if self.quiet:
            return
        rate = self.done / max(time.monotonic() - self.t0, 1e-6)
        line = "[%d/%d] %s %s (%.1f images/s)" % (self.done, self.total, path,
                                                  "FAILED: " + error if error else "ok", rate)
        if self.tty:
            sys.stderr.write("\r\033[K" + line + ("\n" if self.done == self.total else ""))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _predict_files(client, args, out):
    files = find_images(args.paths)
    if not files:
        print("salient: no .png/.jpg/.jpeg images in %s" % " ".join(args.paths), file=sys.stderr)
        return 1
    attention = args.attention or ("png" if args.overlays else None)
    cam = args.cam_labels.split(",") if args.cam_labels else None
    layers = args.layers.split(",") if args.layers else None
    progress = _Progress(len(files), args.quiet)
    # Overlay files are named after the image's path below the folder all images share.
    common = os.path.dirname(files[0]) if len(files) == 1 else os.path.commonpath([os.path.abspath(f) for f in files])

    def one(path):
        try:
            answer = client.predict(args.model, path, top_k=args.top_k, attention=attention,
                                    attention_layers=layers, cam_labels=cam)
        except SalientError as e:
            return {"file": path, "status": e.status, "error": e.message}
        except OSError as e:
            return {"file": path, "status": 0, "error": str(e)}
        pred = answer["predictions"][0]
        line = {"file": path, "model": answer.get("model"), "version": answer.get("version"),
                "demo": answer.get("demo", False)}
        line.update(pred)
        if args.overlays and pred.get("attention", {}).get("overlays") is not None:
            stem = os.path.splitext(os.path.relpath(os.path.abspath(path), os.path.abspath(common)))[0].replace(os.sep, "_")
            line["attention"] = dict(pred["attention"])
            line["attention"]["overlays"] = save_overlays(pred, args.overlays, stem)
        return line

    # Concurrent requests let the server batch them; results still come out in input order.
    failed = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for path, line in zip(files, pool.map(one, files)):
            progress.step(path, line.get("error"))
            failed += "error" in line
            out.write(json.dumps(line) + "\n")
            out.flush()
    if not args.quiet:
        print("salient: %d image(s), %d failed" % (len(files), failed), file=sys.stderr)
    return 1 if failed else 0


def main(argv=None, out=None):
    """The CLI. Returns the exit status: 0 all well, 1 a request failed, 2 bad usage."""
    out = out or sys.stdout
    ap = argparse.ArgumentParser(prog="salient", description="Talk to salientd: models, predictions, "
                                 "attention overlays, face verification.")
    ap.add_argument("--url", default=None, help="salientd's base URL (default $SALIENT_URL or %s)" % DEFAULT_URL)
    ap.add_argument("--api-key", default=None, help="API key (default $SALIENT_API_KEY)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default 120)")
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("health", help="live and ready")
    sub.add_parser("models", help="list the models (JSON)")
    p = sub.add_parser("predict", help="predict files and folders; one JSON line per image on stdout")
    p.add_argument("model")
    p.add_argument("paths", nargs="+", metavar="PATH", help="images, or folders of .png/.jpg/.jpeg")
    p.add_argument("--top-k", type=int, default=None, help="labels per image (default: all)")
    p.add_argument("--attention", choices=["none", "maps", "png"], default=None,
                   help="attention maps as grids (maps) or also as PNG overlays (png)")
    p.add_argument("--overlays", metavar="DIR", default=None,
                   help="write each overlay PNG to DIR (implies --attention png); the JSON line names the files")
    p.add_argument("--cam-labels", metavar="A,B", default=None, help="labels to return CAMs for (default: the best)")
    p.add_argument("--layers", metavar="A,B", default=None, help="attention layers (default: the model's)")
    p.add_argument("--jobs", type=int, default=2, help="requests in flight (default 2)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    v = sub.add_parser("verify", help="are two face photos the same person?")
    v.add_argument("image_a")
    v.add_argument("image_b")
    v.add_argument("--threshold", type=float, default=None, help="distance under which it is one person (server: 0.6)")
    v.add_argument("--model", default=None, help="the faces model (default: faces)")
    args = ap.parse_args(argv)
    client = Client(args.url, args.api_key, args.timeout)
    try:
        if args.command == "health":
            out.write(json.dumps({"live": client.live(), "ready": client.ready()}) + "\n")
            return 0
        if args.command == "models":
            out.write(json.dumps(client.models(), indent=1) + "\n")
            return 0
        if args.command == "verify":
            out.write(json.dumps(client.verify(args.image_a, args.image_b, args.threshold, args.model)) + "\n")
            return 0
        return _predict_files(client, args, out)
    except SalientError as e:
        print("salient: %s" % e, file=sys.stderr)
        return 1
    except OSError as e:
        print("salient: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
