//! A TCP proxy between relays and PostgreSQL that counts the statements they send and can cut
//! the database off: every connection closed at once and new ones refused, as a relay sees a
//! database server that stops — without stopping the server other tests share.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct PgProxy {
    pub port: u16,
    statements: Arc<AtomicU64>,
    down: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl PgProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let statements = Arc::new(AtomicU64::new(0));
        let down = Arc::new(AtomicBool::new(false));
        let (cut, _) = watch::channel(0u64);
        let task = {
            let (statements, down, cut) = (statements.clone(), down.clone(), cut.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    if down.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        continue;
                    };
                    tokio::spawn(pipe(client, server, statements.clone(), cut.subscribe()));
                }
            })
        };
        Self {
            port,
            statements,
            down,
            cut,
            task,
        }
    }

    /// The URL `base` (a `postgres://` URL) with its host and port replaced by the proxy's.
    pub fn url_for(&self, base: &str) -> String {
        let mut url = url::Url::parse(base).unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(self.port)).unwrap();
        url.to_string()
    }

    /// Statements (simple queries and executes of prepared ones) sent through the proxy so far.
    pub fn statements(&self) -> u64 {
        self.statements.load(Ordering::SeqCst)
    }

    /// Closes every connection and refuses new ones until [`up`](Self::up).
    pub fn down(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    pub fn up(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

impl Drop for PgProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut.send_modify(|n| *n += 1);
    }
}

async fn pipe(client: TcpStream, server: TcpStream, statements: Arc<AtomicU64>, mut cut: watch::Receiver<u64>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = async {
        let mut counter = MessageCounter::default();
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let n = match client_read.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            statements.fetch_add(counter.feed(&buffer[..n]), Ordering::SeqCst);
            if server_write.write_all(&buffer[..n]).await.is_err() {
                return;
            }
        }
    };
    let downstream = async {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    };
    tokio::select! {
        _ = upstream => {}
        _ = downstream => {}
        _ = cut.changed() => {}
    }
}

/// Reads the frontend's byte stream as messages: the untyped start-up packets, then typed ones.
#[derive(Default)]
struct MessageCounter {
    started: bool,
    pending: Vec<u8>,
}

impl MessageCounter {
    /// Answers how many `Query` ('Q') and `Execute` ('E') messages `bytes` completes.
    fn feed(&mut self, bytes: &[u8]) -> u64 {
        self.pending.extend_from_slice(bytes);
        let mut count = 0;
        loop {
            let (header, typed) = if self.started { (5, true) } else { (4, false) };
            if self.pending.len() < header {
                return count;
            }
            let length_at = usize::from(typed);
            let length = u32::from_be_bytes(self.pending[length_at..length_at + 4].try_into().unwrap()) as usize;
            let total = length + usize::from(typed);
            if self.pending.len() < total {
                return count;
            }
            if typed {
                count += u64::from(matches!(self.pending[0], b'Q' | b'E'));
            } else {
                // SSLRequest and GSSENCRequest come before the start-up message, with a code
                // where the protocol version would be.
                let code = u32::from_be_bytes(self.pending[4..8].try_into().unwrap());
                self.started = code == 196_608;
            }
            self.pending.drain(..total);
        }
    }
}
