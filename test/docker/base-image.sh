#!/usr/bin/env bash
# Builds the base image node:20-bookworm-slim on a machine whose Docker engine cannot pull from an
# image registry: a minimal Debian bookworm root file system (debootstrap, from the machine's own
# Debian mirror), this machine's Node.js and npm, a `node` user (uid 1000) and the machine's CA
# bundle, imported as an image. Idempotent: an image already there is kept, and the root file system
# is cached in ROOTFS between runs. Needs root, /usr/bin/docker with dockerd running, and debootstrap
# (test/docker/prepare.sh sees to all three).
#   test/docker/base-image.sh
#   TAG=node:20-bookworm-slim ROOTFS=/var/tmp/loyalty-bookworm-rootfs test/docker/base-image.sh
set -euo pipefail
TAG=${TAG:-node:20-bookworm-slim}
ROOTFS=${ROOTFS:-/var/tmp/loyalty-bookworm-rootfs}
DOCKER=/usr/bin/docker

if "$DOCKER" image inspect "$TAG" >/dev/null 2>&1; then
  echo "$TAG is already there" >&2
  exit 0
fi

# The mirror apt uses here (deb822 sources first, then the one-line format).
mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
if [[ -z $mirror ]]; then
  mirror=$(awk '/^deb / { print $2; exit }' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
fi
[[ -n $mirror ]] || {
  echo "no Debian mirror found in /etc/apt/sources.list*" >&2
  exit 1
}

if [[ ! -x $ROOTFS/bin/sh ]]; then
  rm -rf "$ROOTFS"
  echo "debootstrap bookworm from $mirror into $ROOTFS (log: /var/log/loyalty-debootstrap.log)" >&2
  debootstrap --variant=minbase bookworm "$ROOTFS" "$mirror" >/var/log/loyalty-debootstrap.log 2>&1 || {
    tail -n 5 /var/log/loyalty-debootstrap.log >&2
    rm -rf "$ROOTFS"
    exit 1
  }
fi

# TLS for npm inside the image: Debian's CA package when the mirror has it, and this machine's bundle.
cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
chroot "$ROOTFS" /bin/sh -c 'DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ca-certificates >/dev/null 2>&1' || true
mkdir -p "$ROOTFS/etc/ssl/certs"
cp /etc/ssl/certs/ca-certificates.crt "$ROOTFS/etc/ssl/certs/ca-certificates.crt"

# This machine's Node.js and npm, where the official image keeps them.
npm_root=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
install -D -m 755 "$(command -v node)" "$ROOTFS/usr/local/bin/node"
mkdir -p "$ROOTFS/usr/local/lib/node_modules"
rm -rf "$ROOTFS/usr/local/lib/node_modules/npm"
cp -a "$npm_root" "$ROOTFS/usr/local/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$ROOTFS/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$ROOTFS/usr/local/bin/npx"
chroot "$ROOTFS" /bin/sh -c \
  'id node >/dev/null 2>&1 || { groupadd -g 1000 node && useradd -u 1000 -g node -m -s /bin/sh node; }'

tar -C "$ROOTFS" -c . | "$DOCKER" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
  --change 'CMD ["node"]' - "$TAG" >/dev/null
echo "built $TAG with node $("$DOCKER" run --rm --network host "$TAG" node --version)" >&2
