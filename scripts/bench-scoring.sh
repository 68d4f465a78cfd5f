#!/usr/bin/env bash
# Scoring latency for BENCHMARKS.md (not a test): the example modelserver
# (KServe V2, the Iris model from examples/iris-train) called directly,
# through Debian's nginx as a reverse proxy with a keepalive upstream, and
# through jobgate's scoring router (the slot below), same upstream, same
# run, at concurrency 1 and 16, with scripts/loadgen (HDR histograms).
#
#   scripts/bench-scoring.sh            # DURATION=10s per row by default
#   DURATION=30s scripts/bench-scoring.sh
#
# Everything runs as host processes on free loopback ports, started and
# stopped here by PID. nginx is installed with apt-get when missing (Debian,
# as root). When the Jaeger test binary is built (.ci/jaeger.sh), a Jaeger
# is started too and every process traces to it with 1% sampling
# (OTEL_TRACES_SAMPLER=parentbased_traceidratio, ARG 0.01); else tracing is
# off and the script says so. Prints one Markdown table row per run.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# free_port prints a loopback TCP port nothing listens on.
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
}
# wait_http URL: until URL answers 2xx (20 s at most).
wait_http() {
  for _ in $(seq 400); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench-scoring: $1 did not answer within 20s" >&2
  exit 1
}

if ! command -v nginx >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx >/dev/null
  else
    echo "bench-scoring: nginx missing: sudo apt-get install -y nginx" >&2
    exit 1
  fi
fi

echo "building modelserver, iris-train, loadgen" >&2
CGO_ENABLED=0 go build -o "$work/modelserver" ./examples/modelserver
CGO_ENABLED=0 go build -o "$work/iris-train" ./examples/iris-train
CGO_ENABLED=0 go build -o "$work/loadgen" ./scripts/loadgen
mkdir -p "$work/model"
"$work/iris-train" -out "$work/model" >/dev/null

# Tracing: 1% sampling into a Jaeger when one is built.
jaeger="${JOBGATE_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/jobgate-test}/jaeger-v1.76.0"
tracing="off"
if [ -x "$jaeger" ]; then
  jq_http=$(free_port) jq_grpc=$(free_port) otlp_grpc=$(free_port) otlp_http=$(free_port)
  cat >"$work/jaeger.yaml" <<YAML
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces: {receivers: [otlp], processors: [], exporters: [jaeger_storage_exporter]}
  telemetry: {metrics: {level: none}, logs: {level: warn}}
extensions:
  jaeger_storage: {backends: {mem: {memory: {max_traces: 100000}}}}
  jaeger_query:
    enable_tracing: false
    storage: {traces: mem}
    http: {endpoint: "127.0.0.1:$jq_http"}
    grpc: {endpoint: "127.0.0.1:$jq_grpc"}
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "127.0.0.1:$otlp_grpc"}
      http: {endpoint: "127.0.0.1:$otlp_http"}
exporters:
  jaeger_storage_exporter: {trace_storage: mem}
YAML
  "$jaeger" --config "$work/jaeger.yaml" >"$work/jaeger.log" 2>&1 &
  pids+=($!)
  wait_http "http://127.0.0.1:$jq_http/api/services"
  export OTEL_TRACES_EXPORTER=otlp OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$otlp_http"
  export OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.01
  tracing="on, 1% sampled, to Jaeger"
else
  echo "bench-scoring: $jaeger not built (.ci/jaeger.sh): tracing off" >&2
fi

ms_port=$(free_port)
JOBGATE_MODEL_PATH="$work/model/model.json" JOBGATE_MODEL_NAME=iris JOBGATE_MODEL_VERSION=1 \
  JOBGATE_HOST=127.0.0.1 JOBGATE_PORT=$ms_port "$work/modelserver" 2>"$work/modelserver.log" &
pids+=($!)
wait_http "http://127.0.0.1:$ms_port/v2/health/ready"

nginx_port=$(free_port)
mkdir -p "$work/nginx"
cat >"$work/nginx.conf" <<NGINX
daemon off;
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  upstream modelserver {
    server 127.0.0.1:$ms_port;
    keepalive 64;
  }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://modelserver;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
NGINX
nginx -e "$work/nginx/error.log" -c "$work/nginx.conf" &
pids+=($!)
wait_http "http://127.0.0.1:$nginx_port/v2/health/ready"

# jobgate's scoring router in front of the same modelserver: a Redis of its
# own holding a deployment iris whose one ready replica is that modelserver
# (the records a worker and the controller write; the endpoint without its
# TTL, since no worker renews it here), and `jobgate scoring` on a free port.
# ROUTER_URL (and ROUTER_TOKEN) point at another router instead.
router_url=${ROUTER_URL:-}
router_auth=${ROUTER_TOKEN:+Authorization: Bearer $ROUTER_TOKEN}
if [ -z "$router_url" ]; then
  echo "building jobgate" >&2
  CGO_CFLAGS=-Wno-deprecated-declarations go build \
    -tags 'remote exclude_graphdriver_btrfs btrfs_noversion exclude_graphdriver_devicemapper containers_image_openpgp' \
    -o "$work/jobgate" ./cmd/jobgate
  redis_port=$(free_port)
  redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 200); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.05; done
  now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  rc() { redis-cli -p "$redis_port" "$@" >/dev/null; }
  rc SADD '{jobgate}':deployments default/iris
  rc HSET '{jobgate}':ws:default:deployment:iris spec "{\"workspace\":\"default\",\"spec\":{\"name\":\"iris\",\"model\":\"iris:1\",\"image\":\"localhost/jobgate-examples:latest\",\"command\":[\"/bin/modelserver\"]},\"targets\":[{\"ref\":\"iris:1\",\"model\":\"iris\",\"version\":1,\"sha256\":\"\",\"weight\":100}],\"revision\":1,\"created_at\":\"$now\",\"updated_at\":\"$now\"}"
  rc HSET '{jobgate}':ws:default:deployment:iris:replicas r1 "{\"id\":\"r1\",\"job_id\":\"bench1\",\"revision\":1,\"model\":\"iris\",\"version\":1,\"restarts\":0,\"created_at\":\"$now\"}"
  rc SET '{jobgate}':endpoint:bench1 "{\"job_id\":\"bench1\",\"attempt\":1,\"workspace\":\"default\",\"deployment\":\"iris\",\"replica\":\"r1\",\"worker\":\"bench\",\"address\":\"127.0.0.1:$ms_port\",\"state\":\"ready\",\"model\":\"iris\",\"version\":1,\"revision\":1,\"updated_at\":\"$now\"}"
  router_port=$(free_port)
  token=bench-scoring-admin-token-$RANDOM$RANDOM
  JOBGATE_TOKEN=$token "$work/jobgate" scoring --listen "127.0.0.1:$router_port" --redis-url "redis://127.0.0.1:$redis_port" \
    --log-level warn 2>"$work/scoring.log" &
  pids+=($!)
  wait_http "http://127.0.0.1:$router_port/v2/health/ready"
  for _ in $(seq 200); do
    curl -fsS -o /dev/null -H "Authorization: Bearer $token" "http://127.0.0.1:$router_port/v2/models/iris/ready" 2>/dev/null && break
    sleep 0.05
  done
  router_url="http://127.0.0.1:$router_port/v2/models/iris/infer"
  router_auth="Authorization: Bearer $token"
fi

echo "modelserver :$ms_port, nginx :$nginx_port, tracing $tracing, $DURATION per row ($WARMUP warm-up), $(nproc) cores" >&2
echo "| path | c | req/s | p50 | p90 | p99 | p99.9 | max | errors |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for c in 1 16; do
  "$work/loadgen" -markdown -label direct -c "$c" -d "$DURATION" -warmup "$WARMUP" -url "http://127.0.0.1:$ms_port/v2/models/iris/infer"
  "$work/loadgen" -markdown -label "nginx $(nginx -v 2>&1 | sed 's|.*/||')" -c "$c" -d "$DURATION" -warmup "$WARMUP" -url "http://127.0.0.1:$nginx_port/v2/models/iris/infer"
  if [ -n "$router_url" ]; then
    "$work/loadgen" -markdown -label "jobgate router" -c "$c" -d "$DURATION" -warmup "$WARMUP" -url "$router_url" ${router_auth:+-H "$router_auth"}
  fi
done
