#!/usr/bin/env bash
# Gets this machine ready for the stack test (test/docker/stack.test.ts) and reuses whatever is
# already there: Debian's docker.io (dockerd, /usr/bin/docker 20.10), debootstrap and docker-compose
# installed with apt-get when missing (as root); dockerd started when it is not running; the base
# image node:20-bookworm-slim built from Debian packages when missing (test/docker/base-image.sh,
# or the script BASE_IMAGE_SCRIPT names); the stand-in images of the
# compose file's postgres and redis (standins.Dockerfile) built or refreshed from the build cache.
#   test/docker/prepare.sh           everything
#   test/docker/prepare.sh engine    the packages and dockerd only
# Exit status: 0 ready; 3 the Docker engine cannot run on this machine (the reason is the last line
# on stderr, and the stack test is skipped with it); anything else is a failure.
set -euo pipefail
DOCKER=/usr/bin/docker
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BASE_IMAGE=node:20-bookworm-slim
BASE_IMAGE_SCRIPT=${BASE_IMAGE_SCRIPT:-$HERE/base-image.sh}
STANDIN_POSTGRES=${STANDIN_POSTGRES:-loyalty-standin-postgres:15}
STANDIN_REDIS=${STANDIN_REDIS:-loyalty-standin-redis:7}

step() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
cannot() {
  echo "the Docker engine cannot run here: $*" >&2
  exit 3
}

missing=()
{ [[ -x $DOCKER ]] && command -v dockerd >/dev/null; } || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
# Debian's docker-compose itself: the test's test/docker/bin/docker-compose (first on its PATH) wraps it.
[[ -x /usr/bin/docker-compose ]] || missing+=(docker-compose)
if ((${#missing[@]})); then
  ((EUID == 0)) || cannot "${missing[*]} missing, and only root can install them"
  command -v apt-get >/dev/null || cannot "${missing[*]} missing, and there is no apt-get"
  step "apt-get install ${missing[*]}"
  apt-get update -qq >&2 || cannot 'apt-get update failed'
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
    cannot "apt-get install ${missing[*]} failed"
fi

if ! "$DOCKER" info >/dev/null 2>&1; then
  ((EUID == 0)) || cannot 'dockerd is not running, and only root can start it'
  step 'starting dockerd (log: /var/log/dockerd.log)'
  (setsid dockerd >>/var/log/dockerd.log 2>&1 &)
  for _ in $(seq 1 60); do
    "$DOCKER" info >/dev/null 2>&1 && break
    sleep 0.5
  done
  "$DOCKER" info >/dev/null 2>&1 ||
    cannot "dockerd did not start: $(tail -n 1 /var/log/dockerd.log 2>/dev/null || echo 'no log')"
fi

if [[ ${1:-} == engine ]]; then
  step 'engine ready'
  exit 0
fi

if ! "$DOCKER" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  [[ -f $BASE_IMAGE_SCRIPT ]] || {
    echo "$BASE_IMAGE is missing and $BASE_IMAGE_SCRIPT, which builds it, is not there" >&2
    exit 1
  }
  step "building $BASE_IMAGE ($BASE_IMAGE_SCRIPT)"
  bash "$BASE_IMAGE_SCRIPT" >&2
fi

for target in postgres redis; do
  tag=$STANDIN_POSTGRES
  [[ $target == redis ]] && tag=$STANDIN_REDIS
  step "building $tag"
  DOCKER_BUILDKIT=1 "$DOCKER" build -q --network host --build-arg "BASE_IMAGE=$BASE_IMAGE" --target "$target" \
    -t "$tag" -f "$HERE/standins.Dockerfile" "$HERE" >/dev/null
done
step 'ready'
