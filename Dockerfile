# redtail as a container sidecar. Node 26 is the Active LTS line (since 2026-10-28); Debian 13 is its default base.
FROM node:26-trixie-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY sinks ./sinks
RUN npx tsc -p tsconfig.build.json && npm prune --omit=dev

FROM node:26-trixie-slim
ENV NODE_ENV=production \
    REDTAIL_CHECKPOINT=/var/lib/redtail/redtail.checkpoint.json \
    REDTAIL_HTTP=0.0.0.0:9121
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY config ./config
# The image's own unprivileged `node` user owns only the checkpoint volume.
RUN mkdir -p /var/lib/redtail /etc/redtail && chown node:node /var/lib/redtail
USER node
VOLUME ["/var/lib/redtail"]
# /metrics, /healthz and /readyz (docs/metrics.md).
EXPOSE 9121
# Configure with REDTAIL_MASTER, REDTAIL_SINKS, REDTAIL_LOG_LEVEL, or a mounted file named by REDTAIL_CONFIG
# (e.g. -v ./redtail.json:/etc/redtail/redtail.json -e REDTAIL_CONFIG=/etc/redtail/redtail.json); flags after the
# image name are passed to `redtail run`.
ENTRYPOINT ["node", "bin/redtail.js", "run"]
