#!/usr/bin/env bash
# test_api_docs.sh: docs/API.md and server/openapi.json against the server they describe.
#
#  1. server/openapi.json is OpenAPI 3.0 JSON whose operations are exactly the route table of
#     server/http.c (parsed from the source), open routes without security, every $ref
#     resolving, every error answer the Error schema (but
#     readiness's 503).
#  2. Every ```sh block of docs/API.md that runs curl is an example marked `# example: NAME`
#     (optional `# server: salientd --port 8080 FLAGS`, `# status: NNN`, default 200); every
#     route has one. Each runs as written (localhost:8080 pointed at a salientd started here on
#     a loopback port, in a folder holding xray.png, xray2.png and xray.jpg) and must exit 0
#     with its status, print JSON (Prometheus text for /metrics, nothing for 204), carry every
#     field of the ```json block right under it with the same type (errors: the same message),
#     and the headers of a plain block starting with HTTP/.
#
# Run by `make check` (SALIENTD, SALIENT_SRCDIR); needs curl and /usr/bin/python3.
# API_DOCS_SHOW=DIR also writes each example's output to DIR/NAME.out (to refresh the doc).
set -u
SALIENT_SRCDIR=${SALIENT_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
SALIENTD=${SALIENTD:-server/salientd}
export SALIENT_SRCDIR SALIENTD
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
exec "$PY" - <<'PYTHON'
import json, os, re, shlex, shutil, signal, subprocess, sys, tempfile, time

SRC = os.environ["SALIENT_SRCDIR"]
SALIENTD = os.path.abspath(os.environ["SALIENTD"])
SHOW = os.environ.get("API_DOCS_SHOW")
passed = failed = 0


def ok(what):
    global passed
    passed += 1
    print("ok   " + what)


def bad(what):
    global failed
    failed += 1
    print("FAIL " + what)


def check(cond, what):
    ok(what) if cond else bad(what)
    return cond


def norm(path):
    """/v2/models/{model_name}/infer and /v2/models/{}/infer are the same route."""
    return re.sub(r"\{[^}]*\}", "{}", path)


# ---- 1. the route table and the OpenAPI document --------------------------------------------

http_c = open(os.path.join(SRC, "server/http.c")).read()
table = re.search(r"routes\[\]\s*=\s*\{(.*?)\n\};", http_c, re.S)
routes = []  # (method, pattern, flags)
if table:
    for m in re.finditer(r'\{\s*"([A-Z]+)"\s*,\s*"([^"]+)"\s*,\s*\w+\s*,\s*([^}]*?)\s*\}', table.group(1)):
        routes.append((m.group(1), m.group(2), m.group(3)))
if not check(len(routes) >= 10, "route table parsed from server/http.c (%d routes)" % len(routes)):
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1)

try:
    api = json.load(open(os.path.join(SRC, "server/openapi.json")))
    ok("server/openapi.json is JSON")
except ValueError as e:
    bad("server/openapi.json is JSON: %s" % e)
    api = {}

check(str(api.get("openapi", "")).startswith("3.0."), "openapi is 3.0.x")
ac = re.search(r"AC_INIT\(\[[^]]*\],\s*\[([^]]*)\]", open(os.path.join(SRC, "configure.ac")).read())
check(ac and api.get("info", {}).get("version") == ac.group(1),
      "info.version is configure.ac's version (%s)" % (ac.group(1) if ac else "?"))


def resolve(ref):
    node = api
    for part in ref.lstrip("#/").split("/"):
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return None
    return node


refs = []


def walk(node):
    if isinstance(node, dict):
        if "$ref" in node:
            refs.append(node["$ref"])
        for v in node.values():
            walk(v)
    elif isinstance(node, list):
        for v in node:
            walk(v)


walk(api)
unresolved = sorted({r for r in refs if not r.startswith("#/") or resolve(r) is None})
check(refs and not unresolved, "every $ref resolves (%d refs)%s" % (len(refs), ": " + ", ".join(unresolved) if unresolved else ""))

ops = {}
for path, item in api.get("paths", {}).items():
    for meth, op in item.items():
        if meth in ("get", "put", "post", "delete", "patch", "head", "options"):
            ops[(meth.upper(), norm(path))] = (path, item, op)
table_keys = {(m, p) for m, p, _ in routes}
missing = sorted(table_keys - set(ops))
extra = sorted(set(ops) - table_keys)
check(not missing, "every route of server/http.c is in openapi.json%s" % (": missing %s" % missing if missing else ""))
check(not extra, "openapi.json has no route the server lacks%s" % (": %s" % extra if extra else ""))

schemes = api.get("components", {}).get("securitySchemes", {})
check(api.get("security") and all(k in schemes for s in api["security"] for k in s),
      "a global security requirement using defined schemes (%s)" % ", ".join(schemes))
error_schema = api.get("components", {}).get("schemas", {}).get("Error", {})
check(error_schema.get("required") == ["error"], "components.schemas.Error requires 'error'")


def deref(node):
    while isinstance(node, dict) and "$ref" in node:
        node = resolve(node["$ref"]) or {}
    return node


op_ids = set()
for (meth, npath), (path, item, op) in sorted(ops.items()):
    where = "%s %s" % (meth, path)
    flags = next((f for m, p, f in routes if (m, p) == (meth, npath)), "")
    problems = []
    oid = op.get("operationId")
    if not oid or oid in op_ids:
        problems.append("operationId missing or repeated")
    op_ids.add(oid)
    declared = {p.get("name") for p in (item.get("parameters", []) + op.get("parameters", []))
                for p in [deref(p)] if p.get("in") == "path"}
    for name in re.findall(r"\{([^}]*)\}", path):
        if name not in declared:
            problems.append("path parameter '%s' not declared" % name)
    responses = op.get("responses", {})
    if not any(code.startswith("2") for code in responses):
        problems.append("no 2xx response")
    for code, resp in responses.items():
        resp = deref(resp)
        for ctype, media in resp.get("content", {}).items():
            if "schema" not in media:
                problems.append("%s %s has no schema" % (code, ctype))
            elif (code[0] in "45" and ctype == "application/json" and media["schema"] != {"$ref": "#/components/schemas/Error"}
                  and not (code == "503" and path.endswith("/ready"))):  # readiness says {"ready": false}
                problems.append("%s is not the Error schema" % code)
    if "OPEN" in flags:
        if op.get("security") != []:
            problems.append("open route without 'security: []'")
    else:
        if "security" in op:
            problems.append("a route that needs the key overrides security")
        if "401" not in responses or "403" not in responses:
            problems.append("no 401/403 answer")
    if "CONTROL" in flags and "403" not in responses:
        problems.append("model control without its 403")
    check(not problems, "openapi %s%s" % (where, ": " + "; ".join(problems) if problems else ""))

# ---- 2. the examples of docs/API.md ---------------------------------------------------------

doc = open(os.path.join(SRC, "docs/API.md")).read()
blocks = [(m.group(1), m.group(2), m.start(), m.end())
          for m in re.finditer(r"^```(\w*)\n(.*?)^```[ \t]*$", doc, re.M | re.S)]
examples = []
for i, (lang, body, start, end) in enumerate(blocks):
    lines = body.splitlines()
    code = [l for l in lines if l.strip() and not l.lstrip().startswith("#")]
    if lang != "sh" or not code or not code[0].lstrip().startswith("curl"):
        continue
    line_no = doc.count("\n", 0, start) + 1
    meta = dict(re.findall(r"^#\s*(example|server|status):\s*(.*?)\s*$", body, re.M))
    if not check("example" in meta, "docs/API.md:%d: a curl block marked '# example: NAME'" % line_no):
        continue
    nxt = blocks[i + 1] if i + 1 < len(blocks) else None
    answer = None
    if nxt and not doc[end:nxt[2]].strip():
        answer = nxt[:2]
    examples.append({"name": meta["example"], "server": meta.get("server", ""), "line": line_no,
                     "status": int(meta.get("status", "200")), "body": body, "answer": answer})
names = [e["name"] for e in examples]
check(len(set(names)) == len(names), "example names are unique (%d examples)" % len(names))


def request_of(body):
    """(method, path) of a curl command as written."""
    m = re.search(r"localhost:8080(/[^\s'\"?\\]*)", body)
    path = m.group(1) if m else ""
    x = re.search(r"(?:-X|--request)\s+([A-Z]+)", body)
    if x:
        method = x.group(1)
    elif re.search(r"\s-I\b|\s--head\b", body):
        method = "HEAD"
    elif re.search(r"\s(-d|--data\S*|-F|--form|-T|--upload-file)\s", body):
        method = "POST"
    else:
        method = "GET"
    return method, path


def route_re(pattern):
    return "^" + "[A-Za-z0-9._-]+".join(re.escape(p) for p in pattern.split("{}")) + "$"


for e in examples:
    e["method"], e["path"] = request_of(e["body"])
for m, p, _ in routes:
    hit = [e["name"] for e in examples if e["method"] == m and re.match(route_re(p), e["path"])]
    check(hit, "docs/API.md has an example of %s %s%s" % (m, p, " (%s)" % ", ".join(hit) if hit else ""))

# ---- run them -------------------------------------------------------------------------------

tmp = tempfile.mkdtemp(prefix="api-docs-")
work = os.path.join(tmp, "work")
os.makedirs(work)
data = os.path.join(SRC, "tests/data/api-docs")
committed = all(os.path.exists(os.path.join(data, f)) for f in ("xray.png", "xray2.png", "xray.jpg"))
if committed:
    for f in ("xray.png", "xray2.png", "xray.jpg"):
        shutil.copy(os.path.join(data, f), work)
else:
    # Without the committed phantoms: any grayscale picture will do, but messages that
    # quote sizes differ, so only their types are compared.
    from PIL import Image
    img = Image.linear_gradient("L").resize((256, 256))
    img.save(os.path.join(work, "xray.png"))
    img.transpose(Image.FLIP_LEFT_RIGHT).save(os.path.join(work, "xray2.png"))
    img.save(os.path.join(work, "xray.jpg"), quality=85)
# The default repository as scripts/prepare-repo.sh builds it: models/repo, with face-api's
# weights next to the faces manifest when scripts/fetch-faceapi.sh has fetched them (else no
# faces model, and the examples that need it are skipped).
repo_all = os.path.join(tmp, "repo")
os.makedirs(repo_all)
BUILD = os.path.dirname(os.path.dirname(os.path.abspath(SALIENTD)))
faceapi = next((d for d in (os.environ.get("SALIENT_FACEAPI_DIR"), os.path.join(BUILD, "faceapi"),
                            os.path.join(SRC, "build", "faceapi"))
                if d and os.path.isfile(os.path.join(d, "model", "ssd_mobilenetv1_model-weights_manifest.json"))), None)
for n in sorted(os.listdir(os.path.join(SRC, "models/repo"))):
    src = os.path.join(SRC, "models/repo", n)
    if n == "faces":
        if faceapi:
            shutil.copytree(src, os.path.join(repo_all, n))
            for f in os.listdir(os.path.join(faceapi, "model")):
                shutil.copy(os.path.join(faceapi, "model", f), os.path.join(repo_all, n))
            for f in os.listdir(os.path.join(faceapi, "demo")):
                if f.endswith(".jpg"):
                    shutil.copy(os.path.join(faceapi, "demo", f), work)
    elif os.path.isdir(src):
        os.symlink(src, os.path.join(repo_all, n))
servers = {}  # flags -> (Popen, port, log path)
started = [0]


def start(flags):
    """A salientd as `# server:` says, on a loopback port; None if it does not come up."""
    argv = shlex.split(flags) if flags else ["salientd", "--port", "8080"]
    if argv[0] != "salientd":
        return None
    rest, i = [], 1
    while i < len(argv):
        if argv[i] == "--port":
            i += 2
            continue
        rest.append(argv[i])
        i += 1
    started[0] += 1
    repo = repo_all
    if flags:
        # Only the models its examples name: a server per flag set need not load all four.
        repo = os.path.join(tmp, "repo-%d" % started[0])
        os.makedirs(repo)
        want = set()
        for e in examples:
            if e["server"] == flags:
                want.update(n for n in re.findall(r"/models/([A-Za-z0-9._-]+?)(?=[:/'\"\s]|$)", e["body"])
                            if os.path.isdir(os.path.join(repo_all, n)))
        for n in want or {"chexnet-demo"}:
            os.symlink(os.path.join(repo_all, n), os.path.join(repo, n))
    log = os.path.join(tmp, "salientd-%d.log" % started[0])
    p = subprocess.Popen([SALIENTD, *rest, "--port", "0", "--host", "127.0.0.1", "--model-repo", repo],
                         stdout=subprocess.DEVNULL, stderr=open(log, "w"), stdin=subprocess.DEVNULL)
    port = None
    for _ in range(3000):
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", open(log).read())
        if m:
            port = int(m.group(1))
            break
        if p.poll() is not None:
            break
        time.sleep(0.05)
    if not port:
        p.kill()
        print(open(log).read())
        return None
    servers[flags] = (p, port, log)
    return port


def stop(flags):
    p, _, _ = servers.pop(flags)
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()


PROM = re.compile(r"^(# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+|[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? -?[0-9.e+-]+)$")


def conforms(want, got, where="$"):
    """None when got has every field of want with the same JSON type (lists: their first element)."""
    def kind(v):
        return "bool" if isinstance(v, bool) else "number" if isinstance(v, (int, float)) else type(v).__name__
    if kind(want) != kind(got):
        return "%s: %s where the doc shows %s" % (where, kind(got), kind(want))
    if isinstance(want, dict):
        for k, v in want.items():
            if k not in got:
                return "%s.%s: missing" % (where, k)
            err = conforms(v, got[k], "%s.%s" % (where, k))
            if err:
                return err
    elif isinstance(want, list) and want:
        return conforms(want[0], got[0], where + "[0]") if got else "%s: empty" % where
    return None


last_use = {}
for i, e in enumerate(examples):
    last_use[e["server"]] = i
try:
    for i, e in enumerate(examples):
        what = "example %s (docs/API.md:%d)" % (e["name"], e["line"])
        if not faceapi and re.search(r"faces[:/]", e["body"]):
            print("skip %s: no face-api weights (scripts/fetch-faceapi.sh)" % what)
            continue
        if e["server"] not in servers and not start(e["server"]):
            bad("%s: salientd %s starts" % (what, e["server"] or "--port 8080"))
            continue
        port = servers[e["server"]][1]
        script = ("curl() { command curl \"$@\" -w '\\n@@status=%{http_code}@@\\n'; }\n" +
                  e["body"].replace("localhost:8080", "127.0.0.1:%d" % port))
        try:
            r = subprocess.run(["bash", "-c", script], cwd=work, stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=300)
            out, rc = r.stdout.decode("utf-8", "replace"), r.returncode
        except subprocess.TimeoutExpired:
            out, rc = "", "timeout"
        if last_use[e["server"]] == i and e["server"]:
            stop(e["server"])
        st = re.findall(r"\n?@@status=(\d{3})@@\n", out)
        body = re.sub(r"\n?@@status=\d{3}@@\n", "", out)
        if SHOW:
            os.makedirs(SHOW, exist_ok=True)
            open(os.path.join(SHOW, e["name"] + ".out"), "w").write(body)
        problems = []
        if rc != 0:
            problems.append("exit %s" % rc)
        if len(st) != 1:
            problems.append("%d curl calls (one per example)" % len(st))
        elif int(st[0]) != e["status"]:
            problems.append("status %s, the doc says %d" % (st[0], e["status"]))
        headers = ""
        if body.startswith("HTTP/"):
            headers, _, body = body.replace("\r\n", "\n").partition("\n\n")
        if e["path"] == "/metrics":
            lines = [l for l in body.splitlines() if l.strip()]
            wrong = [l for l in lines if not PROM.match(l)]
            if not lines or wrong:
                problems.append("not Prometheus text: %r" % (wrong[:1] or "empty"))
        elif e["status"] == 204:
            if body.strip():
                problems.append("a body on 204")
        else:
            try:
                got = json.loads(body)
            except ValueError:
                got = None
                problems.append("not JSON: %r" % body[:200])
            if got is not None and e["status"] >= 400 and (not isinstance(got, dict) or list(got) != ["error"]):
                problems.append("error answer is not {\"error\": ...}")
            if got is not None and e["path"] == "/openapi.json" and got != api:
                problems.append("the compiled-in /openapi.json differs from server/openapi.json")
            if got is not None and e["answer"] and e["answer"][0] == "json":
                try:
                    want = json.loads(e["answer"][1])
                except ValueError:
                    want = None
                    problems.append("the doc's answer below it is not JSON")
                if want is not None:
                    err = conforms(want, got)
                    if err:
                        problems.append("answer differs from the doc: " + err)
                    elif committed and isinstance(want, dict) and "error" in want and want != got:
                        problems.append("error message %r, the doc says %r" % (got.get("error"), want["error"]))
        if e["answer"] and e["answer"][1].startswith("HTTP/"):
            have = {l.strip().lower() for l in headers.splitlines()}
            for l in e["answer"][1].splitlines()[1:]:
                if l.strip() and l.strip().lower() not in have:
                    problems.append("header %r missing" % l.strip())
        check(not problems, what + (": " + "; ".join(problems) if problems else ""))
finally:
    for flags in list(servers):
        stop(flags)
    shutil.rmtree(tmp, ignore_errors=True)

print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
PYTHON
