//! The relay binary as a real process: killed with SIGKILL under load, stopped with SIGTERM
//! during deliveries.

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dr_sf_bridge::store::Store;
use dr_sf_bridge::store::sqlite::SqliteStore;
use serde_json::Value;
use tokio::process::{Child, Command};
use wiremock::ResponseTemplate;

use crate::helpers::*;
use crate::relay_helpers::*;
use crate::salesforce_standin::*;

pub struct RelayProcess {
    pub child: Child,
    pub address: String,
    log: std::path::PathBuf,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RelayProcess {
    pub async fn start(sf: &SalesforceStandIn, dir: &std::path::Path, port: u16, overrides: &[(&str, &str)]) -> Self {
        Self::start_logging(sf, dir, port, overrides, "info").await
    }

    /// [`start`](Self::start) with `RUST_LOG` set to `log_level`.
    pub async fn start_logging(
        sf: &SalesforceStandIn,
        dir: &std::path::Path,
        port: u16,
        overrides: &[(&str, &str)],
        log_level: &str,
    ) -> Self {
        Self::start_with(sf, dir, port, overrides, log_level, None).await
    }

    /// [`start_logging`](Self::start_logging), the process allowed `open_files` descriptors
    /// (`ulimit -n`, as a container sets it) when given.
    pub async fn start_with(
        sf: &SalesforceStandIn,
        dir: &std::path::Path,
        port: u16,
        overrides: &[(&str, &str)],
        log_level: &str,
        open_files: Option<u32>,
    ) -> Self {
        let listen = format!("127.0.0.1:{port}");
        let mut all: Vec<(&str, &str)> = vec![("relay.listen", listen.as_str())];
        all.extend_from_slice(overrides);
        let log = dir.join(format!(
            "relay-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let binary = env!("CARGO_BIN_EXE_dr-sf-bridge");
        let mut command = match open_files {
            None => Command::new(binary),
            Some(limit) => {
                let mut shell = Command::new("sh");
                shell.args(["-c", &format!("ulimit -n {limit} && exec \"$0\" \"$@\""), binary]);
                shell
            }
        };
        command
            .arg("relay")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_clear()
            .env("RUST_LOG", log_level)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true);
        for (key, value) in relay_overrides(sf, &dir.join("relay.db"), &all) {
            command.env(format!("DRSF__{}", key.to_ascii_uppercase().replace('.', "__")), value);
        }
        let child = command.spawn().expect("the relay binary starts");
        let relay = Self {
            child,
            address: format!("http://{listen}"),
            log,
        };
        let http = reqwest::Client::new();
        wait_until("the relay to answer /healthz", || async {
            http.get(format!("{}/healthz", relay.address))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await;
        relay
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// Sends SIGTERM and waits `within` for the process to exit; answers its exit status.
    pub async fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        let terminated = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(terminated.success());
        tokio::time::timeout(within, self.child.wait())
            .await
            .expect("exits in time after SIGTERM")
            .unwrap()
    }

    /// What `/metrics` answers now.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.address))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Posts an event once as DR would: signed, with the relay's Basic credentials.
pub async fn post_like_dr(http: &reqwest::Client, address: &str, body: Vec<u8>) -> reqwest::Result<reqwest::Response> {
    http.post(format!("{address}/webhooks/digitalriver"))
        .header("authorization", basic_header())
        .header("DigitalRiver-Signature", signed(&body))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
}

/// Posts an event as DR would, retrying until the relay acknowledges it; answers how many posts
/// that took.
pub async fn deliver_like_dr(http: &reqwest::Client, address: &str, body: Vec<u8>) -> usize {
    let mut posts = 0;
    loop {
        posts += 1;
        let sent = http
            .post(format!("{address}/webhooks/digitalriver"))
            .header("authorization", basic_header())
            .header("DigitalRiver-Signature", signed(&body))
            .header("content-type", "application/json")
            .body(body.clone())
            .timeout(Duration::from_secs(3))
            .send()
            .await;
        if sent.is_ok_and(|r| r.status().is_success()) {
            return posts;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn delivered_ids(requests: &[wiremock::Request]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for request in requests {
        let id = serde_json::from_slice::<Value>(&request.body).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        *counts.entry(id).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_event_survives_a_sigkill() {
    let sf = SalesforceStandIn::start().await;
    apex(ResponseTemplate::new(200).set_delay(Duration::from_millis(15)))
        .mount(&sf.server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let max_in_flight = 8;
    let max_in_flight_setting = max_in_flight.to_string();
    let overrides = [
        ("salesforce.max_in_flight", max_in_flight_setting.as_str()),
        ("salesforce.request_timeout_secs", "2"),
    ];
    let mut relay = RelayProcess::start(&sf, dir.path(), port, &overrides).await;

    // DR posts 400 events over 40 orders, 8 at a time, retrying each until acknowledged.
    let total = 400;
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let acked_ids = Arc::new(std::sync::Mutex::new(HashSet::new()));
    let http = reqwest::Client::new();
    let mut senders = tokio::task::JoinSet::new();
    for lane in 0..8 {
        let (http, address, acknowledged, acked_ids) = (
            http.clone(),
            relay.address.clone(),
            acknowledged.clone(),
            acked_ids.clone(),
        );
        senders.spawn(async move {
            for i in (lane..total).step_by(8) {
                let id = format!("crash-{i}");
                deliver_like_dr(
                    &http,
                    &address,
                    event("order.accepted", &id, &format!("order-{}", i % 40)),
                )
                .await;
                acked_ids.lock().unwrap().insert(id);
                acknowledged.fetch_add(1, Ordering::SeqCst);
            }
        });
    }

    wait_until("150 acknowledgements", || async {
        acknowledged.load(Ordering::SeqCst) >= 150
    })
    .await;
    relay.child.kill().await.expect("SIGKILL");
    let killed_at = acknowledged.load(Ordering::SeqCst);
    assert!(killed_at < total, "killed while DR was still posting");
    let delivered_before_restart = sf.apex_requests().await.len();

    let relay = RelayProcess::start(&sf, dir.path(), port, &overrides).await;
    while senders.join_next().await.is_some() {}
    let acked: HashSet<String> = acked_ids.lock().unwrap().clone();
    assert_eq!(acked.len(), total);

    wait_until("every acknowledged event to reach Salesforce", || async {
        let delivered = delivered_ids(&sf.apex_requests().await);
        acked.iter().all(|id| delivered.contains_key(id))
    })
    .await;
    let delivered = delivered_ids(&sf.apex_requests().await);
    let duplicates: Vec<_> = delivered.iter().filter(|(_, n)| **n > 1).collect();
    // At the kill, at most `max_in_flight` requests were in flight and as many answered
    // deliveries waited for their outcomes to be recorded.
    assert!(
        duplicates.len() <= 2 * max_in_flight,
        "duplicates only for the deliveries unrecorded at the kill (2 × max_in_flight = 16): {duplicates:?}"
    );
    assert!(delivered.keys().all(|id| acked.contains(id)));
    assert!(delivered_before_restart > 0, "the kill happened during deliveries");
    for secret in SECRETS {
        assert!(!relay.logs().contains(secret));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_deliveries_finish_and_keeps_the_rest() {
    let sf = SalesforceStandIn::start().await;
    apex(ResponseTemplate::new(200).set_delay(Duration::from_millis(1500)))
        .mount(&sf.server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let overrides = [("salesforce.max_in_flight", "2"), ("relay.shutdown_timeout_secs", "10")];
    let mut relay = RelayProcess::start(&sf, dir.path(), port, &overrides).await;
    let http = reqwest::Client::new();
    for i in 0..5 {
        deliver_like_dr(
            &http,
            &relay.address,
            event("order.accepted", &format!("term-{i}"), &format!("o-term-{i}")),
        )
        .await;
    }
    wait_until("two deliveries in flight", || async {
        sf.apex_requests().await.len() == 2
    })
    .await;

    let status = relay.terminate(Duration::from_secs(10)).await;
    assert!(status.success(), "exit status {status:?}\n{}", relay.logs());
    assert!(
        relay.logs().contains("finishing in-flight deliveries"),
        "{}",
        relay.logs()
    );

    {
        let store = SqliteStore::open(&dir.path().join("relay.db")).unwrap();
        let stats = store.stats().await.unwrap();
        assert_eq!(
            (stats.delivered, stats.pending),
            (2, 3),
            "the two in flight finished; three wait"
        );
    }
    assert_eq!(sf.apex_requests().await.len(), 2);

    let _relay = RelayProcess::start(&sf, dir.path(), port, &overrides).await;
    wait_until("the three others after the restart", || async {
        sf.apex_requests().await.len() == 5
    })
    .await;
    let delivered = delivered_ids(&sf.apex_requests().await);
    assert_eq!(delivered.len(), 5);
    assert!(
        delivered.values().all(|n| *n == 1),
        "nothing delivered twice: {delivered:?}"
    );
}

#[tokio::test]
async fn sigterm_with_a_slower_salesforce_names_the_cut_deliveries_and_sends_them_again() {
    let sf = SalesforceStandIn::start().await;
    let slow = apex(ResponseTemplate::new(200).set_delay(Duration::from_secs(20)))
        .mount_as_scoped(&sf.server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let overrides = [("salesforce.max_in_flight", "1"), ("relay.shutdown_timeout_secs", "1")];
    let mut relay = RelayProcess::start(&sf, dir.path(), port, &overrides).await;
    let http = reqwest::Client::new();
    deliver_like_dr(&http, &relay.address, event("order.accepted", "cut-short", "o-cut")).await;
    wait_until("the delivery in flight", || async {
        sf.apex_requests().await.len() == 1
    })
    .await;

    let status = relay.terminate(Duration::from_secs(15)).await;
    assert!(status.success(), "{}", relay.logs());
    let logs = relay.logs();
    assert!(
        logs.contains("cut short") && logs.contains("cut-short") && logs.contains("at least once"),
        "{logs}"
    );
    // On SQLite the leases are the relay's memory: nothing of this one is left in the file (on
    // PostgreSQL the release is checked by `a_delivery_cut_short_at_shutdown_gives_its_lease_back`).

    drop(slow);
    apex(ResponseTemplate::new(200)).mount(&sf.server).await;
    let _relay = RelayProcess::start(&sf, dir.path(), port, &overrides).await;
    wait_until("sent again at once after the restart", || async {
        sf.apex_requests().await.len() == 2
    })
    .await;
}
