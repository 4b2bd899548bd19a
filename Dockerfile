# bridgetower-node: `bridgetower serve` on ONNX Runtime (docs/deploy.md).
#
#   docker build -t bridgetower-node .                                  # CPU (default)
#   docker build --build-arg VARIANT=cuda -t bridgetower-node:cuda .    # CUDA 12 + cuDNN 9, linux/amd64
#
#   docker run --rm -p 8080:8080 -v "$PWD/bundles:/bundles:ro" -v bridgetower-data:/data bridgetower-node
#   docker run --rm --gpus all -p 8080:8080 -v "$PWD/bundles:/bundles:ro" -v bridgetower-data:/data bridgetower-node:cuda
#
# ./bundles holds one folder per bundle (bundles/vqa/config.json, …); all of them are served (the
# demo bundle only when it is the only one).
#
# Needs BuildKit (the default builder since Docker Engine 23): it builds only the stages of the
# chosen VARIANT, so a CPU build never pulls the CUDA image.

ARG VARIANT=cpu
ARG NODE_IMAGE=node:20-bookworm-slim
# onnxruntime-node 1.30's CUDA execution provider is built for CUDA 12.x and cuDNN 9.x; any CUDA 12
# minor version works (minor-version compatibility), with an NVIDIA driver >= 525 on the host.
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04

# ---- the system each variant runs on, with Node 20 -------------------------------------------------
FROM ${NODE_IMAGE} AS node

FROM ${NODE_IMAGE} AS base-cpu

FROM ${CUDA_IMAGE} AS base-cuda
# The official Node 20 build (glibc >= 2.28) and its npm, taken from the node image: no extra
# package repository. Ubuntu 22.04 has glibc 2.35.
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && node --version && npm --version
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# ---- build: install, compile dist/, drop dev dependencies ------------------------------------------
# Built on the variant's own base so native modules (better-sqlite3, sharp, onnxruntime-node) match
# the glibc they run on.
FROM base-${VARIANT} AS build
ARG VARIANT
# The native AdamW engine (binding.gyp) always compiles here; better-sqlite3 only when it finds no
# prebuilt binary for this platform.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json .npmrc binding.gyp ./
COPY tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY cli ./cli
COPY client ./client
COPY common ./common
COPY bundle ./bundle
COPY convert ./convert
COPY preprocess ./preprocess
COPY models ./models
COPY runtime ./runtime
COPY library ./library
COPY server ./server
COPY train ./train
# The same install command as the README and CI: `npm ci` (its `install` script compiles the native
# AdamW addon into build/Release, its `prepare` script builds dist/). A failed compile only warns in
# npm ci; here the test -f below fails the build instead, so no image lacks the addon.
# package.json's `allowScripts` lets npm run the install scripts of better-sqlite3, sharp and
# esbuild and denies onnxruntime-node's, which downloads CUDA libraries from outside the npm
# registry (the CPU binaries ship inside the package). npm releases that predate `allowScripts`
# run every script, so ONNXRUNTIME_NODE_INSTALL=skip says the same to the script itself. The CUDA
# variant then runs that script on purpose with ONNXRUNTIME_NODE_INSTALL=cuda12
# (node_modules/onnxruntime-node/script/install.js), which fetches
# libonnxruntime_providers_{cuda,shared,tensorrt}.so of the same version from NuGet
# (Microsoft.ML.OnnxRuntime.Gpu.Linux). The test -f makes a failed download fail the build instead
# of yielding a CPU-only "cuda" image.
RUN ONNXRUNTIME_NODE_INSTALL=skip npm ci \
 && if [ "$VARIANT" = cuda ]; then \
      (cd node_modules/onnxruntime-node && ONNXRUNTIME_NODE_INSTALL=cuda12 node ./script/install) \
      && test -f node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so; \
    fi \
 && test -f build/Release/bridgetower_adamw.node \
 && npm prune --omit=dev

# ---- runtime ----------------------------------------------------------------------------------------
FROM base-${VARIANT} AS runtime
ENV NODE_ENV=production
COPY --from=build /app/package.json /app/package.json
COPY --from=build /app/node_modules /app/node_modules
COPY --from=build /app/dist /app/dist
# The native AdamW addon (fine-tune's default optimizer engine): the kernel is chosen at run time,
# so the image runs on any x86-64 (or arm64 for an arm64 build), whatever CPU built it.
COPY --from=build /app/build/Release/bridgetower_adamw.node /app/build/Release/bridgetower_adamw.node
COPY --from=build /app/bin /app/bin
# tsc does not copy HTML: server/demo/demo-page.ts finds the page here from dist/.
COPY --from=build /app/server/demo/index.html /app/server/demo/index.html
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home --shell /usr/sbin/nologin bridgetower \
 && chmod 0755 /app/bin/bridgetower.js /app/bin/convert-ckpt.js \
 && ln -s /app/bin/bridgetower.js /usr/local/bin/bridgetower \
 && ln -s /app/bin/convert-ckpt.js /usr/local/bin/convert-ckpt \
 && mkdir -p /bundles /data \
 && chown bridgetower:bridgetower /bundles /data
USER bridgetower
# From /, `serve`'s defaults are the two volumes: every bundle folder under ./bundles (/bundles/<name>/;
# with none, it builds the demo bundle into /bundles/demo), the gallery database in ./data (/data).
WORKDIR /
# /bundles: bundle folders (read-only is fine once it holds one). /data: the gallery, writable.
VOLUME ["/bundles", "/data"]
EXPOSE 8080
# Liveness only (the process answers); readiness (models loaded and warmed up) is /readyz. No curl
# in these images: Node's fetch does it. Keep the port in step with --port.
HEALTHCHECK --interval=15s --timeout=5s --start-period=300s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["bridgetower"]

FROM runtime AS runtime-cpu
CMD ["serve", "--host", "0.0.0.0", "--port", "8080", "--data-dir", "/data", "--device", "cpu"]

# --device cuda falls back to the CPU, with a warning, when no GPU is visible (docker run --gpus all).
FROM runtime AS runtime-cuda
CMD ["serve", "--host", "0.0.0.0", "--port", "8080", "--data-dir", "/data", "--device", "cuda"]

# The image `docker build` produces: the chosen variant.
FROM runtime-${VARIANT}
