"""test_bad_requests.py: a table of bad requests, each with its expected status and error text;
the server never answers 500 and still answers a good request correctly afterwards. Then API
keys (--api-key) and CORS (--cors-origins) on a second server.

Every error must be a JSON body {"error": "..."} with Content-Type application/json.
Run by test_bad_requests.sh (make check)."""
import json
import re
import struct
import sys
import zlib

from salientd_harness import (Checks, Server, b64, data, make_repo, max_diff, multipart, parse_raw, raw_http,
                              v1_scores, v2_json)

CV = "covid-resnet-demo"
P = "/v1/models/%s:predict" % CV
V2 = "/v2/models/%s/infer" % CV
FORGED = "2026-01-01T00:00:00Z GET /forged model=- status=200"  # a log line a client must not write
LIMIT = 200000  # --max-body-bytes
MAXB = 4        # --max-batch-size


def png_chunk(kind, payload):
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_image(w, h, gray=128, rows=None):
    """An 8-bit gray PNG of w x h pixels; rows: how many rows of pixel data to include (all when
    None), so a header can claim more than the data holds."""
    n = h if rows is None else rows
    raw = b"".join(b"\0" + bytes([gray]) * w for _ in range(n))
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b""))


def jpeg_claiming(jpg, w, h):
    """jpg with its frame header (SOF0..SOF2) rewritten to say w x h."""
    m = re.search(b"\xff[\xc0\xc1\xc2]", jpg)
    i = m.start() + 5  # marker(2) length(2) precision(1)
    return jpg[:i] + struct.pack(">HH", h, w) + jpg[i + 4:]


def table(png, jpg):
    """(name, method, path, headers, body, status, error substring). body: bytes, str, or an
    object sent as JSON."""
    img = b64(png)
    small = b64(png_image(8, 8))  # batches of these stay under --max-body-bytes
    ct_png = {"Content-Type": "image/png"}
    ct_jpg = {"Content-Type": "image/jpeg"}
    js = {"Content-Type": "application/json"}
    mp_ok = multipart([("image", "x.png", "image/png", png)])
    mp_noimg = multipart([("parameters", None, None, b'{"top_k": 1}')])
    mp_unknown = multipart([("image", "x.png", "image/png", png), ("photo", "y.png", "image/png", png)])
    mp_badparams = multipart([("image", "x.png", "image/png", png), ("parameters", None, None, b"{top_k")])
    mp_latin1 = multipart([("image", "x.png", "image/png", png), ("photo\xe9", None, None, b"x")])
    mp_latin1 = (mp_latin1[0].replace(b"photo\xc3\xa9", b"photo\xe9"), mp_latin1[1])
    mp_text = multipart([("image", "Jane_Doe_1970.txt", "text/plain", b"hello, this is not an image")])
    return [
        # JSON shape
        ("invalid JSON", "POST", P, js, '{"image": ', 400, "body is not valid JSON"),
        ("invalid UTF-8 in JSON", "POST", P, js, b'{"image": "\xff\xfe"}', 400, "body is not valid JSON"),
        ("JSON not an object", "POST", P, js, "[1, 2]", 400, 'body must be a JSON object with "image" or "instances"'),
        ("JSON string, not an object", "POST", P, js, '"%s"' % img, 400, "body is not valid JSON: '[' or '{' expected"),
        ("missing image", "POST", P, js, {}, 400, 'missing "image" (base64 or data: URI) or "instances"'),
        ("image not a string", "POST", P, js, {"image": 5}, 400, "image must be a string"),
        ("image null", "POST", P, js, {"image": None}, 400, "image must be a string"),
        ("both image and instances", "POST", P, js, {"image": img, "instances": [img]}, 400,
         'give either "image" or "instances", not both'),
        ("instances empty", "POST", P, js, {"instances": []}, 400, '"instances" is empty'),
        ("instances not a list", "POST", P, js, {"instances": {"image": img}}, 400, '"instances" must be a list'),
        ("instance without image", "POST", P, js, {"instances": [{"img": img}]}, 400, 'instances[0] has no "image"'),
        ("instance image a number", "POST", P, js, {"instances": [img, {"image": 7}]}, 400,
         "instances[1].image must be a string"),
        ("unknown field", "POST", P, js, {"image": img, "extra": 1}, 400, "unknown field 'extra'"),
        # The message quotes the key, cut inside its first 2-byte character: still valid UTF-8.
        ("unknown field too long for the message", "POST", P, js,
         json.dumps({"image": img, "k" * 1007 + "\u00e9" * 10: 1}, ensure_ascii=False).encode(), 400,
         "unknown field 'kkkk"),
        ("instances over 256", "POST", P, js, {"instances": ["QUJD"] * 257},
         400, "257 instances in one request; at most 256"),
        # base64
        ("bad base64 character", "POST", P, js, {"image": "iVBOR%w0KGgo"}, 400,
         "image: invalid base64 character '%' at offset 5"),
        ("bad base64 character in instances[1]", "POST", P, js, {"instances": [img, "ab*d"]}, 400,
         "instances[1]: invalid base64 character '*' at offset 2"),
        ("bad base64 padding", "POST", P, js, {"image": "QUJDRA="}, 400,
         "base64 padding is not valid (1 '=' where 2 are needed)"),
        ("base64 padding in the middle", "POST", P, js, {"image": "QU==JD"},
         400, "base64 padding '=' at offset 2 is not at the end"),
        ("base64 length", "POST", P, js, {"image": "QUJDR"}, 400, "base64 length is not valid (1 character left over)"),
        ("empty base64", "POST", P, js, {"image": " \n"}, 400, "image: empty base64"),
        ("data: URI not base64", "POST", P, js, {"image": "data:image/png," + img},
         400, "data: URI is not base64-encoded"),
        ("data: URI without a comma", "POST", P, js, {"image": "data:image/png;base64"}, 400, "data: URI has no ','"),
        ("NUL escaped in JSON", "POST", P, js, '{"image": "QU\\u0000JD"}', 400, "not valid JSON"),
        # body and image bytes
        ("empty body", "POST", P, js, b"", 400, "empty body"),
        ("empty raw body", "POST", P, ct_png, b"", 400, "empty body"),
        ("truncated JPEG (half)", "POST", P, ct_jpg, jpg[:len(jpg) // 2], 400, "JPEG is corrupt or truncated"),
        ("truncated JPEG (headers only)", "POST", P, ct_jpg, jpg[:300], 400, "JPEG is corrupt or truncated"),
        ("truncated PNG (half)", "POST", P, ct_png, png[:len(png) // 2], 400, "PNG is corrupt or truncated"),
        ("truncated PNG (signature + 10 bytes)", "POST", P, ct_png, png[:18], 400, "PNG is corrupt or truncated"),
        ("truncated PNG in JSON base64", "POST", P, js, {"image": b64(png[:1000])}, 400,
         "image: PNG is corrupt or truncated"),
        ("PNG whose rows stop early", "POST", P, ct_png, png_image(64, 64, rows=10),
         400, "PNG is corrupt or truncated"),
        ("PNG 0 x 0", "POST", P, ct_png, png_image(0, 0), 400, "PNG is corrupt or truncated"),
        ("text bytes as image/png", "POST", P, ct_png, b"hello, this is not an image", 415,
         "body (image/png): not a JPEG or PNG image (27 bytes of something else)"),
        ("text bytes in JSON base64", "POST", P, js, {"image": b64(b"just text")},
         415, "image: not a JPEG or PNG image"),
        ("a GIF", "POST", P, {"Content-Type": "image/png"}, b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", 415,
         "GIF images are not supported; send JPEG or PNG"),
        ("PNG header claiming 100000 x 100000", "POST", P, ct_png, png_image(100000, 100000, rows=1), 413,
         "image is 100000x100000 pixels (10000000000), more than the limit of 50000000 pixels"),
        ("JPEG header claiming 65535 x 65535", "POST", P, ct_jpg, jpeg_claiming(jpg, 65535, 65535), 413,
         "image is 65535x65535 pixels"),
        ("giant PNG as instances[0]", "POST", P, js, {"instances": [b64(png_image(100000, 100000, rows=1))]}, 413,
         "instances[0]: image is 100000x100000"),
        ("body over --max-body-bytes (Content-Length)", "POST", P, ct_png, b"\0" * (LIMIT + 1), 413,
         "request body of %d bytes is over the limit of %d bytes" % (LIMIT + 1, LIMIT)),
        ("body over --max-body-bytes (chunked)", "POST", P, dict(ct_png, chunked=True),
         [b"\0" * 65536] * 4, 413, "request body is over the limit of %d bytes" % LIMIT),
        ("JSON body over --max-body-bytes", "POST", P, js, {"image": "A" * LIMIT}, 413, "over the limit"),
        # content types, routes, methods
        ("unsupported Content-Type text/csv", "POST", P, {"Content-Type": "text/csv"}, png, 415,
         "unsupported Content-Type 'text/csv'"),
        ("unsupported Content-Type image/gif", "POST", P, {"Content-Type": "image/gif"}, png, 415,
         "unsupported Content-Type 'image/gif'"),
        ("a Content-Type that is not UTF-8", "POST", P, {"Content-Type": "image/\xff"}, png, 415,
         "unsupported Content-Type 'image/?'"),
        ("unknown model", "POST", "/v1/models/nope:predict", ct_png, png, 404, "no model named 'nope'"),
        ("unknown model, v2", "POST", "/v2/models/nope/infer", js, v2_json(png), 404, "no model named 'nope'"),
        ("unknown model metadata", "GET", "/v2/models/nope", None, None, 404, "no model named 'nope'"),
        ("unknown model ready", "GET", "/v2/models/nope/ready", None, None, 404, "no model named 'nope'"),
        ("unknown version, v2 infer", "POST", "/v2/models/%s/versions/7/infer" % CV, js, v2_json(png), 404,
         "model '%s' has no version '7'" % CV),
        ("unknown path", "GET", "/v1/nope", None, None, 404, "no route for GET /v1/nope"),
        ("a path that is not UTF-8 (%FF)", "GET", "/v1/%FF", None, None, 404, "no route for GET /v1/? "),
        ("a path with a newline (%0A)", "GET", "/v1/x%0A" + FORGED.replace(" ", "%20"), None, None, 404,
         "no route for GET /v1/x\n"),
        ("model name with a slash", "POST", "/v2/repository/models/..%2F..%2Fetc/load", None, None,
         404, "no route for"),
        ("predict without ':predict'", "POST", "/v1/models/%s" % CV, ct_png, png, 405,
         "method POST is not allowed on /v1/models/%s (allowed: GET, HEAD)" % CV),
        ("GET on predict", "GET", P, None, None, 405, "method GET is not allowed on %s (allowed: POST)" % P),
        ("PUT on the repository index", "PUT", "/v2/repository/index", js, "{}", 405, "(allowed: POST)"),
        ("load a model not in the repository", "POST", "/v2/repository/models/nope/load", None, None, 404,
         "model 'nope' is not in the repository"),
        ("unload a model not loaded", "POST", "/v2/repository/models/nope/unload", None, None, 400,
         "model 'nope' is not loaded"),
        # batch size
        ("%d instances over max_batch_size %d" % (MAXB + 1, MAXB), "POST", P, js,
         {"instances": [small] * (MAXB + 1)}, 400,
         "%d images in one request; model '%s' takes at most %d (max_batch_size)" % (MAXB + 1, CV, MAXB)),
        ("v2 shape [%d] over max_batch_size" % (MAXB + 1), "POST", V2, js,
         v2_json(*[png_image(8, 8)] * (MAXB + 1)), 400,
         "takes at most %d (max_batch_size)" % MAXB),
        # parameters
        ("top_k 0", "POST", P, js, {"image": img, "parameters": {"top_k": 0}},
         400, "parameters.top_k must be a positive integer"),
        ("top_k \"x\"", "POST", P, js, {"image": img, "parameters": {"top_k": "x"}},
         400, "parameters.top_k must be a positive integer"),
        ("top_k 1.5", "POST", P, js, {"image": img, "parameters": {"top_k": 1.5}},
         400, "parameters.top_k must be a positive integer"),
        ("attention \"bogus\"", "POST", P, js, {"image": img, "parameters": {"attention": "bogus"}}, 400,
         'parameters.attention must be "none", "maps" or "png"'),
        ("unknown parameter", "POST", P, js, {"image": img, "parameters": {"foo": 1}}, 400,
         "unknown parameter 'foo' (known: top_k, attention, attention_layers, cam_labels; for face models"),
        ("parameters not an object", "POST", P, js, {"image": img, "parameters": [1]},
         400, "'parameters' must be an object"),
        ("?top_k=0 on a raw body", "POST", P + "?top_k=0", ct_png, png,
         400, "parameters.top_k must be a positive integer"),
        ("?top_k=x on a raw body", "POST", P + "?top_k=x", ct_png, png,
         400, "parameters.top_k must be a positive integer"),
        ("?attention=bogus on a raw body", "POST", P + "?attention=bogus", ct_png, png,
         400, "parameters.attention must be"),
        ("v2 top_k 0", "POST", V2, js, dict(v2_json(png), parameters={"top_k": 0}), 400, "parameters.top_k must be"),
        # v2
        ("v2 body not JSON", "POST", V2, js, "{", 400, "body is not valid JSON"),
        ("v2 no inputs", "POST", V2, js, {}, 400, 'body must be {"inputs": [{"name": "image", "datatype": "BYTES"'),
        ("v2 two inputs", "POST", V2, js, {"inputs": v2_json(png)["inputs"] * 2}, 400, 'body must be {"inputs"'),
        ("v2 input without a name", "POST", V2, js,
         {"inputs": [{"datatype": "BYTES", "shape": [1], "data": [b64(png)]}]},
          400, 'inputs[0] must be an object with a "name"'),
        ("v2 datatype FP32", "POST", V2, js,
         {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1], "data": [0.5]}]}, 400,
         'inputs[0].datatype must be "BYTES" (encoded images), got "FP32"'),
        ("v2 no datatype", "POST", V2, js, {"inputs": [{"name": "image", "shape": [1], "data": [b64(png)]}]}, 400,
         'inputs[0].datatype must be "BYTES" (encoded images), got nothing'),
        ("v2 shape mismatch", "POST", V2, js,
         {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2], "data": [b64(png)]}]}, 400,
         "inputs[0].shape must be [1], the number of images in data"),
        ("v2 shape negative", "POST", V2, js,
         {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [-1], "data": [b64(png)]}]}, 400,
         "inputs[0].shape must be [1]"),
        ("v2 data not a list", "POST", V2, js,
         {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": b64(png)}]}, 400,
         "inputs[0].data must be a non-empty list of base64 strings"),
        ("v2 data element not a string", "POST", V2, js,
         {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2], "data": [b64(png), 3]}]}, 400,
         "inputs[0].data[1] must be a base64 string"),
        ("v2 data element bad base64", "POST", V2, js,
         {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["ab!d"]}]}, 400,
         "inputs[0].data[0]: invalid base64 character '!' at offset 2"),
        ("v2 data element not an image", "POST", V2, js, v2_json(b"plain text"),
         415, "inputs[0].data[0]: not a JPEG or PNG"),
        # multipart
        ("multipart without boundary", "POST", P, {"Content-Type": "multipart/form-data"}, mp_ok[0], 400,
         "multipart body has no boundary parameter"),
        ("multipart with another boundary", "POST", P, {"Content-Type": "multipart/form-data; boundary=other"},
         mp_ok[0], 400, "multipart body does not start with the boundary"),
        ("multipart cut before its closing boundary", "POST", P, {"Content-Type": mp_ok[1]}, mp_ok[0][:-40], 400,
         "multipart body ends before its closing boundary"),
        ("multipart without an image field", "POST", P, {"Content-Type": mp_noimg[1]}, mp_noimg[0], 400,
         "the form has no 'image' field"),
        ("multipart with an unknown field", "POST", P, {"Content-Type": mp_unknown[1]}, mp_unknown[0], 400,
         "unknown form field 'photo'"),
        ("multipart parameters not JSON", "POST", P, {"Content-Type": mp_badparams[1]}, mp_badparams[0], 400,
         "form field 'parameters' is not valid JSON"),
        ("multipart field name that is not UTF-8", "POST", P, {"Content-Type": mp_latin1[1]}, mp_latin1[0], 400,
         "unknown form field 'photo?'"),
        ("multipart image that is text", "POST", P, {"Content-Type": mp_text[1]}, mp_text[0], 415,
         "form field 'image' #1: not a JPEG or PNG image"),
    ]


def send(s, method, path, headers, body):
    headers = dict(headers or {})
    chunked = headers.pop("chunked", False)
    if chunked:
        return s.request(method, path, iter(body), headers, chunked=True)
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    return s.request(method, path, body, headers)


def main():
    t = Checks()
    repo = make_repo(t.tmp, [CV])
    png = data("phantom_00000.png")
    jpg = data("phantom_00000_q90.jpg")
    s = Server(t.tmp, repo, "--max-body-bytes", str(LIMIT), "--max-batch-size", str(MAXB), name="limits").start()
    try:
        ref = s.request("POST", P, png, {"Content-Type": "image/png"})
        t.eq("a good request first: 200", 200, ref.status)
        ref = v1_scores(ref)
        rows = table(png, jpg)
        t.check("the table has at least 30 bad requests", len(rows) >= 30, str(len(rows)))
        five = 0
        for name, method, path, headers, body, want, text in rows:
            r = send(s, method, path, headers, body)
            err = r.error()
            five += r.status >= 500
            t.check("%s: %d '%s'" % (name, want, text.replace("\n", "\\n")),
                    r.status == want and r.headers.get("content-type") == "application/json" and err is not None
                    and text in err, "got %d %s: %r" % (r.status, r.headers.get("content-type"), r.body[:300]))
        t.eq("no answer in the table was 5xx", 0, five)

        # 405 names what is allowed in an Allow header.
        r = s.request("GET", P)
        t.eq("405 has 'Allow: POST'", "POST", r.headers.get("allow"))
        r = s.request("DELETE", "/v1/models")
        t.check("DELETE /v1/models: 405 with 'Allow: GET, HEAD'",
                r.status == 405 and r.headers.get("allow") == "GET, HEAD", "%d %r" % (r.status, r.headers))

        # Over the limit by Content-Length is refused from the headers alone, before any body.
        raw = parse_raw(raw_http(s.port, ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                                          "Content-Length: %d\r\n\r\n" % (P, 10 * LIMIT)).encode()))
        t.check("Content-Length over the limit: 413 before the body is sent, connection closed",
                raw.status == 413 and raw.headers.get("connection") == "close"
                and "request body of %d bytes" % (10 * LIMIT) in (raw.error() or ""), repr(raw.body))

        # A 1x1 image is valid (decode_image.h) and the model's resize scales it up: a clean 200.
        one = png_image(1, 1, gray=90)
        r = s.request("POST", P, one, {"Content-Type": "image/png"})
        t.check("1x1 PNG: 200 with 3 classes summing to 1",
                r.status == 200 and len(v1_scores(r)) == 3 and abs(sum(v1_scores(r).values()) - 1) < 1e-5,
                "%d %r" % (r.status, r.body[:200]))
        r2 = s.request("POST", P, png_image(128, 128, gray=90), {"Content-Type": "image/png"})
        t.check("1x1 PNG scores == a flat 128x128 PNG of the same gray",
                r.status == 200 and r2.status == 200 and max_diff(v1_scores(r), v1_scores(r2)) <= 1e-6,
                r2.body[:200])

        # Still serving, and the same answer as before the table.
        r = s.request("POST", P, png, {"Content-Type": "image/png"})
        t.check("after the table a good request answers 200 with the same scores",
                r.status == 200 and max_diff(ref, v1_scores(r)) <= 1e-6, r.body[:200])
        r = s.request("POST", P, {"instances": [b64(png_image(8, 8))] * MAXB})
        t.check("max_batch_size images in one request: 200", r.status == 200 and len(r.json()["predictions"]) == MAXB,
                r.body[:200])
        m = s.metrics()
        t.eq("/metrics counts no 500", 0, m.get('salient_http_requests_total{status="500"}', 0))
        log = s.log()
        t.check("the log never holds image bytes or file names",
                b64(png)[:40] not in log and "Jane_Doe" not in log and "hello, this" not in log)
        t.check("every request was logged", log.count(" status=") >= len(rows))
        t.check("a %0A in the path is escaped in the log, not a forged line",
                "GET /v1/x\\x0a" + FORGED in log and not any(l.startswith(FORGED) for l in log.splitlines()))
    finally:
        s.kill()

    secure(t, repo, png)
    return t.finish()


def secure(t, repo, png):
    """--api-key secret --cors-origins 'http://a.example, http://b.example'."""
    s = Server(t.tmp, repo, "--api-key", "secret", "--cors-origins", "http://a.example, http://b.example",
               name="secure").start()
    try:
        r = s.request("GET", "/v1/models")
        t.check("no key: 401 with WWW-Authenticate: Bearer",
                r.status == 401 and r.headers.get("www-authenticate") == "Bearer"
                and "this server needs an API key" in (r.error() or ""), "%d %r %r" % (r.status, r.headers, r.body))
        r = s.request("POST", P, png, {"Content-Type": "image/png"})
        t.eq("no key on predict: 401", 401, r.status)
        r = s.request("POST", "/v2/repository/index")
        t.eq("no key on the repository index: 401", 401, r.status)
        for name, h in [("wrong Bearer key", {"Authorization": "Bearer nope"}),
                        ("wrong X-API-Key", {"X-API-Key": "secre"}),
                        ("key with a suffix", {"X-API-Key": "secret2"})]:
            r = s.request("GET", "/v1/models", None, h)
            t.check(name + ": 403 'the API key is not valid'",
                    r.status == 403 and r.error() == "the API key is not valid" and "www-authenticate" not in r.headers,
                    "%d %r" % (r.status, r.body))
        r = s.request("GET", "/v1/models", None, {"Authorization": "Basic c2VjcmV0"})
        t.eq("Authorization: Basic is no key: 401", 401, r.status)
        for name, h in [("Bearer", {"Authorization": "Bearer secret"}),
                        ("lower-case bearer", {"Authorization": "bearer secret"}),
                        ("X-API-Key", {"X-API-Key": "secret"})]:
            r = s.request("POST", P, png, dict(h, **{"Content-Type": "image/png"}))
            t.check("right key via %s: predict 200" % name, r.status == 200 and len(v1_scores(r)) == 3, r.body[:200])
        r = s.request("POST", "/v2/repository/index", None, {"X-API-Key": "secret"})
        t.eq("right key: repository index 200", 200, r.status)
        for p in ("/v2/health/live", "/v2/health/ready", "/openapi.json"):
            t.eq("GET %s without a key: 200" % p, 200, s.request("GET", p).status)
        t.eq("GET /metrics without a key: 401", 401, s.request("GET", "/metrics").status)

        # CORS
        pre = {"Origin": "http://a.example", "Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "content-type, x-api-key"}
        r = s.request("OPTIONS", P, None, pre)
        h = r.headers
        allowed = {x.strip().lower() for x in h.get("access-control-allow-headers", "").split(",")}
        t.check("preflight from an allowed origin: 204 with Access-Control-Allow-*",
                r.status == 204 and h.get("access-control-allow-origin") == "http://a.example"
                and "POST" in h.get("access-control-allow-methods", "")
                and {"content-type", "authorization", "x-api-key"} <= allowed
                and h.get("vary") == "Origin" and r.body == b"", "%d %r" % (r.status, h))
        r = s.request("OPTIONS", P, None, dict(pre, Origin="http://b.example"))
        t.eq("preflight from the second allowed origin echoes it", "http://b.example",
             r.headers.get("access-control-allow-origin"))
        r = s.request("OPTIONS", P, None, dict(pre, Origin="http://evil.example"))
        t.check("preflight from another origin: 403, no Access-Control-Allow-Origin",
                r.status == 403 and "access-control-allow-origin" not in r.headers
                and "origin 'http://evil.example' is not allowed" in (r.error() or ""), "%d %r" % (r.status, r.body))
        r = s.request("OPTIONS", P, None, dict(pre, Origin="http://\xff.example"))
        t.check("preflight from an origin that is not UTF-8: 403 JSON, not 500",
                r.status == 403 and "origin 'http://?.example' is not allowed" in (r.error() or ""), r.body)
        r = s.request("OPTIONS", P, None, dict(pre, Origin="http://a.example.evil"))
        t.eq("an origin that only starts like an allowed one: 403", 403, r.status)
        r = s.request("GET", "/v1/models", None, {"Origin": "http://a.example", "X-API-Key": "secret"})
        t.check("a normal answer to an allowed origin carries Access-Control-Allow-Origin",
                r.status == 200 and r.headers.get("access-control-allow-origin") == "http://a.example"
                and "access-control-allow-methods" not in r.headers, repr(r.headers))
        r = s.request("GET", "/v1/models", None, {"Origin": "http://a.example"})
        t.check("an error to an allowed origin carries it too (the page can read the 401)",
                r.status == 401 and r.headers.get("access-control-allow-origin") == "http://a.example", repr(r.headers))
        r = s.request("GET", "/v1/models", None, {"Origin": "http://evil.example", "X-API-Key": "secret"})
        t.check("an answer to another origin has no Access-Control-Allow-Origin",
                r.status == 200 and "access-control-allow-origin" not in r.headers, repr(r.headers))
        r = s.request("GET", "/v1/models", None, {"X-API-Key": "secret"})
        t.check("no Origin, no CORS headers", "access-control-allow-origin" not in r.headers, repr(r.headers))
    finally:
        s.kill()


if __name__ == "__main__":
    sys.exit(main())
