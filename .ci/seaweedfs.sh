#!/usr/bin/env bash
# Builds SeaweedFS's weed (its S3 gateway, master, volume and filer in one
# binary) from the tools module tools/seaweedfs, whose go.mod pins it apart
# from jobgate's own dependencies, into the test cache folder outside the
# clone, once: a binary already there is reused. The S3 test harness
# (internal/testenv/s3.go) runs the same build when the binary is missing;
# CI runs this first so the build is not counted against a test's timeout.
# Prints the binary's path.
set -euo pipefail
cd "$(dirname "$0")/.."
version=v0.0.0-20261109003541-7506e5f91cd6
cache="${JOBGATE_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/jobgate-test}"
bin="$cache/weed-$version"
if [ ! -x "$bin" ]; then
  mkdir -p "$cache"
  echo "building weed $version into $bin (once; takes minutes)" >&2
  start=$(date +%s)
  (cd tools/seaweedfs && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$bin.tmp.$$" github.com/seaweedfs/seaweedfs/weed)
  mv "$bin.tmp.$$" "$bin"
  echo "built weed in $(( $(date +%s) - start ))s, $(du -h "$bin" | cut -f1)" >&2
fi
echo "$bin"
