#!/usr/bin/env bash
# gpu-check.sh checks jobgate's GPU path on a real GPU machine: one with the
# NVIDIA driver (nvidia-smi, libnvidia-ml.so.1) and with neither podman nor
# Redis. It builds jobgate, lists the GPUs the worker sees through NVML, starts
# `jobgate dev` (an in-process Redis, host-process jobs), submits a 1-GPU
# `mode: process` job that runs nvidia-smi -L and prints CUDA_VISIBLE_DEVICES,
# waits for it, prints its logs, and ends with a line that is either PASS or
# FAIL: <why>; it exits non-zero on FAIL.
#
# Usage: scripts/gpu-check.sh
#   JOBGATE_BIN=path   use this binary instead of building bin/jobgate
#                      (building is also skipped when go is not installed and
#                      bin/jobgate exists)
#   GPU_CHECK_TIMEOUT  seconds the job may take to end, default 180
set -euo pipefail

cd "$(dirname "$0")/.."

readonly TAGS='remote exclude_graphdriver_btrfs btrfs_noversion exclude_graphdriver_devicemapper containers_image_openpgp'
readonly JOB_TIMEOUT=${GPU_CHECK_TIMEOUT:-180}
bin=${JOBGATE_BIN:-bin/jobgate}

dev_pid=""
data_dir=""
fail_reason=""
passed=0
# fail also writes its reason here, so that one from a command substitution
# (a subshell) reaches the final line.
reason_file=$(mktemp "${TMPDIR:-/tmp}/jobgate-gpu-check-reason.XXXXXX")

say() { printf 'gpu-check: %s\n' "$*"; }

# fail records why the check failed and exits; the EXIT trap cleans up and
# prints the final FAIL line.
fail() {
  fail_reason=$*
  printf '%s\n' "$*" >"$reason_file"
  exit 1
}

# cleanup stops jobgate dev (by its PID), keeps the data dir of a failed run
# for a look, and prints the final PASS or FAIL line.
cleanup() {
  local rc=$?
  trap - EXIT
  if [[ -n $dev_pid ]] && kill -0 "$dev_pid" 2>/dev/null; then
    kill -TERM "$dev_pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 40; i++)); do
      kill -0 "$dev_pid" 2>/dev/null || break
      sleep 0.5
    done
    if kill -0 "$dev_pid" 2>/dev/null; then
      say "jobgate dev (pid $dev_pid) ignored SIGTERM for 20s; killing it"
      kill -KILL "$dev_pid" 2>/dev/null || true
    fi
    wait "$dev_pid" 2>/dev/null || true
  fi
  if [[ $passed -eq 1 && $rc -eq 0 ]]; then
    [[ -n $data_dir ]] && rm -rf -- "$data_dir"
    rm -f -- "$reason_file"
    echo "PASS"
    exit 0
  fi
  if [[ -n $data_dir && -f $data_dir/dev.log ]]; then
    say "last lines of the jobgate dev log ($data_dir/dev.log, kept):"
    tail -n 30 "$data_dir/dev.log" | sed 's/^/  | /'
  fi
  if [[ -s $reason_file ]]; then
    fail_reason=$(<"$reason_file")
  fi
  rm -f -- "$reason_file"
  echo "FAIL: ${fail_reason:-unexpected error (exit status $rc)}"
  exit 1
}
trap cleanup EXIT
trap 'fail_reason="command failed on line $LINENO of $0"' ERR

# json_field prints the first string value of "key" in a JSON text (no jq on
# a bare GPU machine); nothing when there is none.
json_field() {
  grep -o "\"$1\": *\"[^\"]*\"" <<<"$2" | head -n 1 | sed 's/^.*: *"\(.*\)"$/\1/' || true
}

# api calls the jobgate API: api METHOD PATH [BODY]. It prints the body and
# fails unless the status is 2xx.
api() {
  local method=$1 path=$2 body=${3:-} out code
  local args=(-sS --max-time 15 -X "$method" -H "@$data_dir/auth-header" -w '\n%{http_code}')
  if [[ -n $body ]]; then
    args+=(-H 'Content-Type: application/json' --data "$body")
  fi
  out=$(curl "${args[@]}" "$base$path") || fail "$method $path: curl could not reach jobgate dev"
  code=${out##*$'\n'}
  out=${out%$'\n'*}
  [[ $code == 2?? ]] || fail "$method $path answered HTTP $code: $out"
  printf '%s\n' "$out"
}

for tool in curl nvidia-smi; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool not found; this check needs it (and the NVIDIA driver)"
done

# 1. Build.
if [[ -n ${JOBGATE_BIN:-} ]]; then
  [[ -x $bin ]] || fail "JOBGATE_BIN=$bin is not an executable"
  say "using $bin"
elif command -v go >/dev/null 2>&1; then
  say "building $bin"
  CGO_CFLAGS=${CGO_CFLAGS:--Wno-deprecated-declarations} go build -tags "$TAGS" -o "$bin" ./cmd/jobgate ||
    fail "go build of ./cmd/jobgate failed"
elif [[ -x $bin ]]; then
  say "go is not installed; using the prebuilt $bin"
else
  fail "go is not installed and there is no prebuilt $bin (set JOBGATE_BIN)"
fi

say "nvidia-smi -L on the host:"
nvidia-smi -L | sed 's/^/  | /' || fail "nvidia-smi -L failed on the host: is the driver loaded?"

# 2. The inventory the worker sees through NVML.
say "$bin worker --list-gpus:"
"$bin" worker --list-gpus | sed 's/^/  | /' || fail "worker --list-gpus failed"
list_json=$("$bin" worker --list-gpus --json) || fail "worker --list-gpus --json failed"
say "$bin worker --list-gpus --json:"
printf '%s\n' "$list_json" | sed 's/^/  | /'
gpus=$(grep -o '"uuid": *"' <<<"$list_json" | wc -l || true)
[[ $gpus -ge 1 ]] || fail "worker --list-gpus --json lists no GPU: $list_json"
if grep -q '"simulated": *true' <<<"$list_json"; then
  fail "worker --list-gpus reports simulated GPUs; this check wants the real ones"
fi
indexes=" $(grep -o '"index": *[0-9]*' <<<"$list_json" | grep -o '[0-9]*$' | sort -nu | tr '\n' ' ' || true)"
say "the worker sees $gpus GPU(s), indexes:$indexes"

# 3. jobgate dev on a free loopback port, in a fresh data dir.
port=""
for ((i = 0; i < 50; i++)); do
  p=$((20000 + RANDOM % 20000))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    port=$p
    break
  fi
done
[[ -n $port ]] || fail "found no free loopback port"
data_dir=$(mktemp -d "${TMPDIR:-/tmp}/jobgate-gpu-check.XXXXXX")
base="http://127.0.0.1:$port"
# Work around a bug in jobgate dev at the time of writing: the process
# executor's work folder (<data-dir>/work) is not created, so the first
# host-process job fails with "make working directory". Harmless once fixed.
mkdir -p "$data_dir/work"
say "starting jobgate dev on $base (data in $data_dir)"
env -u JOBGATE_TOKEN -u JOBGATE_REDIS_URL \
  "$bin" dev --data-dir "$data_dir" --addr "127.0.0.1:$port" >"$data_dir/dev.log" 2>&1 &
dev_pid=$!

ready=0
for ((i = 0; i < 120; i++)); do
  kill -0 "$dev_pid" 2>/dev/null || fail "jobgate dev exited while starting"
  if curl -fsS --max-time 2 -o /dev/null "$base/readyz" 2>/dev/null; then
    ready=1
    break
  fi
  sleep 0.5
done
[[ $ready -eq 1 ]] || fail "jobgate dev did not answer $base/readyz within 60s"
[[ -s $data_dir/token ]] || fail "jobgate dev wrote no token to $data_dir/token"
# The token goes in a header file so that it does not show in ps.
printf 'Authorization: Bearer %s\n' "$(tr -d '[:space:]' <"$data_dir/token")" >"$data_dir/auth-header"

# 4. A 1-GPU host-process job.
# shellcheck disable=SC2016 # $CUDA_VISIBLE_DEVICES is for the job's shell.
job_spec='{
  "name": "gpu-check",
  "mode": "process",
  "command": ["sh", "-c", "nvidia-smi -L; echo CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES"],
  "resources": {"gpus": 1},
  "timeout_seconds": 120
}'
job=$(api POST /v1/jobs "$job_spec")
job_id=$(json_field id "$job")
[[ -n $job_id ]] || fail "POST /v1/jobs answered no job id: $job"
say "submitted job $job_id; waiting up to ${JOB_TIMEOUT}s for it to end"

deadline=$((SECONDS + JOB_TIMEOUT))
status=""
while :; do
  job=$(api GET "/v1/jobs/$job_id")
  status=$(json_field status "$job")
  case $status in
    succeeded | failed | canceled) break ;;
  esac
  kill -0 "$dev_pid" 2>/dev/null || fail "jobgate dev exited while job $job_id was $status"
  ((SECONDS < deadline)) ||
    fail "job $job_id is still $status after ${JOB_TIMEOUT}s (reason: $(json_field reason "$job"))"
  sleep 1
done

# 5. Its logs, and the verdict.
logs=$(api GET "/v1/jobs/$job_id/logs")
say "job $job_id ended $status; its logs:"
printf '%s\n' "$logs" | sed 's/^/  | /'

[[ $status == succeeded ]] ||
  fail "job $job_id ended $status (reason: $(json_field reason "$job"))"
grep -Eq '^GPU [0-9]+: ' <<<"$logs" || fail "nvidia-smi -L in the job listed no GPU"
cvd=$(sed -n 's/^CUDA_VISIBLE_DEVICES=//p' <<<"$logs" | tail -n 1)
[[ $cvd =~ ^[0-9]+$ ]] || fail "the job saw CUDA_VISIBLE_DEVICES=\"$cvd\"; want the index of one GPU"
[[ $indexes == *" $cvd "* ]] ||
  fail "the job got GPU $cvd, which is not among the worker's GPUs:$indexes"

# NVML's index (the worker's) and nvidia-smi's must name the same device.
uuid=$(grep -o "\"index\": *$cvd, *\"uuid\": *\"[^\"]*\"" <<<"$list_json" | head -n 1 | sed 's/^.*"uuid": *"\(.*\)"$/\1/' || true)
if [[ -n $uuid ]]; then
  grep -Eq "^GPU $cvd: .*$uuid" <<<"$logs" ||
    fail "GPU $cvd is $uuid to the worker, but nvidia-smi -L gives GPU $cvd another UUID"
  say "job $job_id ran on GPU $cvd ($uuid)"
else
  say "job $job_id ran on GPU $cvd (no UUID for it in the JSON list; UUID cross-check skipped)"
fi
passed=1
