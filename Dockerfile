# bridgetower-node image. The server (issue #5) completes it; today it runs the CLI.
#   docker build -t bridgetower-node .
#   docker run --rm -v "$PWD/models:/models" bridgetower-node convert /models/BridgeTower_ftfpt_base_vqav2.ckpt --out /models/vqa
ARG NODE_IMAGE=node:20-bookworm-slim
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
COPY tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY cli ./cli
COPY common ./common
COPY convert ./convert
COPY preprocess ./preprocess
COPY models ./models
COPY server ./server
COPY train ./train
# The same install command as the README and CI (it builds dist/ through `prepare`).
RUN npm ci && npm prune --omit=dev

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/bin ./bin
RUN ln -s /app/bin/bridgetower.js /usr/local/bin/bridgetower \
 && ln -s /app/bin/convert-ckpt.js /usr/local/bin/convert-ckpt \
 && mkdir -p /models && chown node:node /models
USER node
VOLUME /models
ENTRYPOINT ["bridgetower"]
CMD ["--help"]
