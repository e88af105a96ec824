//! The relay's HTTP server: the accept loop with the limits that keep it answering.
//!
//! `axum::serve` would hold every connection as long as the client likes. Anyone who can reach
//! the port could then open slow or idle connections until the file descriptors run out — and
//! DR's posts, `/healthz` and the relay's own calls to Salesforce would fail with them. So the
//! relay runs its own loop over hyper: a cap on open connections, kept below the process's
//! descriptor limit ([`super::connections`]); at the cap the connection idle longest is closed to
//! admit the new one, and only when every connection is busy does a new one get a fast 503
//! (`GET /healthz` still answers); a deadline for each request head counted from
//! when the connection opens or its previous answer ends (slow and idle connections are closed),
//! a size limit on request heads (431), and a time limit on each request (408, in the router).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use super::connections;
use crate::settings::ConnectionLimits;

/// Connections over the cap that are answered at once; past this many, they are just closed.
const MAX_REFUSING: usize = 256;
/// How long an over-the-cap connection may take to send its request line.
const REFUSE_READ_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a new connection waits for the room an evicted idle one leaves.
const EVICTION_WAIT: Duration = Duration::from_millis(200);
/// How long open connections may finish their requests after a shutdown began.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` completes; then stops accepting and lets open
/// requests finish (for at most [`DRAIN_TIMEOUT`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let fd_limit = connections::descriptor_limit();
    let (cap, max_refusing) = connections::caps(limits.max_connections, fd_limit, MAX_REFUSING);
    if cap < limits.max_connections {
        tracing::warn!(
            cap,
            max_connections = limits.max_connections,
            descriptor_limit = fd_limit,
            "connections capped at {cap}: the process may open {} files (ulimit -n), fewer than relay.max_connections; \
             at the cap the connection idle longest is closed to admit a new one",
            fd_limit.unwrap_or_default()
        );
    }
    let open = connections::Registry::default();
    let permits = Arc::new(Semaphore::new(cap));
    let refusing = Arc::new(Semaphore::new(max_refusing));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(limits.max_header_bytes)
        .keep_alive(true);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or the like: wait a moment instead of spinning.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            // At the cap: an idle connection makes room (its permit comes back as its task ends).
            Err(_) if open.evict_idlest() => tokio::time::timeout(EVICTION_WAIT, permits.clone().acquire_owned())
                .await
                .ok()
                .and_then(Result::ok),
            Err(_) => None,
        };
        let Some(permit) = permit else {
            if let Ok(refuser) = refusing.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream).await;
                    drop(refuser);
                });
            }
            continue;
        };
        let (id, state) = open.opened();
        let (on_request, on_response, registry) = (state.clone(), state.clone(), open.clone());
        let service = router
            .clone()
            .map_request(move |request: hyper::Request<hyper::body::Incoming>| {
                on_request.busy();
                let mut request = request.map(axum::body::Body::new);
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            })
            .map_response(move |response| {
                on_response.idle(&registry);
                response
            });
        let connection = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        let registry = open.clone();
        let task = tokio::spawn(async move {
            // Held by the task: an evicted (aborted) connection gives its permit back too.
            let _permit = permit;
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            registry.closed(id);
        });
        state.serving(task.abort_handle());
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("open connections did not finish within the drain timeout; closing them");
    }
}

/// Answers a connection over the cap without handing it to the router: `GET /healthz` gets 200
/// (the process is alive), anything else 503 with `Retry-After`, and the socket is closed.
async fn refuse(mut stream: TcpStream) {
    let mut head = [0u8; 512];
    let read = tokio::time::timeout(REFUSE_READ_TIMEOUT, stream.read(&mut head))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0);
    let health = head[..read].starts_with(b"GET /healthz ");
    let (status, body) = if health {
        ("200 OK", r#"{"status":"ok"}"#)
    } else {
        (
            "503 Service Unavailable",
            r#"{"error":"too_many_connections","message":"the relay is at its connection limit; retry shortly"}"#,
        )
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(REFUSE_READ_TIMEOUT, async {
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
        // Read what the client still sends so that closing does not reset the connection before
        // the answer is read.
        let mut sink = [0u8; 1024];
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// The client address of a request: from `header` (its first address) when the relay sits behind
/// a proxy that sets it, else the connection's peer.
pub fn client_ip(request: &axum::http::request::Parts, header: Option<&str>) -> Option<std::net::IpAddr> {
    if let Some(name) = header {
        let forwarded = request
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|first| first.trim().parse().ok());
        if forwarded.is_some() {
            return forwarded;
        }
    }
    request
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip())
}
