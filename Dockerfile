# execd in a container: one sandbox per container, execd as PID 1.
#
# Build:  docker build -t execd .
# Run:    docker run -d -p 7878:7878 \
#           -v "$PWD/token:/run/secrets/execd/token:ro" execd
# The token file holds the bearer token clients send; without it execd
# refuses to start (it listens on all interfaces, which needs a token).
# See docs/DEPLOY.md.

# --- build stage: the release binary -----------------------------------------
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# crates/policy's build script compiles a static shim: gcc and a static libc,
# both in the rust image.
RUN cargo build --release --locked -p execd \
    && strip target/release/execd \
    && install -m 0755 target/release/execd /usr/local/bin/execd

# --- runtime stage: a small Debian with the shells the agents' commands use ---
FROM debian:bookworm-slim
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends bash ca-certificates coreutils procps \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 --shell /bin/bash agent
COPY --from=build /usr/local/bin/execd /usr/local/bin/execd
USER 10001:10001
WORKDIR /home/agent
EXPOSE 7878 9090
# Exec form: execd is PID 1. `execd serve` keeps a supervisor in front of the
# server, which, as PID 1, reaps orphans and forwards SIGTERM/SIGINT, and
# ends every process the server started when it exits.
ENTRYPOINT ["/usr/local/bin/execd", "serve"]
CMD ["--listen", "ws://0.0.0.0:7878", \
     "--token-file", "/run/secrets/execd/token", \
     "--metrics-listen", "0.0.0.0:9090", \
     "--log-format", "json"]
