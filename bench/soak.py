#!/usr/bin/python3
"""soak.py: N minutes of mixed load on one salientd (loopback), every answer checked.

    /usr/bin/python3 bench/soak.py [--minutes 10] [--concurrency 32] [--build build]
                                   [--repo build/model-repo] [--bad 0.05] [--out build/bench/soak.md]

Starts build/server/salientd on the repository (scripts/prepare-repo.sh builds it: every model
there is driven; faces too when its weights are there) and keeps --concurrency clients busy for
--minutes. Each client picks its next request from a table of every model and input path: v1 JSON
base64, data: URI, raw PNG and JPEG bodies, multipart, v2 infer, attention maps, PNG attention
overlays, faces predict and /v1/faces:verify. A fraction --bad of the requests are deliberately
bad (bad base64, a truncated image, an unknown model, a body over --max-body-bytes, a bad
parameter), each of which must get its own 4xx and error text.

Every good request was sent once, alone, before the load: its answer is the reference. Under load
the same request must get the same answer: the same JSON with every number within 1e-5 (relative
above 1), "timing_ms" left out and label lists compared by label. Attention maps get 1e-3: they
are normalized to [0, 1] by their range, which magnifies float32 rounding: swinchex-demo's stage4
map of one image moves by steps of 4.6e-5 with the batch it ran in (measured: batches of 1, 2, 3
and 8 of the same image), while its probabilities agree to 1e-7. PNG overlays are compared by
their header (size, colour type): a map value that far off may tint a pixel differently.

salientd's RSS (/proc/PID/status VmRSS) and open fds are sampled every --sample seconds. Under
load the RSS follows the work held (32 clients' images, tensors and answers queued), so growth is
measured at rest: after --warmup seconds (default: a tenth of the run, at most 60 s) the clients
pause between two requests until nothing is in flight, RSS and fds are read, and the load
resumes (for the time it paused longer); again at the end. Growth = (end - warm-up) / warm-up. A progress line every ~10 s; at the end a
markdown report (stdout and --out) with requests, answers by kind and status, wrong answers,
p50/p99 latency, throughput and RSS. Then SIGTERM: salientd must exit 0.

Exit status 1 on any crash, wrong answer, unexpected status or failed connection, on RSS growth
>= --max-rss-growth % (default 5) or a non-zero exit after SIGTERM; 2 on bad usage. Latency and
throughput are reported, never judged. Standard library only.
"""
import argparse
import base64
import http.client
import json
import os
import random
import signal
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
import salientd_harness as H  # noqa: E402  (Server, multipart, b64, v2_json, /proc readers)

TOL = 1e-5      # probabilities, logits, face boxes and descriptors, distances
MAP_TOL = 1e-3  # attention maps ("map": values in [0, 1]), see the docstring


# ---- comparing answers -------------------------------------------------------------------------

def normalize(x):
    """The answer without what may differ between two runs of the same input: timings and batch
    sizes dropped, label lists keyed by label (near-equal scores may swap places), PNG overlays
    reduced to their IHDR chunk (width, height, depth, colour type), JSON text (the faces model's v2
    BYTES output) parsed."""
    if isinstance(x, dict):
        out = {}
        for k, v in x.items():
            if k in ("timing_ms", "id"):
                continue
            if k == "png" and isinstance(v, str):
                raw = base64.b64decode(v[:44])
                out[k] = ("png", raw[:8] == b"\x89PNG\r\n\x1a\n", raw[16:29].hex())
                continue
            out[k] = normalize(v)
        return out
    if isinstance(x, str) and x[:1] in ("[", "{"):  # v2 BYTES outputs of faces: JSON text
        try:
            return normalize(json.loads(x))
        except ValueError:
            return x
    if isinstance(x, list):
        if x and all(isinstance(e, dict) and set(e) == {"label", "score"} for e in x):
            return {"labels": {e["label"]: e["score"] for e in x}}
        return [normalize(e) for e in x]
    return x


def differ(want, got, path="$"):
    """Where two normalized answers differ beyond TOL (a path and the two values), else None."""
    if isinstance(want, bool) or isinstance(got, bool) or not isinstance(want, (int, float)):
        if type(want) is not type(got):
            return "%s: %r != %r" % (path, want, got)
        if isinstance(want, dict):
            if set(want) != set(got):
                return "%s: keys %s != %s" % (path, sorted(want), sorted(got))
            for k in want:
                d = differ(want[k], got[k], path + "." + str(k))
                if d:
                    return d
            return None
        if isinstance(want, (list, tuple)):
            if len(want) != len(got):
                return "%s: length %d != %d" % (path, len(want), len(got))
            for i, (a, b) in enumerate(zip(want, got)):
                d = differ(a, b, "%s[%d]" % (path, i))
                if d:
                    return d
            return None
        return None if want == got else "%s: %r != %r" % (path, want, got)
    if not isinstance(got, (int, float)) or isinstance(got, bool):
        return "%s: %r != %r" % (path, want, got)
    tol = MAP_TOL if ".map[" in path else TOL
    return None if abs(want - got) <= tol * max(1.0, abs(want)) else "%s: %r != %r" % (path, want, got)


# ---- the request table -------------------------------------------------------------------------

class Req:
    """One request kind. good: the answer must equal the reference; bad: status and error text."""

    def __init__(self, kind, method, path, body=b"", ctype=None, status=200, error=None, raw=None):
        self.kind, self.method, self.path, self.body, self.ctype = kind, method, path, body, ctype
        self.status, self.error, self.raw = status, error, raw
        self.ref = None


def read(path):
    with open(path, "rb") as f:
        return f.read()


def jbody(obj):
    return json.dumps(obj).encode(), "application/json"


def build_table(models, faces_jpgs):
    """(good, bad) request lists for the models served ({name: labels})."""
    png = [read(os.path.join(H.DATA, "phantom_0000%d.png" % i)) for i in range(3)]
    jpg = read(os.path.join(H.DATA, "phantom_00000_q90.jpg"))
    good, bad = [], []
    classifiers = [m for m in models if m != "faces"]
    for i, m in enumerate(classifiers):
        p = "/v1/models/%s:predict" % m
        img = png[i % 3]
        good.append(Req(m + " v1 JSON base64", "POST", p, *jbody({"image": H.b64(img)})))
        good.append(Req(m + " v1 data: URI", "POST", p, *jbody({"image": "data:image/png;base64," + H.b64(png[(i + 1) % 3])})))
        good.append(Req(m + " v1 raw PNG", "POST", p, img, "image/png"))
        good.append(Req(m + " v1 raw JPEG", "POST", p, jpg, "image/jpeg"))
        good.append(Req(m + " v1 multipart", "POST", p, *H.multipart([("image", "x.png", "image/png", png[(i + 2) % 3])])))
        good.append(Req(m + " v1 JSON 2 instances", "POST", p, *jbody({"instances": [H.b64(png[0]), H.b64(jpg)]})))
        good.append(Req(m + " v2 infer", "POST", "/v2/models/%s/infer" % m, *jbody(H.v2_json(img, png[(i + 1) % 3]))))
        good.append(Req(m + " attention maps", "POST", p,
                        *jbody({"image": H.b64(img), "parameters": {"attention": "maps"}})))
        good.append(Req(m + " attention png", "POST", p + "?attention=png", img, "image/png"))
    if "faces" in models and faces_jpgs:
        f0, f1 = faces_jpgs[0], faces_jpgs[1 % len(faces_jpgs)]
        good.append(Req("faces v1 raw JPEG", "POST", "/v1/models/faces:predict", f0, "image/jpeg"))
        good.append(Req("faces v1 JSON, tiny detector", "POST", "/v1/models/faces:predict",
                        *jbody({"image": H.b64(f1), "parameters": {"detector": "tiny_face_detector"}})))
        good.append(Req("faces v2 infer", "POST", "/v2/models/faces/infer", *jbody(H.v2_json(f1))))
        good.append(Req("faces verify", "POST", "/v1/faces:verify", *jbody({"images": [H.b64(f0), H.b64(f1)]})))
    m = classifiers[0]
    p = "/v1/models/%s:predict" % m
    bad.append(Req("bad base64", "POST", p, *jbody({"image": "iVBOR%w0KGgo"}), status=400,
                   error="invalid base64 character '%' at offset 5"))
    bad.append(Req("truncated PNG", "POST", p, png[0][:len(png[0]) // 2], "image/png", status=400,
                   error="PNG is corrupt or truncated"))
    bad.append(Req("truncated JPEG in JSON", "POST", p, *jbody({"image": H.b64(jpg[:len(jpg) // 2])}), status=400,
                   error="JPEG is corrupt or truncated"))
    bad.append(Req("unknown model", "POST", "/v1/models/no-such-model:predict", png[0], "image/png", status=404,
                   error="no-such-model"))
    bad.append(Req("bad parameter", "POST", p, *jbody({"image": H.b64(png[0]), "parameters": {"attention": "heat"}}),
                   status=400, error='must be "none", "maps" or "png"'))
    # Over --max-body-bytes: refused from the headers alone (413 and the connection closed),
    # so only the headers are sent.
    bad.append(Req("oversized body", "POST", p, status=413, error="is over the limit of", raw=(
        "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\nContent-Length: %d\r\n\r\n")))
    return good, bad


# ---- one client --------------------------------------------------------------------------------

class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.n = 0
        self.by = {}  # (kind, status) -> count
        self.wrong = []  # (kind, detail)
        self.lat = []  # seconds, every answer
        self.lat_good = []
        self.lat_kind = {}  # kind -> [seconds]

    def add(self, kind, status, lat, good, wrong=None):
        with self.lock:
            self.n += 1
            self.by[(kind, status)] = self.by.get((kind, status), 0) + 1
            self.lat.append(lat)
            self.lat_kind.setdefault(kind, []).append(lat)
            if good:
                self.lat_good.append(lat)
            if wrong:
                self.wrong.append((kind, wrong))
                if len(self.wrong) <= 20:  # as they happen, in case the run is cut short
                    print("soak: WRONG %s: %s" % (kind, wrong[:300]), flush=True)


def send(port, conn, r, max_body):
    """(status, body bytes, conn to use next). A new connection when conn is None or the answer
    says Connection: close."""
    if r.raw is not None:
        s = socket.create_connection(("127.0.0.1", port), timeout=300)
        try:
            s.sendall((r.raw % (r.path, max_body + 1)).encode())
            resp = H.parse_raw(H.raw_http_rest(s, b""))
        finally:
            s.close()
        return resp.status, resp.body, conn
    if conn is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    hdr = {"Content-Type": r.ctype} if r.ctype else {}
    try:
        conn.request(r.method, r.path, body=r.body, headers=hdr)
        resp = conn.getresponse()
        body = resp.read()
    except Exception:
        conn.close()
        raise
    if (resp.getheader("Connection") or "").lower() == "close":
        conn.close()
        conn = None
    return resp.status, body, conn


def check(r, status, body):
    """None if the answer is right, else what is wrong."""
    if status != r.status:
        return "status %d, want %d: %r" % (status, r.status, body[:200])
    try:
        j = json.loads(body)
    except ValueError:
        return "not JSON: %r" % body[:200]
    if r.error is not None:
        err = j.get("error") if isinstance(j, dict) else None
        return None if isinstance(err, str) and r.error in err else "error %r lacks %r" % (err, r.error)
    return differ(r.ref, normalize(j))


class Pause:
    """Holds the clients between two requests so salientd can be measured at rest."""

    def __init__(self, n):
        self.n = n
        self.cond = threading.Condition()
        self.on = False
        self.waiting = 0

    def point(self):
        """A client between two requests: wait here while paused."""
        with self.cond:
            if not self.on:
                return
            self.waiting += 1
            self.cond.notify_all()
            while self.on:
                self.cond.wait()
            self.waiting -= 1

    def hold(self, guard):
        """Pause and wait (at most guard seconds) until every client waits; True if they do."""
        with self.cond:
            self.on = True
            return self.cond.wait_for(lambda: self.waiting == self.n, guard)

    def release(self):
        with self.cond:
            self.on = False
            self.cond.notify_all()


def client(i, port, good, bad, frac_bad, until, stats, max_body, stop, pause):
    rnd = random.Random(1000 + i)
    conn = None
    k = i  # every kind early, in a different order per client
    while not stop.is_set() and time.monotonic() < until[0]:
        pause.point()
        if rnd.random() < frac_bad:
            r = rnd.choice(bad)
        else:
            r = good[k % len(good)]
            k += 1 + (rnd.random() < 0.3)
        t0 = time.monotonic()
        try:
            status, body, conn = send(port, conn, r, max_body)
        except Exception as e:  # refused, reset, timed out: all failures
            conn = None
            stats.add(r.kind, "exception", time.monotonic() - t0, False, "%s: %r" % (type(e).__name__, e))
            continue
        lat = time.monotonic() - t0
        stats.add(r.kind, status, lat, r.error is None, check(r, status, body))


# ---- server sampling ---------------------------------------------------------------------------

def proc_sample(pid):
    """(VmRSS in KiB, open fds) of pid, or None when it is gone."""
    try:
        return H.proc_rss_kib(pid), H.proc_fds(pid)
    except (OSError, StopIteration):
        return None


def at_rest(srv, pid, pause, t):
    """(t, RSS KiB, fds) of salientd with every client paused (pause: None when they have
    ended) and nothing in flight."""
    if pause and not pause.hold(600):
        raise RuntimeError("the clients did not pause within 600 s")
    for _ in range(100):
        if srv.metrics().get("salient_inflight_requests") == 0:
            break
        time.sleep(0.1)
    time.sleep(1)  # the last connections close
    s = proc_sample(pid)
    if pause:
        pause.release()
    return (t,) + s


def mib(sample):
    return "%.1f MiB" % (sample[1] / 1024.0) if sample else "-"


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--build", default=os.path.join(SRC, "build"))
    ap.add_argument("--repo", default=None, help="model repository (default BUILD/model-repo)")
    ap.add_argument("--bad", type=float, default=0.05, help="fraction of bad requests (default 0.05)")
    ap.add_argument("--warmup", type=float, default=None, help="seconds before the RSS baseline")
    ap.add_argument("--sample", type=float, default=5, help="seconds between RSS samples")
    ap.add_argument("--max-rss-growth", type=float, default=5.0, help="percent (default 5)")
    ap.add_argument("--out", default=None, help="markdown report (default BUILD/bench/soak.md)")
    ap.add_argument("--faceapi", default=None, help="face-api folder with demo/*.jpg (default BUILD/faceapi)")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    repo = os.path.abspath(a.repo or os.path.join(build, "model-repo"))
    out = a.out or os.path.join(build, "bench", "soak.md")
    salientd = os.path.join(build, "server", "salientd")
    if not os.access(salientd, os.X_OK):
        ap.error("%s is not built (make -C %s)" % (salientd, build))
    if not os.path.isdir(repo):
        ap.error("no model repository %s (scripts/prepare-repo.sh)" % repo)
    seconds = a.minutes * 60
    warmup = a.warmup if a.warmup is not None else min(60.0, seconds / 10)
    fa = a.faceapi or os.path.join(build, "faceapi")
    faces_jpgs = [read(os.path.join(fa, "demo", "sample%d.jpg" % i)) for i in (1, 2)
                  if os.path.exists(os.path.join(fa, "demo", "sample%d.jpg" % i))]

    max_body = 8 << 20
    H.SALIENTD = salientd
    tmp = H.Checks().tmp  # a temporary folder removed at exit (holds salientd's log)
    # Requests wait in queues while 32 clients share the machine: the request timeout is lifted so
    # that a slow machine shows as latency, not as 504s.
    srv = H.Server(tmp, repo, "--max-body-bytes", str(max_body), "--request-timeout-ms", "600000",
                   name="soak").start()
    pid = srv.proc.pid
    failures = []
    try:
        r = srv.request("GET", "/v1/models")
        models = {m["name"]: m["labels"] for m in r.json()["models"] if m["state"] == "READY"}
        good, bad = build_table(models, faces_jpgs)
        # References: each good request alone, before any load.
        for q in good:
            st, body, c = send(srv.port, None, q, max_body)
            if c:
                c.close()
            if st != 200:
                ap.exit(1, "soak: reference for %s: status %d %r\n" % (q.kind, st, body[:300]))
            q.ref = normalize(json.loads(body))
        print("soak: salientd pid %d on port %d, models %s; %d good request kinds, %d bad; %d clients for %.1f min"
              % (pid, srv.port, ", ".join(sorted(models)), len(good), len(bad), a.concurrency, a.minutes), flush=True)

        stats = Stats()
        stop = threading.Event()
        pause = Pause(a.concurrency)
        t0 = time.monotonic()
        until = [t0 + seconds]  # moved on by the time paused
        threads = [threading.Thread(target=client, args=(i, srv.port, good, bad, a.bad, until, stats, max_body, stop,
                                                         pause), daemon=True) for i in range(a.concurrency)]
        for th in threads:
            th.start()
        samples = []  # (t, rss KiB, fds)
        rest_warm = None  # (t, rss KiB, fds) at rest after warm-up
        last_print = t0
        last_n = 0
        while time.monotonic() < until[0]:
            time.sleep(min(a.sample, max(0.0, until[0] - time.monotonic())))
            s = proc_sample(pid)
            now = time.monotonic()
            if s is None or srv.proc.poll() is not None:
                failures.append("salientd died (exit status %r)" % srv.proc.poll())
                stop.set()
                break
            samples.append((now - t0, s[0], s[1]))
            if rest_warm is None and now - t0 >= warmup:
                rest_warm = at_rest(srv, pid, pause, now - t0)
                until[0] += time.monotonic() - now
                print("soak: at rest after warm-up (%.0f s): RSS %.1f MiB, fds %d; %.1f s paused"
                      % (rest_warm[0], rest_warm[1] / 1024.0, rest_warm[2], time.monotonic() - now), flush=True)
            if now - last_print >= 9.5:
                with stats.lock:
                    n, nw = stats.n, len(stats.wrong)
                    recent = stats.lat[last_n:]
                print("soak: %5.0f s  %7d answers  %6.1f/s  p50 %6.0f ms  wrong/failed %d  RSS %.1f MiB  fds %d"
                      % (now - t0, n, (n - last_n) / (now - last_print), pct(recent, 50) * 1e3, nw,
                         s[0] / 1024.0, s[1]), flush=True)
                last_print, last_n = now, n
        stop.set()
        for th in threads:
            th.join(600)
        wall = time.monotonic() - t0
        rest_end = at_rest(srv, pid, None, wall) if srv.proc.poll() is None else None
        m = srv.metrics() if srv.proc.poll() is None else {}
        srv.signal(signal.SIGTERM)
        rc = srv.wait(120)
        if rc != 0:
            failures.append("salientd exit status %r after SIGTERM" % rc)
    finally:
        srv.kill()

    # ---- report ----
    after = [x for x in samples if x[0] >= warmup]
    if rest_warm and rest_end:
        growth = 100.0 * (rest_end[1] - rest_warm[1]) / rest_warm[1]
    else:
        growth = float("nan")
    expected = {q.kind: q.status for q in good + bad}
    unexpected = sum(c for (k, st), c in stats.by.items() if st != expected.get(k))
    nbad = sum(c for (k, st), c in stats.by.items() if k in {q.kind for q in bad})
    if stats.wrong:
        failures.append("%d wrong or failed answers" % len(stats.wrong))
    if not (growth < a.max_rss_growth):
        failures.append("RSS grew %.2f%% after warm-up (limit %.1f%%)" % (growth, a.max_rss_growth))
    if a.concurrency and stats.n == 0:
        failures.append("no answers at all")
    lines = [
        "## Soak: %.1f min, %d clients, %.0f%% bad requests" % (a.minutes, a.concurrency, 100 * a.bad),
        "",
        "    /usr/bin/python3 bench/soak.py --minutes %g --concurrency %d --bad %g" % (a.minutes, a.concurrency, a.bad),
        "",
        "Machine: %d cores, load average before the end %s; models: %s." % (
            os.cpu_count(), " ".join("%.2f" % x for x in os.getloadavg()), ", ".join(sorted(models))),
        "",
        "| figure | value |",
        "|---|---|",
        "| answers | %d in %.0f s (%.1f/s) |" % (stats.n, wall, stats.n / wall if wall else 0),
        "| deliberately bad requests | %d (%.1f%%), every one with its 4xx and error text unless counted below |"
        % (nbad, 100.0 * nbad / max(1, stats.n)),
        "| wrong answers, unexpected statuses, failed connections | %d (unexpected statuses: %d) |"
        % (len(stats.wrong), unexpected),
        "| latency, all answers | p50 %.0f ms, p99 %.0f ms, max %.0f ms |"
        % (pct(stats.lat, 50) * 1e3, pct(stats.lat, 99) * 1e3, max(stats.lat or [0]) * 1e3),
        "| latency, good requests | p50 %.0f ms, p99 %.0f ms |" % (pct(stats.lat_good, 50) * 1e3,
                                                                   pct(stats.lat_good, 99) * 1e3),
        "| RSS at rest after warm-up (%.0f s) | %s |" % (rest_warm[0] if rest_warm else 0, mib(rest_warm)),
        "| RSS at rest at the end | %s |" % mib(rest_end),
        "| RSS growth after warm-up, at rest | %.2f%% (limit %.1f%%) |" % (growth, a.max_rss_growth),
        "| RSS under load after warm-up: min / max / last | %.1f / %.1f / %.1f MiB |" % (
            min((x[1] for x in after), default=0) / 1024.0, max((x[1] for x in after), default=0) / 1024.0,
            after[-1][1] / 1024.0 if after else 0),
        "| open fds at rest after warm-up / at rest at the end | %s / %s |" % (
            rest_warm[2] if rest_warm else "-", rest_end[2] if rest_end else "-"),
        "| salientd batches / images run (/metrics) | %d / %d |" % (
            sum(v for k, v in m.items() if k.startswith("salient_model_execution_count_total")),
            sum(v for k, v in m.items() if k.startswith("salient_model_inference_count_total"))),
        "| salientd after SIGTERM | %s |" % ("exit 0" if not any("exit status" in f for f in failures) else "FAILED"),
        "",
        "| request kind | answers by status | p50 / p99 ms |",
        "|---|---|---|",
    ]
    for kind in [q.kind for q in good + bad]:
        sts = sorted(((st, c) for (k, st), c in stats.by.items() if k == kind), key=lambda x: str(x[0]))
        lk = stats.lat_kind.get(kind, [])
        lines.append("| %s | %s | %.0f / %.0f |" % (kind, ", ".join("%s: %d" % (st, c) for st, c in sts) or "-",
                                                   pct(lk, 50) * 1e3, pct(lk, 99) * 1e3))
    if stats.wrong:
        lines += ["", "First wrong answers:", ""] + ["- %s: %s" % (k, w[:300]) for k, w in stats.wrong[:10]]
    lines += ["", "Result: " + ("PASS" if not failures else "FAIL: " + "; ".join(failures))]
    report = "\n".join(lines) + "\n"
    print(report)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        f.write(report)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
