# syntax=docker/dockerfile:1
# hearsay in a container: docs/deploy.md explains the volume, the ports and the API token.

# Build: compile TypeScript, then keep the production dependencies only.
FROM node:22-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: the image has Node 22 already, so the pinned `node` package need not download one.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# The same steps as `npm run build`: compile, then the daemon as one bundle that `hearsay up` loads.
RUN npx tsc -p tsconfig.build.json \
 && npx rolldown dist/daemon/daemon.js --platform node --format esm --minify --keepNames --charset ascii --sourcemap --logLevel warn --file dist/daemon/daemon.bundle.js \
 && npm prune --omit=dev --ignore-scripts

# Run: no compiler, no dev dependencies, not root.
FROM node:22-bookworm-slim
ENV NODE_ENV=production \
    HEARSAY_HOME=/data \
    HEARSAY_API_HOST=0.0.0.0 \
    HEARSAY_API_PORT=7600 \
    HEARSAY_LISTEN=/ip4/0.0.0.0/tcp/7601 \
    HEARSAY_MDNS=false \
    HEARSAY_LOG_FORMAT=json
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
# The dashboard's page and styles are served from the source tree, beside dist/.
COPY --from=build /src/src/daemon/dashboard ./src/daemon/dashboard
COPY bin ./bin
# The data dir belongs to the unprivileged `node` user of the base image, owner-only (it holds keys).
RUN ln -s /app/bin/hearsay.cjs /usr/local/bin/hearsay \
    && mkdir -p /data && chown node:node /data && chmod 700 /data
USER node
VOLUME ["/data"]
# 7600: the HTTP API (bound to 0.0.0.0 in here, so every request but /healthz needs the bearer token
# in /data/api.token); 7601: libp2p, for other peers.
EXPOSE 7600 7601
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:7600/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["hearsay"]
CMD ["up"]
