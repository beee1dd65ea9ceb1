#!/usr/bin/env bash
# Makes the container images the tests of the container runtimes use, offline (no registry
# is reachable in CI): a root filesystem of Debian's busybox-static, imported with an
# ENTRYPOINT, a CMD, a WORKDIR and ENV as `localhost/joblet-test/entry:1` into podman and
# into docker; and in docker `localhost/joblet-test/layered:1`, built FROM it in layers that
# add a file and a user and delete a file, with `USER app`.
set -euo pipefail
image=localhost/joblet-test/entry:1
layered=localhost/joblet-test/layered:1
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/rootfs/bin"
for dir in etc proc sys dev tmp work; do mkdir -p "$root/rootfs/$dir"; done
cp /bin/busybox "$root/rootfs/bin/busybox"
for tool in sh echo cat sleep test ls env pwd true head; do
  ln -s busybox "$root/rootfs/bin/$tool"
done
tar -C "$root/rootfs" -cf "$root/rootfs.tar" .
changes=(--change 'ENTRYPOINT ["/bin/sh", "-c"]' --change 'CMD ["echo from the image"]'
  --change 'WORKDIR /work' --change 'ENV PATH=/bin' --change 'ENV MODE=image')
if ! podman image exists "$image"; then
  podman import --quiet "${changes[@]}" "$root/rootfs.tar" "$image" >/dev/null
  echo "test-images: made $image in podman"
fi
if ! docker image inspect "$image" >/dev/null 2>&1; then
  docker import "${changes[@]}" "$root/rootfs.tar" "$image" >/dev/null
  echo "test-images: made $image in docker"
fi
if ! docker image inspect "$layered" >/dev/null 2>&1; then
  mkdir "$root/context"
  cat > "$root/context/Dockerfile" <<DOCKERFILE
FROM $image
RUN echo layered > /work/layer.txt && echo "app:x:1000:1000::/work:/bin/sh" >> /etc/passwd
RUN rm /bin/head
USER app
DOCKERFILE
  # The classic builder: it needs nothing but the daemon.
  DOCKER_BUILDKIT=0 docker build --quiet --tag "$layered" "$root/context" >/dev/null 2>&1 ||
    DOCKER_BUILDKIT=0 docker build --tag "$layered" "$root/context"
  echo "test-images: made $layered in docker"
fi
