//! The PostgreSQL scenarios, each in a schema of its own on the server `DRSF_TEST_DATABASE_URL`
//! names (default the local one); skipped, saying so, without a server.

use super::{Report, Scale, backlog, engine_scenarios, status_page};

/// The PostgreSQL scenarios named, each in a schema of its own on the server.
pub async fn scenarios(report: &mut Report, scale: &Scale, names: &[&str], ceiling_rate: f64, dir: &std::path::Path) {
    let server = std::env::var("DRSF_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let client = match tokio_postgres::connect(&server, tokio_postgres::NoTls).await {
        Ok((client, connection)) => {
            tokio::spawn(connection);
            client
        }
        Err(e) => {
            println!("PostgreSQL scenarios skipped: no server at {server} ({e})");
            return;
        }
    };
    for (n, name) in names.iter().enumerate() {
        let schema = format!("bench_{}_{n}_{}", std::process::id(), name);
        client.batch_execute(&format!("CREATE SCHEMA {schema}")).await.unwrap();
        let separator = if server.contains('?') { '&' } else { '?' };
        let url = format!("{server}{separator}options=-csearch_path%3D{schema}");
        match *name {
            "main" => engine_scenarios(report, scale, "postgres", &url, ceiling_rate, dir).await,
            "status" => status_page::scenarios(report, scale, "postgres", &url, dir).await,
            _ => backlog(report, scale, "postgres", &url, scale.n(100_000, 2_000), dir).await,
        }
        client
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .unwrap();
    }
}
