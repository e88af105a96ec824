# Build: the whole package in a full Rust image.
FROM rust:1-bookworm AS build
WORKDIR /src

# Dependencies first, in their own layer: it is rebuilt only when the manifest or the lock file
# changes. Stand-in sources let cargo build every dependency without the project's code.
COPY Cargo.toml Cargo.lock rustfmt.toml ./
RUN mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && echo 'fn main() {}' > benches/relay_load.rs \
 && cargo build --release --locked --bin dr-sf-bridge \
 && rm -rf src benches

# Everything the manifest names (the bench too: cargo refuses a manifest whose targets are missing).
COPY src ./src
COPY benches ./benches
COPY config ./config
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin dr-sf-bridge \
 && mkdir -p /out/data \
 && cp target/release/dr-sf-bridge /out/

# Run: a small image with only the binary, its config and a data folder, as a non-root user.
FROM gcr.io/distroless/cc-debian12:nonroot
WORKDIR /app
COPY --from=build /out/dr-sf-bridge /usr/local/bin/dr-sf-bridge
COPY --from=build /src/config /app/config
COPY --from=build --chown=nonroot:nonroot /out/data /app/data
USER nonroot
ENV DRSF__RELAY__LISTEN=0.0.0.0:8080 \
    DRSF__STORAGE__URL=sqlite:///app/data/dr-sf-bridge.db \
    DRSF_LOG_FORMAT=json
VOLUME ["/app/data"]
EXPOSE 8080
# The image has no curl: the binary checks /readyz itself.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/dr-sf-bridge", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/dr-sf-bridge"]
CMD ["relay"]
