# Build: the whole workspace in a full Rust image.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY src ./src
COPY config ./config
RUN cargo build --release --locked --bin dr-sf-bridge \
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
ENTRYPOINT ["/usr/local/bin/dr-sf-bridge"]
CMD ["relay"]
