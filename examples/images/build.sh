#!/usr/bin/env bash
# Builds, offline, the images the recipe's manifests name (examples/recipe/), for
# `joblet run --runtime podman`: imagetools:v1, db-tools:v1 and task:v1, each a small
# script on a busybox base made from Debian's busybox-static (apt-get install
# busybox-static podman). Run as root; images already built are kept.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
base=localhost/joblet-examples/busybox:1
if ! podman image exists "$base"; then
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root/rootfs/bin"
  for dir in etc proc sys dev tmp; do mkdir -p "$root/rootfs/$dir"; done
  cp /bin/busybox "$root/rootfs/bin/busybox"
  for tool in $("$root/rootfs/bin/busybox" --list); do
    [ "$tool" = busybox ] || ln -s busybox "$root/rootfs/bin/$tool"
  done
  tar -C "$root/rootfs" -cf "$root/rootfs.tar" .
  podman import --quiet --change 'ENV PATH=/bin' --change 'CMD ["sh"]' \
    "$root/rootfs.tar" "$base" >/dev/null
fi
for image in imagetools db-tools task; do
  if ! podman image exists "localhost/$image:v1"; then
    podman build --quiet --pull=never --tag "localhost/$image:v1" "$here/$image" >/dev/null
    echo "images: built $image:v1"
  fi
done
