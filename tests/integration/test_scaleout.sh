#!/usr/bin/env bash
# test_scaleout.sh: docker/nginx.conf in front of three real salientd on loopback (the upstream
# addresses, port and paths rewritten from the compose names; everything else as shipped):
# requests spread over the replicas, one replica killed (SIGKILL) and another stopped (SIGTERM)
# in the middle of a load, every request still answered 200; a replica answering 503 is retried
# on another; an oversized body is refused by nginx with 413. Then docker/compose.yaml and
# docker/k8s/*.yaml are parsed and checked for the fields that make them work together. (They
# are not run on a cluster here.) Needs curl and Debian's nginx and python3-yaml
# (scripts/setup.sh --test); without nginx the failover part is skipped (exit 77).
set -u
SALIENTD=${SALIENTD:-server/salientd}
SRCDIR=${SALIENT_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
PY=/usr/bin/python3
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
tmp=$(mktemp -d)
pids=()
ngpid=
cleanup() {
  [ -n "$ngpid" ] && kill "$ngpid" 2>/dev/null
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
expect() { # name, want, got
  if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: want '$2', got '$3'"; fi
}

# ---- the manifests: parsed, and consistent with each other and with the image ----------------
if "$PY" -c 'import yaml' 2>/dev/null; then
  TMPFILE=$tmp/yaml.ok "$PY" - "$SRCDIR/docker" <<'EOF' && ok "k8s manifests and compose.yaml: $(cat "$tmp/yaml.ok" 2>/dev/null)" || bad "k8s manifests and compose.yaml"
import os, re, sys, yaml
d = sys.argv[1]
docs = {}
for f in sorted(os.listdir(os.path.join(d, "k8s"))):
    with open(os.path.join(d, "k8s", f)) as fh:
        for doc in yaml.safe_load_all(fh):
            docs[doc["kind"]] = doc
problems = []
def need(cond, what):
    if not cond:
        problems.append(what)
for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Kustomization"):
    need(kind in docs, "no " + kind)
dep, svc, hpa, pdb, kus = (docs.get(k, {}) for k in ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Kustomization"))
for k, doc in docs.items():
    need(doc.get("apiVersion") and (k == "Kustomization" or doc.get("metadata", {}).get("name")), k + ": apiVersion/metadata.name")
spec = dep["spec"]
labels = spec["template"]["metadata"]["labels"]
need(all(labels.get(k) == v for k, v in spec["selector"]["matchLabels"].items()), "Deployment selector does not match its pod labels")
need(all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()), "Service selector does not match the pods")
need(all(labels.get(k) == v for k, v in pdb["spec"]["selector"]["matchLabels"].items()), "PDB selector does not match the pods")
pod = spec["template"]["spec"]
c = pod["containers"][0]
ports = {p["name"]: p["containerPort"] for p in c["ports"]}
need(ports.get("http") == 8080, "container port http is not 8080 (the image's SALIENT_PORT)")
need(svc["spec"]["ports"][0]["targetPort"] in ("http", 8080), "Service targetPort is not the container's port")
need(c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready", "readiness is not /v2/health/ready")
need(c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live", "liveness is not /v2/health/live")
for r in ("requests", "limits"):
    need(c["resources"][r].get("cpu") and c["resources"][r].get("memory"), "resources." + r)
env = {e["name"]: e.get("value") for e in c["env"]}
need(env.get("SALIENT_THREADS") == str(c["resources"]["limits"]["cpu"]), "SALIENT_THREADS differs from the CPU limit")
pre = c["lifecycle"]["preStop"]["exec"]["command"]
need(pre[0] == "sleep", "preStop is not a sleep")
grace = pod["terminationGracePeriodSeconds"]
need(grace > int(pre[1]) + int(env["SALIENT_EXIT_TIMEOUT"]), "terminationGracePeriodSeconds %s <= preStop + SALIENT_EXIT_TIMEOUT" % grace)
need(pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001, "not run as the image's uid 10001")
tgt = hpa["spec"]["scaleTargetRef"]
need(tgt["kind"] == "Deployment" and tgt["name"] == dep["metadata"]["name"], "HPA does not target the Deployment")
need(hpa["spec"]["minReplicas"] >= 1 and hpa["spec"]["maxReplicas"] >= hpa["spec"]["minReplicas"], "HPA replica bounds")
need(pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"], "PDB minAvailable would block every drain")
need(sorted(kus["resources"]) == sorted(f for f in os.listdir(os.path.join(d, "k8s")) if f != "kustomization.yaml"), "kustomization does not list every manifest")
dockerfile = open(os.path.join(d, "Dockerfile")).read()
need("USER 10001" in dockerfile and "SALIENT_PORT=8080" in dockerfile, "the Dockerfile's user or port changed: update the manifests")
with open(os.path.join(d, "compose.yaml")) as fh:
    comp = yaml.safe_load(fh)
svcs = comp["services"]
replicas = sorted(k for k in svcs if k.startswith("salientd-"))
need(replicas == ["salientd-1", "salientd-2", "salientd-3"], "compose replicas: %s" % replicas)
nginx = open(os.path.join(d, "nginx.conf")).read()
need(sorted(re.findall(r"server (salientd-\d):8080", nginx)) == replicas, "nginx upstream does not list the compose replicas")
need(all(svcs["nginx"]["depends_on"][r]["condition"] == "service_healthy" for r in replicas), "nginx does not wait for healthy replicas")
body = int(svcs["salientd-1"]["environment"]["SALIENT_MAX_BODY_BYTES"])
m = re.search(r"client_max_body_size (\d+)m;", nginx)
need(m and int(m.group(1)) << 20 == body == int(env["SALIENT_MAX_BODY_BYTES"]), "body limits differ: nginx, compose, k8s")
if problems:
    print("\n".join(problems))
    sys.exit(1)
open(os.environ.get("TMPFILE", "/dev/null"), "w").write("%d k8s objects, %d compose services" % (len(docs), len(svcs)))
EOF
else
  echo "# python3-yaml is missing: manifests not checked"
fi

# ---- nginx in front of three replicas --------------------------------------------------------
if [ ! -x "$NGINX" ]; then
  echo "# nginx is not installed (Debian package nginx-light): failover not tested"
  echo "$pass passed, $fail failed"
  [ "$fail" -eq 0 ] || exit 1
  exit 77
fi
img=$SRCDIR/tests/data/phantom_00000.png

mkdir -p "$tmp/repo" "$tmp/notready/noweights"
ln -s "$SRCDIR/models/repo/quadrant-demo" "$tmp/repo/quadrant-demo"
# A replica that is up but never ready: a model without its weights.
ln -s "$SRCDIR/models/repo/quadrant-demo" "$tmp/notready/quadrant-demo"
cp "$SRCDIR/models/repo/quadrant-demo/manifest.json" "$tmp/notready/noweights/"
start() { # name, repo -> $port; pid in pids[name]
  "$SALIENTD" --model-repo "$2" --port 0 --host 127.0.0.1 --threads 1 --exit-timeout 10 2>"$tmp/$1.log" &
  pids+=($!)
  eval "pid_$1=$!"
  port=
  for _ in $(seq 1 $((${SALIENT_START_TIMEOUT:-120} * 20))); do  # a hang guard, in 0.05 s steps
    port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$tmp/$1.log")
    [ -n "$port" ] && { eval "port_$1=$port"; return 0; }
    sleep 0.05
  done
  echo "salientd $1 did not start:"; cat "$tmp/$1.log"; exit 1
}
start r1 "$tmp/repo"; start r2 "$tmp/repo"; start r3 "$tmp/repo"; start nr "$tmp/notready"
# shellcheck disable=SC2154
echo "# replicas on ports $port_r1 $port_r2 $port_r3; never-ready replica on $port_nr"

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# The shipped config with the compose names replaced by loopback replicas ($1 $2 $3), its own
# port, and logs and temporary files in a folder of its own.
nginx_conf() { # dir, port, upstream 1, 2, 3
  mkdir -p "$1"
  sed -e "s/server salientd-1:8080/server 127.0.0.1:$3/" -e "s/server salientd-2:8080/server 127.0.0.1:$4/" \
      -e "s/server salientd-3:8080/server 127.0.0.1:$5/" -e "s/listen 8080;/listen 127.0.0.1:$2;/" \
      -e "s|error_log stderr warn;|error_log $1/error.log info; pid $1/nginx.pid;|" \
      -e "s|access_log /dev/stdout upstreams;|access_log $1/access.log upstreams; client_body_temp_path $1/body; proxy_temp_path $1/proxy; fastcgi_temp_path $1/fastcgi; uwsgi_temp_path $1/uwsgi; scgi_temp_path $1/scgi;|" \
      -e "s/worker_processes auto;/worker_processes 1;/" \
      "$SRCDIR/docker/nginx.conf" >"$1/nginx.conf"
}
ngport=$(free_port)
nginx_conf "$tmp/ng" "$ngport" "$port_r1" "$port_r2" "$port_r3"
for s in salientd-1 salientd-2 salientd-3; do
  grep -q "server 127.0.0.1:[0-9]* max_fails=2 fail_timeout=10s;" "$tmp/ng/nginx.conf" || bad "rewriting $s"
done
"$NGINX" -t -p "$tmp/ng" -c "$tmp/ng/nginx.conf" >"$tmp/ng/t.log" 2>&1 && ok "nginx -t accepts docker/nginx.conf" || { bad "nginx -t: $(cat "$tmp/ng/t.log")"; echo "$pass passed, $fail failed"; exit 1; }
"$NGINX" -p "$tmp/ng" -c "$tmp/ng/nginx.conf" -g 'daemon off;' 2>>"$tmp/ng/stderr.log" &
ngpid=$!
lb=http://127.0.0.1:$ngport
for _ in $(seq 1 200); do curl -s -o /dev/null "$lb/nginx-health" && break; sleep 0.05; done
expect "through nginx: ready" 200 "$(curl -s -o /dev/null -w '%{http_code}' "$lb/v2/health/ready")"

# Spread: sequential requests reach every replica.
for _ in 1 2 3 4 5 6; do curl -s -o /dev/null -H 'Content-Type: image/png' --data-binary @"$img" "$lb/v1/models/quadrant-demo:predict"; done
used=$(grep -o 'upstream=127.0.0.1:[0-9]*' "$tmp/ng/access.log" | sort -u | wc -l)
expect "requests spread over the 3 replicas" 3 "$used"

# A load of 48 predictions, 4 at a time; replica 1 is killed (SIGKILL) after the 12th answer,
# replica 2 stopped (SIGTERM: it drains) after the 24th.
n=48
: >"$tmp/codes"
seq 1 "$n" | xargs -P 4 -I{} curl -s -o /dev/null -w '%{http_code}\n' -H 'Content-Type: image/png' \
  --data-binary @"$img" "$lb/v1/models/quadrant-demo:predict?top_k=1" >>"$tmp/codes" &
load=$!
while [ "$(wc -l <"$tmp/codes")" -lt 12 ] && kill -0 $load 2>/dev/null; do sleep 0.02; done
# shellcheck disable=SC2154
kill -KILL "$pid_r1"
killed_at=$(wc -l <"$tmp/codes")
while [ "$(wc -l <"$tmp/codes")" -lt 24 ] && kill -0 $load 2>/dev/null; do sleep 0.02; done
# shellcheck disable=SC2154
kill -TERM "$pid_r2"
stopped_at=$(wc -l <"$tmp/codes")
wait $load
echo "# replica 1 killed after $killed_at answers, replica 2 sent SIGTERM after $stopped_at"
expect "all $n requests answered" "$n" "$(wc -l <"$tmp/codes")"
expect "all $n requests answered 200 while replicas died" "200" "$(sort -u "$tmp/codes" | tr '\n' ' ' | sed 's/ $//')"
# shellcheck disable=SC2154
wait "$pid_r2"; expect "the SIGTERM'd replica drained and exited 0" 0 $?
# shellcheck disable=SC2154
grep -q "127.0.0.1:$port_r1" "$tmp/ng/error.log" && ok "nginx saw replica 1 fail and went on (error log names it)" \
  || bad "nginx saw replica 1 fail: $(tail -n 5 "$tmp/ng/error.log")"
tail -n 8 "$tmp/ng/access.log" | grep -q "upstream=127.0.0.1:$port_r3 " && ok "the last requests were served by replica 3" || bad "last requests: $(tail -n 3 "$tmp/ng/access.log")"

# A replica that answers 503 (not ready): nginx retries it elsewhere (proxy_next_upstream http_503).
ng2port=$(free_port)
nginx_conf "$tmp/ng2" "$ng2port" "$port_nr" "$port_r3" "$port_r3"
"$NGINX" -p "$tmp/ng2" -c "$tmp/ng2/nginx.conf" -g 'daemon off;' 2>>"$tmp/ng2/stderr.log" &
ng2pid=$!
pids+=($ng2pid)
for _ in $(seq 1 200); do curl -s -o /dev/null "http://127.0.0.1:$ng2port/nginx-health" && break; sleep 0.05; done
expect "the never-ready replica itself answers 503" 503 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port_nr/v2/health/ready")"
codes=$(for _ in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%{http_code} ' "http://127.0.0.1:$ng2port/v2/health/ready"; done)
expect "through nginx every readiness check is 200" "200 200 200 200 200 200 " "$codes"
grep -q "upstream=127.0.0.1:$port_nr, 127.0.0.1:$port_r3 upstream_status=503, 200" "$tmp/ng2/access.log" \
  && ok "a 503 was retried on the next replica" || bad "a 503 was retried: $(head -n 3 "$tmp/ng2/access.log")"
kill "$ng2pid" 2>/dev/null; wait "$ng2pid" 2>/dev/null

# Bodies over the limit stop at nginx.
head -c $((33 << 20)) /dev/zero >"$tmp/big"
expect "a 33 MiB body: 413 from nginx" 413 "$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: image/png' --data-binary @"$tmp/big" "$lb/v1/models/quadrant-demo:predict")"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
