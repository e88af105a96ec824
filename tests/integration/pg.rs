//! A PostgreSQL schema of its own for each test.
//!
//! Tests find the server through `DRSF_TEST_DATABASE_URL` (default: the local server, user
//! `postgres`, database `test`). Each test gets a fresh schema, named after it, that the relay
//! reaches through the URL's `search_path` option, and that is dropped when the test ends. Without
//! a reachable server the tests are skipped with a message on stderr — except under `CI=true`,
//! where a missing server fails them.

use std::sync::atomic::{AtomicU32, Ordering};

pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub fn server_url() -> String {
    std::env::var("DRSF_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// A schema that exists while this lives.
pub struct Schema {
    pub name: String,
    /// `storage.url` for a relay on this schema.
    pub url: String,
}

/// A fresh schema, or `None` (with a message) when no server answers outside CI.
pub async fn fresh_schema(test: &str) -> Option<Schema> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "t_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        test.chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(30)
            .collect::<String>()
    )
    .to_ascii_lowercase();
    let base = server_url();
    let client = match connect(&base).await {
        Ok(client) => client,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true and PostgreSQL at {base} is not reachable: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED {test}: PostgreSQL at {base} is not reachable ({e}); set DRSF_TEST_DATABASE_URL");
            return None;
        }
    };
    client
        .batch_execute(&format!("CREATE SCHEMA {name}"))
        .await
        .expect("creating the test's schema");
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options=-csearch_path%3D{name}");
    Some(Schema { name, url })
}

pub async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (base, name) = (server_url(), self.name.clone());
        // Drop runs outside any runtime's async context: a thread of its own with its own runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(client) = connect(&base).await {
                    let _ = client
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                        .await;
                }
            });
        })
        .join();
    }
}
