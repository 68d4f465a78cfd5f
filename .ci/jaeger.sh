#!/usr/bin/env bash
# Builds Jaeger v1.76.0 (the OTel-collector-based cmd/jaeger) from the tools
# module tools/jaeger, whose go.mod pins it apart from jobgate's own
# dependencies, into the test cache folder outside the clone, once: a binary
# already there is reused. The Jaeger test harness (internal/testenv) runs the
# same build when the binary is missing; CI runs this first so the build is
# not counted against a test's timeout. Prints the binary's path.
set -euo pipefail
cd "$(dirname "$0")/.."
version=v1.76.0
cache="${JOBGATE_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/jobgate-test}"
bin="$cache/jaeger-$version"
if [ ! -x "$bin" ]; then
  mkdir -p "$cache"
  echo "building jaeger $version into $bin (once; takes minutes)" >&2
  start=$(date +%s)
  (cd tools/jaeger && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$bin.tmp.$$" github.com/jaegertracing/jaeger/cmd/jaeger)
  mv "$bin.tmp.$$" "$bin"
  echo "built jaeger in $(( $(date +%s) - start ))s, $(du -h "$bin" | cut -f1)" >&2
fi
echo "$bin"
