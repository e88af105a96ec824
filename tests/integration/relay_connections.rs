//! The relay's door under misuse: slow, idle, oversized and too many connections, and guessing.
//! Every test talks raw TCP or HTTP to the real server on loopback.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;
use crate::relay_helpers::*;
use crate::salesforce_standin::*;

/// An org with the DR package installed: every delivery gets 200.
async fn accepting_org() -> SalesforceStandIn {
    let sf = SalesforceStandIn::start().await;
    apex(wiremock::ResponseTemplate::new(200)).mount(&sf.server).await;
    sf
}

async fn connect(relay: &TestRelay) -> TcpStream {
    TcpStream::connect(relay.address.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Everything the server sends until it closes the connection; fails the test after `within`.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> String {
    let mut answer = Vec::new();
    tokio::time::timeout(within, async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await
    .expect("the relay closed the connection in time");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_header_timeout() {
    let relay = spawn_app_with(accepting_org().await, &[("relay.header_timeout_secs", "1")]).await;
    let mut idle = connect(&relay).await;
    let said = read_until_closed(&mut idle, Duration::from_secs(10)).await;
    assert!(!said.contains("HTTP/1.1 2"), "{said}");
}

#[tokio::test]
async fn a_request_head_sent_too_slowly_is_cut_off() {
    let relay = spawn_app_with(accepting_org().await, &[("relay.header_timeout_secs", "1")]).await;
    let mut slow = connect(&relay).await;
    slow.write_all(b"POST /webhooks/digitalriver HTTP/1.1\r\nhost: relay\r\n")
        .await
        .unwrap();
    // ...and never the rest of the head.
    read_until_closed(&mut slow, Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_body_sent_too_slowly_gets_408() {
    let relay = spawn_app_with(accepting_org().await, &[("relay.request_timeout_secs", "1")]).await;
    let mut slow = connect(&relay).await;
    let head = format!(
        "POST /webhooks/digitalriver HTTP/1.1\r\nhost: relay\r\nauthorization: {}\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{{\"id\":",
        basic_header()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let said = read_until_closed(&mut slow, Duration::from_secs(10)).await;
    assert!(said.starts_with("HTTP/1.1 408"), "{said}");
}

#[tokio::test]
async fn an_oversized_request_head_gets_431() {
    let relay = spawn_app().await;
    let response = relay
        .http
        .post(format!("{}/webhooks/digitalriver", relay.address))
        .header("x-padding", "a".repeat(200 * 1024))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 431);
    relay.accept(&event("order.accepted", "evt-after-431", "o-1")).await;
}

#[tokio::test]
async fn past_the_connection_cap_a_request_gets_a_fast_503_and_healthz_still_answers() {
    let relay = spawn_app_with(accepting_org().await, &[("relay.max_connections", "3")]).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        // A request whose body never finishes: the connection is busy, not idle.
        let mut busy = connect(&relay).await;
        let head = format!(
            "POST /webhooks/digitalriver HTTP/1.1\r\nhost: relay\r\nauthorization: {}\r\n\
             content-length: 100\r\nexpect: 100-continue\r\n\r\n",
            basic_header()
        );
        busy.write_all(head.as_bytes()).await.unwrap();
        // `100 Continue` comes when the handler reads the body: the request is in progress.
        let mut interim = [0u8; 25];
        busy.read_exact(&mut interim).await.unwrap();
        assert!(
            interim.starts_with(b"HTTP/1.1 100 Continue"),
            "{}",
            String::from_utf8_lossy(&interim)
        );
        busy.write_all(b"{").await.unwrap();
        held.push(busy);
    }
    // The three busy connections hold every slot once the relay has accepted them.
    wait_until("the cap is reached", || async {
        let mut probe = connect(&relay).await;
        probe
            .write_all(b"GET /metrics HTTP/1.1\r\nhost: relay\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        read_until_closed(&mut probe, Duration::from_secs(5))
            .await
            .starts_with("HTTP/1.1 503")
    })
    .await;

    let mut refused = connect(&relay).await;
    refused
        .write_all(b"POST /webhooks/digitalriver HTTP/1.1\r\nhost: relay\r\ncontent-length: 2\r\n\r\n{}")
        .await
        .unwrap();
    let said = read_until_closed(&mut refused, Duration::from_secs(5)).await;
    assert!(said.starts_with("HTTP/1.1 503"), "{said}");
    assert!(
        said.contains("too_many_connections") && said.to_ascii_lowercase().contains("retry-after"),
        "{said}"
    );

    let mut health = connect(&relay).await;
    health
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: relay\r\n\r\n")
        .await
        .unwrap();
    let said = read_until_closed(&mut health, Duration::from_secs(5)).await;
    assert!(said.starts_with("HTTP/1.1 200"), "{said}");

    drop(held);
    wait_until("slots are free again", || async {
        relay
            .post_event(&event("order.accepted", "evt-after-cap", "o-1"))
            .await
            .status()
            == 202
    })
    .await;
}

#[tokio::test]
async fn at_the_cap_the_connection_idle_longest_makes_room_for_a_new_one() {
    let relay = spawn_app_with(accepting_org().await, &[("relay.max_connections", "3")]).await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(connect(&relay).await);
    }
    // However many idle sockets are held, DR's POST gets in.
    for n in 0..3 {
        let answer = relay
            .post_event(&event("order.accepted", &format!("evt-idle-{n}"), "o-1"))
            .await;
        assert_eq!(answer.status(), 202);
        idle.push(connect(&relay).await);
    }
    let mut closed = 0;
    for socket in &mut idle {
        let mut byte = [0u8; 1];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(100), socket.read(&mut byte)).await {
            closed += 1;
        }
    }
    assert!(closed >= 3, "idle connections were closed to make room: {closed}");
}

fn wrong_basic() -> String {
    format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{BASIC_USER}:guess")
        )
    )
}

#[tokio::test]
async fn repeated_failed_authentications_from_one_address_get_429_and_others_still_pass() {
    let relay = spawn_app_with(accepting_org().await, &[("relay.max_auth_failures_per_minute", "5")]).await;
    let body = event("order.accepted", "evt-guess", "o-1");
    for _ in 0..5 {
        assert_eq!(
            relay
                .post_raw(&body, Some(&signed(&body)), Some(&wrong_basic()))
                .await
                .status(),
            401
        );
    }
    let blocked = relay.post_raw(&body, Some(&signed(&body)), Some(&basic_header())).await;
    assert_eq!(
        blocked.status(),
        429,
        "even the right password waits: the address is blocked"
    );
    assert!(blocked.headers().contains_key("retry-after"));

    // Digital River, at another address, is not affected.
    let dr = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let response = dr
        .post(format!("{}/webhooks/digitalriver", relay.address))
        .header("content-type", "application/json")
        .header("authorization", basic_header())
        .header("DigitalRiver-Signature", signed(&body))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert!(relay.metrics().await.contains("reason=\"throttled\""));
}

#[tokio::test]
async fn the_token_endpoint_and_the_admin_api_are_throttled_too() {
    let relay = spawn_app_with(
        accepting_org().await,
        &[
            ("relay.max_auth_failures_per_minute", "3"),
            ("relay.admin_token", "admin-token-0123456789-abcdefgh"),
        ],
    )
    .await;
    let token = |secret: &'static str| {
        relay
            .http
            .post(format!("{}/oauth2/token", relay.address))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", INBOUND_CLIENT_ID),
                ("client_secret", secret),
            ])
            .send()
    };
    for _ in 0..3 {
        assert_eq!(token("wrong-secret").await.unwrap().status(), 401);
    }
    assert_eq!(token(RELAY_SECRET).await.unwrap().status(), 429);
    let admin = relay
        .http
        .get(format!("{}/admin/events", relay.address))
        .bearer_auth("admin-token-0123456789-abcdefgh")
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 429, "one address, one count");
}

/// A container's `ulimit -n` below `relay.max_connections`: the relay caps its connections under
/// the limit (and says so), and at the cap closes an idle one for each new one — so 300 idle
/// sockets under a 256-descriptor limit cannot keep DR's POST out.
#[tokio::test]
async fn a_flood_of_idle_connections_under_a_descriptor_limit_cannot_keep_dr_out() {
    use crate::relay_process::{RelayProcess, free_port};
    let sf = accepting_org().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let overrides = [("relay.header_timeout_secs", "120")];
    let relay = RelayProcess::start_with(&sf, dir.path(), port, &overrides, "info", Some(256)).await;
    let address = format!("127.0.0.1:{port}");
    let mut flood = Vec::new();
    for _ in 0..300 {
        if let Ok(socket) = TcpStream::connect(&address).await {
            flood.push(socket);
        }
    }
    let http = reqwest::Client::new();
    let body = event("order.accepted", "evt-through-the-flood", "o-flood");
    let answer = tokio::time::timeout(
        Duration::from_secs(20),
        crate::relay_process::post_like_dr(&http, &relay.address, body),
    )
    .await
    .expect("DR's POST is answered")
    .unwrap();
    assert_eq!(answer.status(), 202);
    let logs = relay.logs();
    assert!(logs.contains("connections capped at"), "{logs}");
    assert!(!logs.contains("Too many open files"), "{logs}");
    drop(flood);
}
