# Stand-ins for the compose file's `postgres:16` and `redis:7-alpine` images, built from Debian's own
# packages on the local base image, for machines whose Docker engine cannot pull from an image
# registry (the stack test, test/docker/stack.test.ts). Not for production: use the official images.
#   DOCKER_BUILDKIT=1 docker build --network host --target postgres -t loyalty-standin-postgres:15 \
#     -f test/docker/standins.Dockerfile test/docker
#   ... --target redis -t loyalty-standin-redis:7 ...
# PostgreSQL is 15 (bookworm's), not 16: the application supports both.

ARG BASE_IMAGE=node:20-bookworm-slim

FROM ${BASE_IMAGE} AS postgres
RUN apt-get update -qq \
  && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null \
  && rm -rf /var/lib/apt/lists/*
# Like the official image: the server and its clients on PATH, data in /var/lib/postgresql/data, the
# database and user made on the first start from POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB.
# PGPORT picks the port of the server and of pg_isready/psql/pg_dump alike (default 5432).
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENTRYPOINT ["docker-entrypoint.sh"]
STOPSIGNAL SIGINT
CMD ["postgres"]

FROM ${BASE_IMAGE} AS redis
RUN apt-get update -qq \
  && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null \
  && rm -rf /var/lib/apt/lists/*
CMD ["redis-server", "--save", "", "--appendonly", "no"]
