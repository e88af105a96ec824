//! What only the PostgreSQL engine promises: stores opened side by side on one schema (as
//! several relays are) share the work without taking the same event twice or breaking an
//! order, start together safely, and keep their queue table vacuumed.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dr_sf_bridge::domain::{EventId, EventType, Mode, OrderKey};
use dr_sf_bridge::store::postgres::PostgresStore;
use dr_sf_bridge::store::{AttemptRecord, EventStatus, InsertOutcome, NewEvent, Store, StoreError, Transition};

use crate::pg::{Schema, connect, fresh_schema};
use crate::relay_helpers::wait_until;

fn pending(id: &str, order: &str) -> NewEvent {
    NewEvent {
        source: Default::default(),
        trace_parent: None,
        id: EventId::parse(id).unwrap(),
        event_type: EventType::parse("order.accepted").unwrap(),
        live_mode: false,
        order_key: OrderKey::from_text(order),
        body: Bytes::from_static(b"{}"),
        status: EventStatus::Pending,
        reason: None,
        received_at_ms: 1,
    }
}

fn delivered(at: i64) -> AttemptRecord {
    AttemptRecord {
        at_ms: at,
        status_code: Some(200),
        duration_ms: 1,
        outcome: "delivered",
        error: None,
        excerpt: None,
    }
}

/// A store on a fresh schema, a plain connection that looks at its tables, and the schema (kept
/// while the test runs); `None` where no server answers outside CI.
async fn store_and_observer(test: &str) -> Option<(Schema, PostgresStore, tokio_postgres::Client)> {
    let schema = fresh_schema(test).await?;
    let store = PostgresStore::open(&schema.url, 4).await.unwrap();
    let observer = connect(&schema.url).await.unwrap();
    Some((schema, store, observer))
}

/// The one number `sql` answers.
async fn number(observer: &tokio_postgres::Client, sql: &str) -> i64 {
    observer.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_starting_together_migrate_once_and_never_claim_the_same_event() {
    let Some(schema) = fresh_schema("claims_side_by_side").await else {
        return;
    };
    // Four relays start at the same moment on an empty schema.
    let opening = (0..4).map(|_| PostgresStore::open(&schema.url, 4));
    let stores: Vec<Arc<dyn Store>> = futures_util::future::join_all(opening)
        .await
        .into_iter()
        .map(|s| Arc::new(s.expect("every relay starts")) as Arc<dyn Store>)
        .collect();
    let versions: i64 = connect(&schema.url)
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/src/store/migrations/postgres"))
        .unwrap()
        .count() as i64;
    assert_eq!(versions, migrations, "each migration ran once");

    for n in 0..400 {
        stores[n % 4]
            .insert(pending(&format!("e{n}"), &format!("o{}", n % 40)))
            .await
            .unwrap();
    }
    // The four claim and finish side by side until nothing is left.
    let mut workers = tokio::task::JoinSet::new();
    for store in stores.clone() {
        workers.spawn(async move {
            let mut taken = Vec::new();
            let mut idle = 0;
            while idle < 20 {
                let claimed = store
                    .claim_due(Mode::Test, 1_000, 8, Duration::from_secs(60))
                    .await
                    .unwrap();
                if claimed.is_empty() {
                    idle += 1;
                    tokio::task::yield_now().await;
                    continue;
                }
                idle = 0;
                for event in claimed {
                    taken.push(event.id.to_string());
                    store
                        .finish_attempt(event.seq, delivered(2_000), Transition::Delivered)
                        .await
                        .unwrap();
                }
            }
            taken
        });
    }
    let mut all = Vec::new();
    while let Some(taken) = workers.join_next().await {
        all.extend(taken.unwrap());
    }
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(all.len(), 400, "each event claimed exactly once across the four");
    assert_eq!(unique.len(), 400);
    assert_eq!(stores[0].stats().await.unwrap().delivered, 400);
}

/// A burst's writes share commits: one flush for the events DR posted together, one for the
/// outcomes of deliveries that finished together, instead of one each. (The test's runtime has one
/// thread, so all 64 writes are queued before the group commit takes any.)
#[tokio::test]
async fn writes_arriving_together_share_one_commit() {
    let Some((_schema, store, observer)) = store_and_observer("share_one_commit").await else {
        return;
    };
    let posts = (0..64).map(|n| store.insert(pending(&format!("g{n}"), &format!("g{n}"))));
    for outcome in futures_util::future::join_all(posts).await {
        assert_eq!(outcome.unwrap(), InsertOutcome::Inserted);
    }
    // Rows written by one transaction carry its id as their `xmin`.
    assert_eq!(
        number(&observer, "SELECT count(DISTINCT xmin::text) FROM events").await,
        1,
        "the 64 events were committed together"
    );

    let claimed = store
        .claim_due(Mode::Test, 1_000, 64, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 64);
    let finishing = claimed
        .iter()
        .map(|e| store.finish_attempt(e.seq, delivered(2_000), Transition::Delivered));
    for finished in futures_util::future::join_all(finishing).await {
        finished.unwrap();
    }
    assert_eq!(
        number(&observer, "SELECT count(DISTINCT xmin::text) FROM attempts").await,
        1,
        "the 64 outcomes were committed together"
    );
    assert_eq!(
        number(&observer, "SELECT count(*) FROM events WHERE status = 'delivered'").await,
        64
    );
}

/// One write that the database refuses does not take the others of its commit down with it: they
/// are stored and acknowledged, and only the refused one gets the error.
#[tokio::test]
async fn a_write_refused_in_a_shared_commit_fails_alone() {
    let Some((_schema, store, observer)) = store_and_observer("refused_in_shared_commit").await else {
        return;
    };
    observer
        .batch_execute("ALTER TABLE events ADD CONSTRAINT refuse_r13 CHECK (id <> 'r13')")
        .await
        .unwrap();
    let posts = (0..20).map(|n| store.insert(pending(&format!("r{n}"), &format!("r{n}"))));
    let outcomes = futures_util::future::join_all(posts).await;
    for (n, outcome) in outcomes.iter().enumerate() {
        match n {
            13 => assert!(matches!(outcome, Err(StoreError::Conflict(_))), "{outcome:?}"),
            _ => assert!(matches!(outcome, Ok(InsertOutcome::Inserted)), "r{n}: {outcome:?}"),
        }
    }
    assert_eq!(number(&observer, "SELECT count(*) FROM events").await, 19);
}

#[tokio::test]
async fn a_relay_vacuums_its_queue_after_a_busy_spell() {
    let Some((schema, store, observer)) = store_and_observer("vacuums_its_queue").await else {
        return;
    };
    for n in 0..2_100 {
        store.insert(pending(&format!("v{n}"), &format!("v{n}"))).await.unwrap();
    }
    loop {
        let claimed = store
            .claim_due(Mode::Test, 1_000, 500, Duration::from_secs(60))
            .await
            .unwrap();
        if claimed.is_empty() {
            break;
        }
        for event in claimed {
            store
                .finish_attempt(event.seq, delivered(2_000), Transition::Delivered)
                .await
                .unwrap();
        }
    }
    let name = schema.name.clone();
    wait_until("the relay to vacuum the events table", || async {
        let count: i64 = observer
            .query_one(
                "SELECT vacuum_count FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'events'",
                &[&name],
            )
            .await
            .unwrap()
            .get(0);
        count > 0
    })
    .await;
}

/// A relay started on an empty store, then an outage's backlog: each claim must look up only the
/// first due events' predecessors, one index probe each — never read every pending event of the
/// order index, nor the whole table, as a claim planned on the empty table did (the relay's
/// claims keep one plan per connection; autovacuum may take a minute to analyze, or be off).
#[tokio::test]
async fn claims_stay_index_lookups_when_the_queue_grows_from_empty() {
    let Some((schema, store, observer)) = store_and_observer("claims_stay_index_lookups").await else {
        return;
    };
    observer
        .batch_execute("ALTER TABLE events SET (autovacuum_enabled = false)")
        .await
        .unwrap();
    for _ in 0..20 {
        let claimed = store
            .claim_due(Mode::Test, 1_000, 32, Duration::from_secs(60))
            .await
            .unwrap();
        assert!(claimed.is_empty());
    }
    let name = schema.name.clone();
    let table = |column: &'static str| {
        let (observer, name) = (&observer, name.clone());
        async move {
            observer
                .query_one(
                    &format!("SELECT {column} FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'events'"),
                    &[&name],
                )
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };
    let index_reads = || async {
        observer
            .query_one(
                "SELECT sum(idx_scan)::BIGINT, sum(idx_tup_read)::BIGINT FROM pg_stat_user_indexes
                 WHERE schemaname = $1 AND indexrelname IN ('events_pending_order', 'events_order')",
                &[&name],
            )
            .await
            .map(|row| (row.get::<_, i64>(0), row.get::<_, i64>(1)))
            .unwrap()
    };
    // A backend publishes its counts up to a second after its statements, several statements'
    // at once: the counts are read once nothing has changed for longer than that, so that a
    // window holds the claim's own reads and no earlier statement's.
    let settled = || async {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut last = index_reads().await;
        loop {
            tokio::time::sleep(Duration::from_millis(1_500)).await;
            let now = index_reads().await;
            if now == last {
                return now;
            }
            assert!(std::time::Instant::now() < deadline, "the index counts never settled");
            last = now;
        }
    };
    // Claims 32 events, checks they are `expected`, and returns the order indexes' entries read.
    let claim_32 = |expected: Vec<String>, when: &'static str| {
        let (store, table, index_reads, settled) = (&store, &table, &index_reads, &settled);
        async move {
            let (scans_before, reads_before) = settled().await;
            let table_rows_before = table("seq_tup_read").await;
            let claimed = store
                .claim_due(Mode::Test, 30_000, 32, Duration::from_secs(60))
                .await
                .unwrap();
            let mut ids: Vec<String> = claimed.iter().map(|e| e.id.to_string()).collect();
            ids.sort_by_key(|id| {
                id.trim_start_matches(|c: char| !c.is_ascii_digit())
                    .parse::<u32>()
                    .unwrap()
            });
            assert_eq!(ids, expected, "{when}: the first of each order, oldest first");
            // The server publishes a session's counts shortly after its statement, not with it.
            wait_until("the claim's index use to be counted", || async {
                index_reads().await.0 > scans_before
            })
            .await;
            let reads = settled().await.1 - reads_before;
            assert!(
                reads < 500,
                "{when}: a claim of 32 events read {reads} entries of the order indexes (20,000 pending)"
            );
            // Scans of the empty table at the store's start may be published late; they read nothing.
            let table_rows = table("seq_tup_read").await - table_rows_before;
            assert!(
                table_rows < 500,
                "{when}: a claim scanned {table_rows} rows of the whole table"
            );
        }
    };

    // Two events per order: the second of each waits for the first. Loaded beside the relay, so
    // the relay has not counted them towards an analyze: its first claims run on the empty
    // table's statistics.
    observer
        .batch_execute(
            "INSERT INTO events (id, type, live_mode, order_key, received_at, body, status, next_attempt_at, source)
             SELECT 'evt-' || g, 'order.accepted', false, 'o-' || ((g + 1) / 2), 1000 + g, '\\x7b7d', 'pending',
                    1000 + g, 'webhook'
             FROM generate_series(1, 19000) g",
        )
        .await
        .unwrap();
    claim_32(
        (0..32).map(|n| format!("evt-{}", n * 2 + 1)).collect(),
        "before the table is analyzed",
    )
    .await;
    assert_eq!(table("analyze_count").await, 0);

    // The last thousand through the relay, which counts them towards an analyze.
    for n in 0..1_000 {
        store
            .insert(pending(&format!("g{n}"), &format!("o{}", n / 2)))
            .await
            .unwrap();
    }
    wait_until("the relay to analyze the grown table", || async {
        table("analyze_count").await > 0
    })
    .await;
    claim_32(
        (0..32).map(|n| format!("g{}", n * 2)).collect(),
        "after the table is analyzed",
    )
    .await;
}

#[tokio::test]
async fn a_read_only_database_is_unavailable_never_an_acknowledgement() {
    let Some(schema) = fresh_schema("read_only_database").await else {
        return;
    };
    let writable = PostgresStore::open(&schema.url, 2).await.unwrap();
    writable.insert(pending("before", "o")).await.unwrap();
    // As a relay sees a primary that became a read-only replica.
    let read_only = PostgresStore::open_existing(&format!("{}%20-cdefault_transaction_read_only%3Don", schema.url), 2)
        .await
        .unwrap();
    let refused = read_only.insert(pending("during", "o")).await.expect_err("refused");
    assert!(
        matches!(refused, dr_sf_bridge::store::StoreError::Unavailable(_)),
        "{refused:?}"
    );
    assert!(refused.is_transient(), "the relay answers 503 and DR retries");
    assert!(read_only.ping().await.is_err(), "/readyz says not ready");
    assert_eq!(read_only.stats().await.unwrap().pending, 1, "reads still work");
}

/// The local server's own certificate (Debian's, for `localhost`), when the server speaks TLS.
async fn server_certificate() -> Option<String> {
    let path = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
    let client = connect(&crate::pg::server_url()).await.ok()?;
    let ssl: String = client.query_one("SHOW ssl", &[]).await.ok()?.get(0);
    if ssl != "on" || !std::path::Path::new(path).is_file() {
        eprintln!("SKIPPED: the PostgreSQL server does not speak TLS with {path}");
        return None;
    }
    Some(path.to_owned())
}

fn on_localhost(url: &str, extra: &str) -> String {
    let mut url = url::Url::parse(url).unwrap();
    url.set_host(Some("localhost")).unwrap();
    format!("{url}&{extra}")
}

#[tokio::test]
async fn sslmode_require_speaks_tls_and_verifies_the_server_certificate() {
    let Some(schema) = fresh_schema("tls").await else {
        return;
    };
    let Some(certificate) = server_certificate().await else {
        return;
    };
    let name = format!("drsf_tls_{}", std::process::id());
    let trusted = on_localhost(
        &schema.url,
        &format!("sslmode=verify-full&sslrootcert={certificate}&application_name={name}"),
    );
    let store = PostgresStore::open(&trusted, 2)
        .await
        .expect("TLS with the server's CA");
    store.insert(pending("over-tls", "o")).await.unwrap();
    let sessions: Vec<bool> = connect(&schema.url)
        .await
        .unwrap()
        .query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1",
            &[&name],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(!sessions.is_empty() && sessions.iter().all(|ssl| *ssl), "{sessions:?}");

    // Without the server's CA the self-signed certificate is refused, never used unverified.
    let untrusted = on_localhost(&schema.url, "sslmode=require");
    let refused = PostgresStore::open(&untrusted, 2).await.err().expect("refused");
    assert!(refused.to_string().contains("certificate"), "{refused}");
}
