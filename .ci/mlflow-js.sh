#!/usr/bin/env bash
# Installs the npm mlflow client that cmd/jobgate's TestMLflowJSClient runs
# (pinned in cmd/jobgate/testdata/mlflow-js/package-lock.json) into the test
# cache folder outside the clone, once per lock file: a folder already there
# is reused, so the test itself reaches no registry. make test runs this
# first; the test runs it too when the folder is missing. Prints the folder
# (NODE_PATH is its node_modules).
set -euo pipefail
cd "$(dirname "$0")/.."
src=cmd/jobgate/testdata/mlflow-js
cache="${JOBGATE_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/jobgate-test}"
lock=$(sha256sum "$src/package-lock.json" | cut -c1-12)
dir="$cache/mlflow-js-$lock"
if [ ! -f "$dir/.installed" ]; then
  command -v npm >/dev/null || { echo "npm is missing: apt-get install -y nodejs npm" >&2; exit 1; }
  echo "installing the npm mlflow client into $dir (once)" >&2
  rm -rf "$dir.tmp.$$" && mkdir -p "$dir.tmp.$$"
  cp "$src/package.json" "$src/package-lock.json" "$dir.tmp.$$/"
  (cd "$dir.tmp.$$" && npm ci --no-audit --no-fund --ignore-scripts >&2)
  touch "$dir.tmp.$$/.installed"
  rm -rf "$dir" && mv "$dir.tmp.$$" "$dir"
fi
echo "$dir"
