"""test_concurrency.py: many clients at once, a full queue, request timeouts, and SIGTERM while
requests are in flight. Each part runs its own salientd (covid-resnet-demo, the fast model).

Nothing here passes or fails on how long something took. Where an outcome depends on order
(a queue that is full, a request still queued at SIGTERM), the server is configured so that
the order is forced: a batch waits --max-queue-delay-us for company unless it is full, so a
request that cannot fill its batch stays queued for that long whatever the machine's load.
Run by test_concurrency.sh (make check)."""
import json
import socket
import sys
import threading
import time

from salientd_harness import Checks, Server, b64, data, make_repo, max_diff, v1_scores

CV = "covid-resnet-demo"
P = "/v1/models/%s:predict" % CV
TOL = 1e-6


def parallel(n, fn):
    """Run fn(i) in n threads released together; their results (or exceptions) in order."""
    out = [None] * n
    gate = threading.Barrier(n)

    def run(i):
        try:
            gate.wait()
            out[i] = fn(i)
        except Exception as e:  # reported by the caller as a failed answer
            out[i] = e
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return out


def main():
    t = Checks()
    repo = make_repo(t.tmp, [CV])
    png = [data("phantom_%05d.png" % i) for i in range(3)]
    ref = many_clients(t, repo, png)
    full_queue(t, repo, png[0])
    timeouts(t, repo, png[0])
    sigterm(t, repo, png, ref)
    return t.finish()


def many_clients(t, repo, png):
    """32 clients x 2 requests: all 200, all equal to one request alone, batches larger than 1.
    Two workers take batches from the one queue (--workers 2)."""
    with Server(t.tmp, repo, "--max-queue-delay-us", "20000", "--workers", "2", name="many") as s:
        ct = {"Content-Type": "image/png"}
        ref = [v1_scores(s.request("POST", P, x, ct)) for x in png]
        m0 = s.metrics()

        def client(i):
            got = []
            c = s.connect()  # one keep-alive connection per client
            try:
                for j in range(2):
                    k = (i + j) % 3
                    c.request("POST", P, body=png[k], headers=ct)
                    r = c.getresponse()
                    body = r.read()
                    got.append((k, r.status, json.loads(body) if r.status == 200 else body))
            finally:
                c.close()
            return got

        out = parallel(32, client)
        answers = [a for o in out if isinstance(o, list) for a in o]
        errors = [o for o in out if not isinstance(o, list)]
        bad = [a[:2] for a in answers if a[1] != 200]
        t.check("32 clients x 2 requests: 64 answers, all 200", len(answers) == 64 and not bad and not errors,
                "%d answers, not 200: %r, errors: %r" % (len(answers), bad[:3], errors[:3]))
        worst = 0.0
        for k, st, j in answers:
            if st == 200:
                got = {e["label"]: e["score"] for e in j["predictions"][0]["labels"]}
                worst = max(worst, max_diff(ref[k], got))
        t.check("every answer equals its image's single-request answer (within %g)" % TOL, worst <= TOL,
                "max difference %g" % worst)
        batches = [j["predictions"][0]["timing_ms"]["batch"] for _, st, j in answers if st == 200]
        t.check("some answers say they ran in a batch of more than 1", max(batches, default=0) > 1,
                "batch sizes %r" % sorted(set(batches)))
        m1 = s.metrics()
        ex, inf = (m1[k] - m0[k] for k in ('salient_model_execution_count_total{model="%s"}' % CV,
                                           'salient_model_inference_count_total{model="%s"}' % CV))
        t.eq("/metrics inference_count grew by 64", 64, inf)
        t.check("/metrics execution_count < inference_count (mean batch %.1f)" % (inf / ex if ex else 0),
                0 < ex < inf, "executions %g, inferences %g" % (ex, inf))
        t.eq("/metrics: 64 more answers 200", 64,
             m1['salient_model_requests_total{model="%s",status="200"}' % CV]
             - m0['salient_model_requests_total{model="%s",status="200"}' % CV])
    return ref


def full_queue(t, repo, img):
    """--max-queue-size 1: the first request waits a second for company and holds the only
    place in the queue, so requests arriving meanwhile are refused 503 + Retry-After."""
    with Server(t.tmp, repo, "--max-queue-size", "1", "--max-queue-delay-us", "1000000", name="queue") as s:
        out = parallel(16, lambda i: s.request("POST", P, img, {"Content-Type": "image/png"}))
        errors = [o for o in out if not hasattr(o, "status")]
        ok = [r for r in out if hasattr(r, "status") and r.status == 200]
        busy = [r for r in out if hasattr(r, "status") and r.status == 503]
        t.check("16 at once on a queue of 1: every answer is 200 or 503", len(ok) + len(busy) == 16,
                "other answers: %r" % [(getattr(r, "status", r), getattr(r, "body", b"")[:100]) for r in out
                                       if r not in ok and r not in busy][:3])
        t.check("some are refused 503 (%d) and some answered 200 (%d)" % (len(busy), len(ok)), busy and ok,
                "errors %r" % errors[:3])
        t.check("every 503 says the queue is full and carries Retry-After",
                busy and all(r.headers.get("retry-after") == "1"
                             and "model '%s' is busy: its queue of 1 requests is full" % CV in (r.error() or "")
                             for r in busy), repr([(r.headers, r.body) for r in busy[:1]]))
        m = s.metrics()
        t.eq("/metrics counts the 503s", len(busy),
             m.get('salient_model_requests_total{model="%s",status="503"}' % CV, 0))
        r = s.request("POST", P, img, {"Content-Type": "image/png"})
        t.eq("after the burst the server answers 200", 200, r.status)


def timeouts(t, repo, img):
    """--max-queue-delay-us 1000000 --request-timeout-ms 500: a lone image waits 1 s for
    company, so it is always past its 0.5 s deadline when taken (504, never run); a request
    that fills the batch is taken at once and answered 200."""
    with Server(t.tmp, repo, "--max-queue-delay-us", "1000000", "--request-timeout-ms", "500", name="timeout") as s:
        m0 = s.metrics()
        out = parallel(2, lambda i: s.request("POST", P, img, {"Content-Type": "image/png"}))
        t.check("2 lone requests: both 504 naming --request-timeout-ms 500",
                all(hasattr(r, "status") and r.status == 504
                    and "request timed out waiting in the queue (--request-timeout-ms 500)" in (r.error() or "")
                    for r in out),
                repr([(getattr(r, "status", r), getattr(r, "body", b"")[:200]) for r in out]))
        r = s.request("POST", P, {"instances": [b64(img)] * 8})
        t.check("a request of 8 images (a full batch) is not kept waiting: 200",
                r.status == 200 and len(r.json()["predictions"]) == 8, r.body[:200])
        m1 = s.metrics()
        k = 'salient_model_requests_total{model="%s",status="504"}' % CV
        t.eq("/metrics counts two 504s", 2, m1.get(k, 0) - m0.get(k, 0))
        k = 'salient_model_inference_count_total{model="%s"}' % CV
        t.eq("/metrics: timed-out images were never run (8 images run)", 8, m1.get(k, 0) - m0.get(k, 0))

        # Clients that hang up while their requests wait: the answers go nowhere (libmicrohttpd
        # may drop such a connection on resume without asking for an answer), nothing leaks.
        socks = []
        for _ in range(2):
            so = socket.create_connection(("127.0.0.1", s.port), timeout=60)
            so.sendall(("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\nContent-Length: %d\r\n\r\n"
                        % (P, len(img))).encode() + img)
            socks.append(so)
        # Hang up once both are queued (read and decoded): they wait 1 s there, then time out.
        until = time.monotonic() + 60
        while time.monotonic() < until:
            m = s.metrics()
            if (m.get('salient_model_queue_depth{model="%s"}' % CV) == 2
                    or m.get('salient_model_requests_total{model="%s",status="504"}' % CV, 0) >= 3):
                break
            time.sleep(0.02)
        for so in socks:
            so.close()
        m = {}
        while time.monotonic() < until:
            m = s.metrics()
            if m.get("salient_inflight_requests") == 0:
                break
            time.sleep(0.05)
        t.eq("2 clients that hung up while queued: their requests end (none left in flight)", 0,
             m.get("salient_inflight_requests"))
        r = s.request("GET", "/v2/models/%s/ready" % CV)
        t.eq("... and the server still answers", 200, r.status)


def sigterm(t, repo, png, refs):
    """SIGTERM with 32 requests accepted and unanswered: 31 single images queued (a batch of 40
    waits up to 10 s for company) and one upload of 9 images half sent. After SIGTERM new
    connections are refused; the upload is finished, which fills the batch of 40: all 32 are
    answered 200 and salientd exits 0. refs: each image's single-request scores (a lone request
    here would wait the whole 10 s)."""
    # --exit-timeout 600: the drain must not depend on how fast a batch of 40 runs (minutes
    # under ThreadSanitizer on a busy machine; the default 30 s then drops the answers).
    s = Server(t.tmp, repo, "--max-batch-size", "40", "--max-queue-delay-us", "10000000",
               "--exit-timeout", "600", name="sigterm").start()
    try:
        results = [None] * 31

        def client(i):
            try:
                results[i] = s.request("POST", P, png[0], {"Content-Type": "image/png"})
            except Exception as e:
                results[i] = e
        threads = [threading.Thread(target=client, args=(i,)) for i in range(31)]
        for th in threads:
            th.start()

        body = json.dumps({"instances": [b64(png[i % 3]) for i in range(9)]}).encode()
        up = socket.create_connection(("127.0.0.1", s.port), timeout=120)
        up.sendall(("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    "Content-Length: %d\r\n\r\n" % (P, len(body))).encode() + body[:len(body) // 2])

        # Nothing can leave the queue before the batch of 40 is full (or 10 s pass), so these
        # counts only grow until they are reached.
        deadline = time.monotonic() + 60
        m = {}
        while time.monotonic() < deadline:
            m = s.metrics()
            if m.get('salient_model_queue_depth{model="%s"}' % CV) == 31 and m.get("salient_inflight_requests") == 32:
                break
            time.sleep(0.05)
        t.check("31 requests queued and 32 in flight", m.get('salient_model_queue_depth{model="%s"}' % CV) == 31
                and m.get("salient_inflight_requests") == 32, "queue %r, in flight %r"
                % (m.get('salient_model_queue_depth{model="%s"}' % CV), m.get("salient_inflight_requests")))
        t.check("no answer before SIGTERM", all(r is None for r in results))

        s.signal()
        while time.monotonic() < deadline and "SIGTERM received" not in s.log():
            time.sleep(0.02)
        t.check("salientd logs the SIGTERM", "SIGTERM received: not ready, finishing accepted requests" in s.log())
        try:
            socket.create_connection(("127.0.0.1", s.port), timeout=10).close()
            refused = False
        except ConnectionRefusedError:
            refused = True
        t.check("a new connection during the drain is refused", refused)
        t.check("salientd is still draining then (nothing could finish yet)", s.proc.poll() is None)

        up.sendall(body[len(body) // 2:])
        raw = b""
        while True:
            chunk = up.recv(65536)
            if not chunk:
                break
            raw += chunk
        up.close()
        head, _, rest = raw.partition(b"\r\n\r\n")
        t.check("the upload in progress at SIGTERM is answered 200 with Connection: close",
                head.startswith(b"HTTP/1.1 200") and b"\r\nConnection: close" in head, head[:200])
        try:
            j = json.loads(rest)
            worst = max(max_diff(refs[i % 3], {e["label"]: e["score"] for e in j["predictions"][i]["labels"]})
                        for i in range(9))
            t.check("... with its 9 predictions, run in the batch of 40",
                    len(j["predictions"]) == 9 and worst <= TOL
                    and all(p["timing_ms"]["batch"] == 40 for p in j["predictions"]), "max difference %g" % worst)
        except (ValueError, KeyError, IndexError) as e:
            t.fail("... with its 9 predictions", repr(e))

        for th in threads:
            th.join()
        ok = [r for r in results if hasattr(r, "status") and r.status == 200]
        t.check("all 31 queued requests answered 200", len(ok) == 31,
                repr([getattr(r, "status", r) for r in results if r not in ok][:5]))
        worst = max((max_diff(refs[0], v1_scores(r)) for r in ok), default=float("inf"))
        t.check("... with the single-request scores", worst <= TOL, "max difference %g" % worst)
        t.check("... and Connection: close", all(r.headers.get("connection") == "close" for r in ok))
        rc = s.wait(120)
        t.eq("salientd exits 0 after the drain", 0, rc)
        t.check("salientd logs 'stopped'", "salientd: stopped" in s.log())
        try:
            socket.create_connection(("127.0.0.1", s.port), timeout=10).close()
            refused = False
        except ConnectionRefusedError:
            refused = True
        t.check("a new connection after the drain is refused", refused)
    finally:
        s.kill()


if __name__ == "__main__":
    sys.exit(main())
