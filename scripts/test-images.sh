#!/usr/bin/env bash
# Makes the container images the tests of the podman runtime use, offline (no registry is
# reachable in CI): a root filesystem of Debian's busybox-static, imported into podman with
# an ENTRYPOINT, a CMD, a WORKDIR and ENV, as `localhost/joblet-test/entry:1`.
set -euo pipefail
image=localhost/joblet-test/entry:1
if podman image exists "$image"; then
  exit 0
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/rootfs/bin"
for dir in etc proc sys dev tmp work; do mkdir -p "$root/rootfs/$dir"; done
cp /bin/busybox "$root/rootfs/bin/busybox"
for tool in sh echo cat sleep test ls env pwd true head; do
  ln -s busybox "$root/rootfs/bin/$tool"
done
tar -C "$root/rootfs" -cf "$root/rootfs.tar" .
podman import --quiet \
  --change 'ENTRYPOINT ["/bin/sh", "-c"]' \
  --change 'CMD ["echo from the image"]' \
  --change 'WORKDIR /work' \
  --change 'ENV PATH=/bin' \
  --change 'ENV MODE=image' \
  "$root/rootfs.tar" "$image" >/dev/null
echo "test-images: made $image"
