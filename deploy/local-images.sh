#!/usr/bin/env bash
# Builds the images deploy/compose.local.yaml runs, offline (no registry),
# from binaries on this machine: each image is FROM scratch with the binary
# and the shared libraries ldd lists for it.
#
#   localhost/jobgate:local             jobgate, built here (cgo: glibc)
#   localhost/jobgate-redis:local       Debian's /usr/bin/redis-server
#   localhost/jobgate-prometheus:local  Debian's /usr/bin/prometheus
#   localhost/jobgate-jaeger:local      Jaeger's v2 binary (.ci/jaeger.sh, cached)
#
# Each image is also tagged with a hash of its files; when an image of that
# hash exists it is only tagged :local again, not rebuilt. Needs podman,
# go, redis-server and prometheus (Debian: apt-get install -y podman
# golang redis-server prometheus).
set -euo pipefail
cd "$(dirname "$0")/.."
out=bin/compose
mkdir -p "$out"
export CGO_CFLAGS="${CGO_CFLAGS:--Wno-deprecated-declarations}"
tags='remote exclude_graphdriver_btrfs btrfs_noversion exclude_graphdriver_devicemapper containers_image_openpgp'
go build -trimpath -tags "$tags" -o "$out/bin/jobgate" ./cmd/jobgate
jaeger=$(./.ci/jaeger.sh)

# image NAME BINARY: localhost/NAME:local, the BINARY at /usr/bin/<its name>.
image() {
  local name=$1 bin=$2 ctx lib
  ctx="$out/$name"
  rm -rf "$ctx"
  mkdir -p "$ctx/rootfs/usr/bin" "$ctx/rootfs/tmp"
  chmod 1777 "$ctx/rootfs/tmp"
  cp "$bin" "$ctx/rootfs/usr/bin/"
  # ldd: "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and
  # "/lib64/ld-linux-x86-64.so.2 (0x...)"; a static binary has none.
  for lib in $(ldd "$bin" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
    mkdir -p "$ctx/rootfs$(dirname "$lib")"
    cp -L "$lib" "$ctx/rootfs$lib"
  done
  printf 'FROM scratch\nCOPY rootfs/ /\nENTRYPOINT ["/usr/bin/%s"]\n' "$(basename "$bin")" >"$ctx/Containerfile"
  local hash
  hash=$(cd "$ctx" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
  if podman image exists "localhost/$name:$hash"; then
    podman tag "localhost/$name:$hash" "localhost/$name:local"
  else
    podman build -q -t "localhost/$name:$hash" -t "localhost/$name:local" "$ctx" >/dev/null
  fi
  echo "localhost/$name:local ($hash)"
}

image jobgate "$out/bin/jobgate"
image jobgate-redis "$(command -v redis-server)"
image jobgate-prometheus "$(command -v prometheus)"
image jobgate-jaeger "$jaeger"
