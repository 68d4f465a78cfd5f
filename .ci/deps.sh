#!/usr/bin/env bash
# Installs what jobgate's integration tests need: redis-server, podman and runc,
# and for the README test (cmd/jobgate TestReadmeShellBlocks, which runs the
# README's shell blocks) curl, jq, openssl and ip/unshare/nsenter; for the metrics
# tests Prometheus (prometheus, promtool), for the compose test podman-compose,
# for the Sentinel and Cluster harnesses redis-sentinel and redis-cli, and for the
# portal's browser tests Debian's chromium, and for the npm mlflow client's test
# node and npm.
# On Debian as root it installs them; elsewhere it says exactly what is missing.
set -euo pipefail
missing=()
for bin in redis-server redis-sentinel redis-cli podman runc curl jq openssl ip unshare nsenter prometheus promtool podman-compose chromium node npm; do
  command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
done
[ ${#missing[@]} -eq 0 ] && exit 0
pkgs=()
for bin in "${missing[@]}"; do
  case "$bin" in
    redis-server) pkgs+=(redis-server) ;;
    redis-cli) pkgs+=(redis-tools) ;;
    ip) pkgs+=(iproute2) ;;
    node) pkgs+=(nodejs) ;;
    promtool) pkgs+=(prometheus) ;;
    unshare | nsenter) pkgs+=(util-linux) ;;
    *) pkgs+=("$bin") ;;
  esac
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${pkgs[*]} with apt-get" >&2
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}"
else
  echo "missing: ${missing[*]}; install them, e.g. sudo apt-get install -y ${pkgs[*]}" >&2
  exit 1
fi
