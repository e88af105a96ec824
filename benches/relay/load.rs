//! The load generator: DR's events (the fixtures, each with a fresh id), signed and authenticated
//! as DR sends them, posted closed-loop (as fast as N connections go; bodies and signatures made
//! before the clock starts) or open-loop (at a fixed rate, each latency counted from the send's
//! scheduled time so that a stall is not hidden).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;

use super::child::{BASIC_PASSWORD, BASIC_USER, SIGNING_SECRET};
use super::run::Run;

/// SplitMix64's finaliser, a bijection of `u64`: event `i`'s id is as unique as `i` and lands in the
/// id index where DR's random UUIDs do, not on its last page as a counter's would.
fn scatter(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A fixture cut at its placeholders, so that an event's body is written in one pass.
struct Template {
    pieces: Vec<Piece>,
    len: usize,
}

enum Piece {
    Text(String),
    Id,
    Order,
}

impl Template {
    fn cut(text: &str) -> Self {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(at) = rest.find('{') {
            let (piece, skip) = if rest[at..].starts_with("{ID}") {
                (Piece::Id, 4)
            } else if rest[at..].starts_with("{ORDER}") {
                (Piece::Order, 7)
            } else {
                pieces.push(Piece::Text(rest[..=at].to_owned()));
                rest = &rest[at + 1..];
                continue;
            };
            pieces.push(Piece::Text(rest[..at].to_owned()));
            pieces.push(piece);
            rest = &rest[at + skip..];
        }
        pieces.push(Piece::Text(rest.to_owned()));
        Self {
            pieces,
            len: text.len(),
        }
    }
}

/// The fixtures as templates: `{ID}` and `{ORDER}` replaced per event.
fn templates() -> Vec<Template> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/events");
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .expect("the fixtures")
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    names
        .iter()
        .map(|path| {
            let mut value: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            value["id"] = "{ID}".into();
            let object = &mut value["data"]["object"];
            if object.get("orderId").is_some() {
                object["orderId"] = "{ORDER}".into();
            } else {
                object["id"] = "{ORDER}".into();
            }
            Template::cut(&serde_json::to_string(&value).unwrap())
        })
        .collect()
}

/// One event's post as DR would send it — head (with its own signature) and body — as the bytes
/// that go on the wire, made before the clock starts.
#[derive(Clone)]
pub struct Prepared(bytes::Bytes);

/// The events of one closed-loop run: made up front (the generator's clock then measures only
/// the sending), or, for runs too large to hold, each as its lane takes it.
pub struct Requests {
    prefix: String,
    count: usize,
    orders: usize,
    ready: Vec<Prepared>,
}

/// Runs up to this many events are made before the clock starts (about 1.6 KB each).
const PREPARED_UP_TO: usize = 200_000;

/// Where the lean lanes connect and what they ask for.
struct Target {
    address: String,
    host: String,
    path: String,
}

/// One HTTP/1.1 connection of the closed loop, spoken by hand as a load tool does: each request
/// one write of bytes made in advance, each answer read to its end (its head, then the body its
/// `Content-Length` or chunks announce). A client library's tasks, channels and header maps per
/// request cost about as much as the no-op server's whole answer, and would cap what it can show.
struct Lane {
    stream: tokio::net::TcpStream,
    /// What was read and not yet consumed.
    read: Vec<u8>,
}

impl Lane {
    async fn open(target: &Target) -> Option<Self> {
        let stream = tokio::net::TcpStream::connect(&target.address).await.ok()?;
        stream.set_nodelay(true).ok()?;
        Some(Self {
            stream,
            read: Vec::with_capacity(4096),
        })
    }

    /// Sends one request and answers its status once the whole answer is read; `None` when the
    /// connection failed or the server closes it after this answer (the lane opens another).
    async fn exchange(&mut self, request: &[u8]) -> Option<(u16, bool)> {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(request).await.ok()?;
        let (status, head_len, body, close) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut answer = httparse::Response::new(&mut headers);
            match answer.parse(&self.read).ok()? {
                httparse::Status::Complete(head_len) => {
                    let header = |name: &str| {
                        answer
                            .headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case(name))
                            .map(|h| h.value)
                    };
                    let chunked = header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case(b"chunked"));
                    let length = header("content-length")
                        .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<usize>().ok());
                    let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case(b"close"));
                    let body = if chunked {
                        Body::Chunked
                    } else {
                        Body::Length(length.unwrap_or(0))
                    };
                    break (answer.code?, head_len, body, close);
                }
                httparse::Status::Partial => self.fill().await?,
            }
        };
        self.read.drain(..head_len);
        match body {
            Body::Length(length) => {
                while self.read.len() < length {
                    self.fill().await?;
                }
                self.read.drain(..length);
            }
            Body::Chunked => loop {
                match httparse::parse_chunk_size(&self.read).ok()? {
                    httparse::Status::Complete((at, 0)) => {
                        // The last chunk, then the empty line that ends the body (no trailers here).
                        while self.read.len() < at + 2 {
                            self.fill().await?;
                        }
                        self.read.drain(..at + 2);
                        break;
                    }
                    httparse::Status::Complete((at, size)) => {
                        let end = at + size as usize + 2;
                        while self.read.len() < end {
                            self.fill().await?;
                        }
                        self.read.drain(..end);
                    }
                    httparse::Status::Partial => self.fill().await?,
                }
            },
        }
        Some((status, close))
    }

    /// Reads what the socket has; `None` at its end or on an error.
    async fn fill(&mut self) -> Option<()> {
        use tokio::io::AsyncReadExt;
        self.read.reserve(4096);
        match self.stream.read_buf(&mut self.read).await {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(()),
        }
    }
}

/// How an answer's body is delimited.
enum Body {
    Length(usize),
    Chunked,
}

pub struct Load {
    http: reqwest::Client,
    url: String,
    target: Target,
    auth: String,
    templates: Vec<Template>,
    /// Posts not answered 2xx (refused, or no answer at all).
    pub errors: AtomicUsize,
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl Load {
    pub fn new(url: String) -> Arc<Self> {
        let parsed = url::Url::parse(&url).expect("a URL");
        let host = format!(
            "{}:{}",
            parsed.host_str().unwrap(),
            parsed.port_or_known_default().unwrap()
        );
        let target = Target {
            address: host.clone(),
            host,
            path: parsed.path().to_owned(),
        };
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{BASIC_USER}:{BASIC_PASSWORD}"))
        );
        Arc::new(Self {
            http: reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap(),
            url,
            target,
            auth,
            templates: templates(),
            errors: AtomicUsize::new(0),
        })
    }

    /// Event `i` of a run named `prefix`: a fixture of each type in turn, over `orders` orders.
    fn body(&self, prefix: &str, i: usize, orders: usize) -> Vec<u8> {
        use std::io::Write;
        let template = &self.templates[i % self.templates.len()];
        let mut body = Vec::with_capacity(template.len + 2 * prefix.len() + 48);
        for piece in &template.pieces {
            match piece {
                Piece::Text(text) => body.extend_from_slice(text.as_bytes()),
                Piece::Id => {
                    let (high, low) = (scatter(i as u64), scatter(!(i as u64)));
                    write!(
                        body,
                        "{prefix}-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                        high >> 32,
                        (high >> 16) & 0xffff,
                        high & 0xffff,
                        low >> 48,
                        low & 0xffff_ffff_ffff
                    )
                    .unwrap()
                }
                Piece::Order => write!(body, "{prefix}-o{}", i % orders.max(1)).unwrap(),
            }
        }
        body
    }

    /// Event `i`'s request, as the bytes that go on the wire.
    fn prepared(&self, prefix: &str, i: usize, orders: usize) -> Prepared {
        use std::io::Write;
        let body = self.body(prefix, i, orders);
        let signature = dr_sf_bridge::digital_river::signature::sign(SIGNING_SECRET, unix_now(), &body);
        let mut request = Vec::with_capacity(body.len() + 320);
        write!(
            request,
            "POST {} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nDigitalRiver-Signature: {signature}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.target.path,
            self.target.host,
            self.auth,
            body.len()
        )
        .unwrap();
        request.extend_from_slice(&body);
        Prepared(request.into())
    }

    /// The `count` events of a run named `prefix`, over `orders` orders: made now when the run
    /// is small enough to hold them, so that a closed loop measures only the sending.
    pub fn prepare(&self, prefix: &str, count: usize, orders: usize) -> Requests {
        let ready = if count <= PREPARED_UP_TO {
            (0..count).map(|i| self.prepared(prefix, i, orders)).collect()
        } else {
            Vec::new()
        };
        Requests {
            prefix: prefix.to_owned(),
            count,
            orders,
            ready,
        }
    }

    /// Posts one event; answers whether it was acknowledged (2xx).
    pub async fn post(&self, prefix: &str, i: usize, orders: usize) -> bool {
        let body = self.body(prefix, i, orders);
        let signature = dr_sf_bridge::digital_river::signature::sign(SIGNING_SECRET, unix_now(), &body);
        let sent = self
            .http
            .post(&self.url)
            .header("authorization", &self.auth)
            .header("DigitalRiver-Signature", signature)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        let ok = matches!(&sent, Ok(r) if r.status().is_success());
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// `count` events over `connections` connections, each sending its next as soon as the last
    /// is answered: [`prepare`](Self::prepare), then [`send_all`](Self::send_all).
    pub async fn closed_loop(self: &Arc<Self>, prefix: &str, count: usize, connections: usize, orders: usize) -> Run {
        let requests = self.prepare(prefix, count, orders);
        self.send_all(requests, connections).await
    }

    /// Sends `requests` over `connections` connections, each sending its next as soon as the last
    /// is answered, each a [`Lane`]: the generator must cost as little as the machine allows, or
    /// its own cost caps what it can show (reqwest reached a third of what a lean client does
    /// here, hyper's own connections three quarters).
    pub async fn send_all(self: &Arc<Self>, requests: Requests, connections: usize) -> Run {
        let errors_before = self.errors.load(Ordering::Relaxed);
        let count = requests.count;
        let requests = Arc::new(requests);
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut lanes = tokio::task::JoinSet::new();
        for _ in 0..connections {
            let (load, next, requests) = (self.clone(), next.clone(), requests.clone());
            lanes.spawn(async move {
                let mut latencies = Vec::new();
                let mut lane = None;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        return latencies;
                    }
                    let at = Instant::now();
                    let request = match requests.ready.get(i) {
                        Some(ready) => ready.clone(),
                        None => load.prepared(&requests.prefix, i, requests.orders),
                    };
                    if !load.post_on(&mut lane, request).await {
                        load.errors.fetch_add(1, Ordering::Relaxed);
                    }
                    latencies.push(at.elapsed());
                }
            });
        }
        let mut latencies = Vec::with_capacity(count);
        while let Some(lane) = lanes.join_next().await {
            latencies.extend(lane.unwrap());
        }
        let errors = self.errors.load(Ordering::Relaxed) - errors_before;
        Run::of(count, started.elapsed(), latencies, errors)
    }

    /// Posts one event on the lane's connection (opened, or opened again after a failure);
    /// answers whether it was acknowledged (2xx).
    async fn post_on(&self, lane: &mut Option<Lane>, prepared: Prepared) -> bool {
        if lane.is_none() {
            *lane = Lane::open(&self.target).await;
        }
        let Some(open) = lane.as_mut() else {
            return false;
        };
        match open.exchange(&prepared.0).await {
            Some((status, close)) => {
                if close {
                    *lane = None;
                }
                (200..300).contains(&status)
            }
            None => {
                *lane = None;
                false
            }
        }
    }

    /// `rate` events a second for `seconds`, whatever the answers take.
    pub async fn open_loop(self: &Arc<Self>, prefix: &str, rate: usize, seconds: f64) -> Run {
        let errors_before = self.errors.load(Ordering::Relaxed);
        let count = (rate as f64 * seconds) as usize;
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        let started = tokio::time::Instant::now();
        let mut sends = tokio::task::JoinSet::new();
        for i in 0..count {
            let scheduled = started + interval * i as u32;
            tokio::time::sleep_until(scheduled).await;
            let (load, prefix) = (self.clone(), prefix.to_owned());
            sends.spawn(async move {
                load.post(&prefix, i, 1_000).await;
                scheduled.elapsed()
            });
        }
        let mut latencies = Vec::with_capacity(count);
        while let Some(latency) = sends.join_next().await {
            latencies.push(latency.unwrap());
        }
        let errors = self.errors.load(Ordering::Relaxed) - errors_before;
        Run::of(count, started.elapsed(), latencies, errors)
    }
}

/// What wrk, a load tool written for nothing but speed, does against `url` for `seconds`: the
/// machine's HTTP ceiling with the leanest client here, beside which the generator's own is
/// judged. `None` (said) without wrk (`apt-get install wrk`).
pub fn wrk_against(url: &str, seconds: f64) -> Option<f64> {
    let script = std::env::temp_dir().join("drsf-bench-post.lua");
    let body = serde_json::to_string(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/fixtures/events/order.accepted.json"
        ))
        .unwrap_or_else(|_| "{}".into()),
    )
    .unwrap();
    std::fs::write(
        &script,
        format!("wrk.method = \"POST\"\nwrk.body = {body}\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"),
    )
    .ok()?;
    let output = std::process::Command::new("wrk")
        .args(["-t2", "-c64", &format!("-d{}s", seconds.max(1.0).round()), "-s"])
        .arg(&script)
        .arg(url)
        .output();
    let output = match output {
        Ok(output) if output.status.success() => output,
        _ => {
            println!("wrk is not here (apt-get install wrk): the generator is not measured against it");
            return None;
        }
    };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|n| n.trim().parse().ok())
}
