"""salientd_harness.py: what the Python integration tests share: start a real salientd on a
loopback port, talk HTTP to it, build a temporary model repository, count checks.

Standard library only (run with Debian's /usr/bin/python3). Every server started here is
killed when the test ends, however it ends (Server.stop in a finally, plus an atexit hook).

    from salientd_harness import Checks, Server, make_repo
    t = Checks()
    with Server(t.tmp, make_repo(t.tmp, ["covid-resnet-demo"]), "--max-batch-size", "4") as s:
        st, hdr, body = s.request("POST", "/v1/models/covid-resnet-demo:predict", png,
                                  {"Content-Type": "image/png"})
        t.eq("raw PNG answers 200", 200, st)
    sys.exit(t.finish())
"""
import atexit
import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("SALIENT_SRCDIR") or os.path.normpath(os.path.join(HERE, "..", ".."))
SALIENTD = os.environ.get("SALIENTD") or "server/salientd"
DATA = os.path.join(SRCDIR, "tests", "data")

_live = []
_bad_exits = []  # salientds that did not exit 0 when kill() stopped them; Checks.finish fails on them


def _kill_all():
    for s in list(_live):
        s.kill()


atexit.register(_kill_all)


class Checks:
    """One line per check ("ok   name" / "FAIL name: detail") and the closing count."""

    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.tmp = tempfile.mkdtemp(prefix="salient-it-")
        atexit.register(shutil.rmtree, self.tmp, True)  # also when a test dies of an exception
        self.t0 = time.monotonic()

    def ok(self, name):
        self.passed += 1
        print("ok   " + name, flush=True)

    def fail(self, name, detail=""):
        if not isinstance(detail, str):
            detail = repr(detail)
        self.failed += 1
        print("FAIL " + name + (": " + detail if detail else ""), flush=True)

    def check(self, name, cond, detail=""):
        if cond:
            self.ok(name)
        else:
            self.fail(name, detail)
        return bool(cond)

    def eq(self, name, want, got):
        return self.check(name, want == got, "want %r, got %r" % (want, got))

    def finish(self):
        for what in _bad_exits:
            self.fail(what)
        del _bad_exits[:]
        shutil.rmtree(self.tmp, ignore_errors=True)
        print("%d passed, %d failed (%.1f s)" % (self.passed, self.failed, time.monotonic() - self.t0), flush=True)
        return 1 if self.failed else 0


def data(name):
    with open(os.path.join(DATA, name), "rb") as f:
        return f.read()


def make_repo(tmp, models, name="repo"):
    """A fresh model repository under tmp holding copies of models/repo/<m> for each m."""
    repo = os.path.join(tmp, name)
    os.makedirs(repo, exist_ok=True)
    for m in models:
        shutil.copytree(os.path.join(SRCDIR, "models", "repo", m), os.path.join(repo, m))
    return repo


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case names
        self.body = body

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return None

    def error(self):
        """The "error" string of a {"error": "..."} body, else None."""
        j = self.json()
        if isinstance(j, dict) and list(j) == ["error"] and isinstance(j["error"], str):
            return j["error"]
        return None

    def __iter__(self):  # st, hdr, body = s.request(...)
        return iter((self.status, self.headers, self.body))


class Server:
    """salientd --host 127.0.0.1 --port 0 --model-repo repo [args...]; the port comes from its
    "listening on http://127.0.0.1:PORT" line."""

    def __init__(self, tmp, repo, *args, name="salientd"):
        self.log_path = os.path.join(tmp, name + ".log")
        self.args = [SALIENTD, "--host", "127.0.0.1", "--port", "0", "--model-repo", repo] + list(args)
        self.proc = None
        self.port = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.kill()

    def start(self, timeout=None):
        if timeout is None:  # a ThreadSanitizer build loads models 10-50x slower (scripts/test-sanitizers.sh)
            timeout = float(os.environ.get("SALIENT_START_TIMEOUT", "120"))
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=self._log)
        _live.append(self)
        pat = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")
        until = time.monotonic() + timeout  # a hang guard: model loading on a busy machine
        while time.monotonic() < until:
            m = pat.search(self.log())
            if m:
                self.port = int(m.group(1))
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.kill()
        raise RuntimeError("salientd did not start (%s):\n%s" % (" ".join(self.args), self.log()))

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def kill(self, grace=60):
        """Stop salientd as an operator would: SIGTERM (it drains and frees everything, so a
        sanitizer build checks it for leaks at exit), SIGKILL only if it is still running after
        grace seconds."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                rc = self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                rc = "none: still running %d s after SIGTERM, killed" % grace
            if rc != 0:  # e.g. 1: LeakSanitizer found leaks at exit, or an ASan/UBSan error
                _bad_exits.append("%s exits 0 on SIGTERM (status %s); its log ends:\n%s" % (
                    os.path.basename(self.log_path), rc, "\n".join(self.log().splitlines()[-40:])))
        if self in _live:
            _live.remove(self)
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def wait(self, timeout=120):
        """Exit status after a signal (None if it is still running after timeout)."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self.kill()
        return rc

    def connect(self, timeout=None):
        if timeout is None:  # a reload under load in a ThreadSanitizer build takes minutes
            timeout = float(os.environ.get("SALIENT_REQUEST_TIMEOUT", "120"))
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=None, chunked=False):
        """One request on a new connection. body: bytes, str, a JSON-able object (sent as
        application/json unless headers say otherwise) or, with chunked, an iterable of bytes."""
        headers = dict(headers or {})
        if body is not None and not isinstance(body, (bytes, str)) and not chunked:
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode()
        c = self.connect(timeout)
        try:
            if chunked:
                c.request(method, path, body=body, headers=headers, encode_chunked=True)
            else:
                c.request(method, path, body=body, headers=headers)
            r = c.getresponse()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            c.close()

    def requests(self, reqs):
        """Send [(method, path, body, headers)] at once, one thread each (the server batches
        them); the Responses, or the exceptions raised, in order."""
        out = [None] * len(reqs)

        def one(i):
            try:
                out[i] = self.request(*reqs[i])
            except Exception as e:  # the caller's check reports it
                out[i] = e
        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(reqs))]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        return out

    def metrics(self):
        """/metrics as {'name{labels}': value}."""
        r = self.request("GET", "/metrics")
        out = {}
        for line in r.body.decode().splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out


def b64(b, urlsafe=False):
    return (base64.urlsafe_b64encode(b) if urlsafe else base64.b64encode(b)).decode()


def v1_json(img):
    return {"image": b64(img)}


def v2_json(*imgs):
    return {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [len(imgs)], "data": [b64(i) for i in imgs]}]}


def multipart(fields, boundary="salientTestBoundary7MA4YWxkTrZu0gW"):
    """A multipart/form-data body as curl -F writes it. fields: [(name, filename or None,
    content type or None, bytes)]. Returns (body, Content-Type header value)."""
    out = b""
    for name, filename, ctype, value in fields:
        out += b"--" + boundary.encode() + b"\r\n"
        disp = 'form-data; name="%s"' % name
        if filename is not None:
            disp += '; filename="%s"' % filename
        out += b"Content-Disposition: " + disp.encode() + b"\r\n"
        if ctype:
            out += b"Content-Type: " + ctype.encode() + b"\r\n"
        out += b"\r\n" + value + b"\r\n"
    out += b"--" + boundary.encode() + b"--\r\n"
    return out, "multipart/form-data; boundary=" + boundary


def v1_scores(resp, i=0):
    """{label: score} of prediction i of a v1 answer."""
    return {e["label"]: e["score"] for e in resp.json()["predictions"][i]["labels"]}


def v2_scores(resp, labels, i=0):
    """{label: prob} of row i of a v2 answer's "probs" output."""
    for o in resp.json()["outputs"]:
        if o["name"] == "probs":
            n = o["shape"][1]
            return dict(zip(labels, o["data"][i * n:(i + 1) * n]))
    return None


def max_diff(a, b):
    """Largest |a[k] - b[k]| over the same keys; inf when the keys differ."""
    if not a or not b or set(a) != set(b):
        return float("inf")
    return max(abs(a[k] - b[k]) for k in a)


def raw_http(port, data, timeout=60, body_after_continue=None):
    """Send bytes on a fresh socket and return what comes back until the server closes (or the
    first complete answer with a Content-Length), for requests http.client will not send.
    body_after_continue: sent once the server says "100 Continue" (then part of the result)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        buf = b""
        if body_after_continue is not None:
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    return buf
                buf += chunk
            if not buf.startswith(b"HTTP/1.1 100 "):
                return buf
            s.sendall(body_after_continue)
            cont, buf = buf.split(b"\r\n\r\n", 1)
            return cont + b"\r\n\r\n" + raw_http_rest(s, buf)
        return raw_http_rest(s, buf)
    finally:
        s.close()


def raw_http_rest(s, buf):
    """Read from socket s (buf already read) until it closes or one answer is complete."""
    while True:
        head, sep, rest = buf.partition(b"\r\n\r\n")
        if sep:
            m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            if m and len(rest) >= int(m.group(1)):
                break
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf


def read_safetensors(path):
    """{name: (shape, [floats])} of an F32 safetensors file (what salient-run writes)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        body = f.read()
    header.pop("__metadata__", None)
    out = {}
    for name, h in header.items():
        b, e = h["data_offsets"]
        out[name] = (h["shape"], list(struct.unpack("<%df" % ((e - b) // 4), body[b:e])))
    return out


def proc_fds(pid):
    """How many file descriptors process pid has open."""
    return len(os.listdir("/proc/%d/fd" % pid))


def proc_rss_kib(pid):
    """VmRSS of process pid in KiB."""
    with open("/proc/%d/status" % pid) as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


def parse_raw(buf):
    """(status, {lower-case header: value}, body) of a raw HTTP answer."""
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    hdr = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        hdr[k.strip().lower()] = v.strip()
    return Response(status, hdr, body)
