//! The relay (or the no-op server) as a child process of its own, as it runs in production: its
//! CPU and memory are its own, and `VmHWM` is its peak resident memory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const BASIC_USER: &str = "dr";
pub const BASIC_PASSWORD: &str = "bench-basic-password";
pub const SIGNING_SECRET: &str = "whsec_bench";

/// Which relay binary the scenarios start: this commit's, or `DRSF_BENCH_BASELINE`'s.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Side {
    New,
    Old,
}

impl Side {
    pub fn label(self) -> &'static str {
        match self {
            Side::New => "new",
            Side::Old => "old",
        }
    }
}

/// The binary the next relay starts from; the old one only while an A/B run measures it.
static RELAY_BINARY: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Starts the relays of the scenarios that follow from `binary` (`None`: this commit's).
pub fn use_relay_binary(binary: Option<PathBuf>) {
    *RELAY_BINARY.lock().unwrap() = binary;
}

/// This commit's relay, or `DRSF_BENCH_NEW`'s binary in its place (an A/A check with two copies of
/// one build, each from a directory of its own).
fn relay_binary() -> PathBuf {
    RELAY_BINARY.lock().unwrap().clone().unwrap_or_else(|| {
        std::env::var_os("DRSF_BENCH_NEW").map_or_else(|| env!("CARGO_BIN_EXE_dr-sf-bridge").into(), PathBuf::from)
    })
}

pub struct Process {
    child: Child,
    pub port: u16,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `url` answers 200.
async fn wait_ready(url: &str) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(response) = http.get(url).send().await
            && response.status().is_success()
        {
            return;
        }
        assert!(Instant::now() < deadline, "{url} did not come up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Process {
    /// The relay binary with its store at `storage_url`, delivering to the org at `org_url`.
    pub async fn relay(dir: &Path, storage_url: &str, org_url: &str, extra: &[(&str, String)]) -> Self {
        let port = free_port();
        let mut command = Command::new(relay_binary());
        command
            .args(["--log-format", "json", "relay"])
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DRSF__RELAY__LISTEN", format!("127.0.0.1:{port}"))
            .env("DRSF__STORAGE__URL", storage_url)
            .env("DRSF__SALESFORCE__MY_DOMAIN_URL", org_url)
            .env(
                "DRSF__SALESFORCE__TOKEN_URL",
                format!("{org_url}/services/oauth2/token"),
            )
            .env("DRSF__SALESFORCE__CLIENT_ID", "bench")
            .env("DRSF__SALESFORCE__CLIENT_SECRET", "bench-secret")
            .env("DRSF__SALESFORCE__USERNAME", "bench@example.com")
            .env("DRSF__SALESFORCE__PASSWORD", "bench-password")
            .env("DRSF__RELAY__BASIC_USERNAME", BASIC_USER)
            .env("DRSF__RELAY__BASIC_PASSWORD", BASIC_PASSWORD)
            .env("DRSF__DIGITAL_RIVER__SIGNING_SECRETS", SIGNING_SECRET)
            .env("DRSF__DELIVERY__BREAKER_COOLDOWN_SECS", "1")
            .env("DRSF__DELIVERY__RETRY_SCHEDULE", "0s,1s,2s,5s,10s,30s,1m,5m,30m,2h")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // An experiment's own settings for every relay (`DRSF_BENCH_RELAY__SALESFORCE__MAX_IN_FLIGHT=128`
        // sets `DRSF__SALESFORCE__MAX_IN_FLIGHT`); a scenario's own settings still win.
        for (key, value) in std::env::vars() {
            if let Some(setting) = key.strip_prefix("DRSF_BENCH_RELAY__") {
                command.env(format!("DRSF__{setting}"), value);
            }
        }
        // The relay's log level for an experiment (`DRSF_BENCH_RELAY_LOG=warn`: what the line per
        // delivery costs); info, as in production, unless set.
        if let Ok(level) = std::env::var("DRSF_BENCH_RELAY_LOG") {
            command.env("RUST_LOG", level);
        }
        for (key, value) in extra {
            command.env(key, value);
        }
        let child = command.spawn().expect("the relay binary starts");
        wait_ready(&format!("http://127.0.0.1:{port}/readyz")).await;
        Self { child, port }
    }

    /// This benchmark's own binary, serving the no-op handler.
    pub async fn noop() -> Self {
        let port = free_port();
        let child = Command::new(std::env::current_exe().unwrap())
            .env(super::NOOP_PORT_VAR, port.to_string())
            .stdout(Stdio::null())
            .spawn()
            .expect("the no-op server starts");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while http
            .post(format!("http://127.0.0.1:{port}/webhooks/digitalriver"))
            .send()
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "the no-op server did not come up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self { child, port }
    }

    /// The relay's metrics, as a scrape gets them (empty when it does not answer).
    pub async fn metrics(&self) -> String {
        let url = format!("http://127.0.0.1:{}/metrics", self.port);
        match reqwest::get(url).await {
            Ok(answer) => answer.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    pub fn webhook_url(&self) -> String {
        format!("http://127.0.0.1:{}/webhooks/digitalriver", self.port)
    }

    /// The CPU time the process has used so far, user and system, every thread: a scenario's cost
    /// apart from how long it took (busy cores still inflate it: BENCHMARKS.md).
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // After the command's closing parenthesis the fields start at the 3rd: utime is the 14th,
        // stime the 15th, in clock ticks.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or_else(Vec::new, |(_, rest)| rest.split_whitespace().collect());
        let ticks = |field: usize| {
            fields
                .get(field - 3)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        };
        (ticks(14) + ticks(15)) / clock_ticks_per_second()
    }

    /// The CPU time spent since `cpu_seconds()` read `since`, per event of `events`, in µs.
    pub fn cpu_us_per_event(&self, since: f64, events: usize) -> f64 {
        (self.cpu_seconds() - since) * 1e6 / events as f64
    }

    /// Peak resident memory so far (`VmHWM`), in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kib| kib / 1024.0)
    }
}

/// `sysconf(_SC_CLK_TCK)`, the unit of `/proc/<pid>/stat`'s times, as `getconf` tells it.
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
