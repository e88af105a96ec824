//! The PostgreSQL engine: several relays on one database, one shared work queue.
//!
//! Where SQLite has one relay per file, here any number of relays share the tables, so nothing
//! may rely on being alone:
//! - claims lock the rows they take with `FOR UPDATE SKIP LOCKED`, so two relays never take the
//!   same event, and a relay never waits for another's claim;
//! - an event is claimable only while no earlier event of its order is pending — leased by any
//!   relay, or waiting for a retry — so one order's events reach Salesforce in the order received
//!   whichever relay received them;
//! - a lease that runs out (its relay died) makes the event claimable by the others; leases are
//!   never taken over at start, since the relay that holds one may be alive;
//! - the unique event id makes a DR retry that reaches another relay a duplicate, answered 2xx.
//!
//! Each write commits before its caller is answered (`synchronous_commit` as the server sets it;
//! leave it `on`). Stored events and delivery outcomes share their commits ([`group_commit`]), as
//! the SQLite engine's writer thread shares its own. Claims and releases are the exception:
//! they go through connections of their own with `synchronous_commit = off`, so taking work does
//! not wait for a disk flush. A lease is a note between relays, not a promise to anyone: if the
//! database crashes before it is flushed, the event is simply claimable again (at least once, as
//! after a relay crash).
//!
//! Driver: `tokio-postgres` with a `deadpool-postgres` pool — the asynchronous driver most of the
//! ecosystem builds on, with `LISTEN`/`NOTIFY` support, and lighter to build than `sqlx`, whose
//! compile-time query checks we would not use. TLS is rustls (as for every other connection the
//! relay makes), asked for with `sslmode=require` or `verify-full` in the URL: the certificate is
//! always verified, against the public roots and libpq's `sslrootcert` file when given.

mod confirm;
mod connect;
mod copy;
mod group_commit;
mod lease;
mod operations;
mod queries;
mod vacuum;
mod wakeups;

use std::sync::{Arc, Mutex};

use deadpool_postgres::Pool;
use tokio::sync::Notify;

use super::StoreError;
use crate::support::text::redact_url;
use connect::pool_error;
use group_commit::GroupCommit;
use vacuum::Vacuum;
use wakeups::{Announcer, Listener};

/// Connections each relay keeps open at most, unless `storage.pool_size` says otherwise.
pub const DEFAULT_POOL_SIZE: usize = 16;
/// Connections for claims, releases and the next due time: one worker claims at a time.
const LEASE_POOL_SIZE: usize = 2;

pub struct PostgresStore {
    pool: Pool,
    /// For claims, releases and the next due time: commits that do not wait for the disk, plans
    /// made for the table as it is ([`connect::for_claims`]).
    lease_pool: Pool,
    target: connect::Target,
    /// Stored events and delivery outcomes, committed together ([`group_commit`]).
    writes: GroupCommit,
    announcer: Announcer,
    vacuum: Vacuum,
    listener: Mutex<Option<Listener>>,
}

impl PostgresStore {
    /// Connects, and brings the schema to this build's version (creating it in an empty
    /// database): for the relay.
    pub async fn open(url: &str, pool_size: usize) -> Result<Self, StoreError> {
        let mut store = Self::connect(url, pool_size).await?;
        let mut client = store.pool.get().await.map_err(|e| described(url, pool_error(e)))?;
        connect::migrate(&mut client).await.map_err(|e| described(url, e))?;
        drop(client);
        store.vacuum = Vacuum::start(store.pool.clone());
        Ok(store)
    }

    /// Connects to a store a relay has created, for an operations command: an empty database is
    /// an error, never a new store.
    pub async fn open_existing(url: &str, pool_size: usize) -> Result<Self, StoreError> {
        let store = Self::connect(url, pool_size).await?;
        let client = store.pool.get().await.map_err(|e| described(url, pool_error(e)))?;
        if !connect::is_initialised(&client).await? {
            return Err(StoreError::Unavailable(format!(
                "no store at {}: nothing has been stored there (check storage.url, or start the relay first)",
                redact_url(url)
            )));
        }
        drop(client);
        Ok(store)
    }

    async fn connect(url: &str, pool_size: usize) -> Result<Self, StoreError> {
        let target = connect::target(url)?;
        let pool = connect::pool(target.clone(), pool_size)?;
        let lease_pool = connect::pool(connect::for_claims(target.clone()), LEASE_POOL_SIZE)?;
        Ok(Self {
            announcer: Announcer::start(pool.clone()),
            writes: GroupCommit::start(pool.clone()),
            vacuum: Vacuum::off(),
            pool,
            lease_pool,
            target,
            listener: Mutex::new(None),
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    async fn lease_client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.lease_pool.get().await.map_err(pool_error)
    }

    /// Wakes `wake` whenever another relay (or an operations command) makes events pending.
    fn listen_for_wakeups(&self, wake: Arc<Notify>) {
        let listener = Listener::start(self.target.clone(), wake);
        *self.listener.lock().expect("not poisoned") = Some(listener);
    }
}

/// Names the key and the database (without its password) in a failure to reach it, and says
/// what failed in words an operator acts on.
fn described(url: &str, e: StoreError) -> StoreError {
    let named = |why: &str| format!("storage.url `{}`: {}", redact_url(url), connect::explained(url, why));
    match e {
        StoreError::Unavailable(why) => StoreError::Unavailable(named(&why)),
        StoreError::Busy(why) => StoreError::Busy(named(&why)),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_url_is_refused_without_its_password() {
        let Err(error) = connect::target("postgres://relay:Sup3rSecretPw@db.internal:5432/relay?sslmode=sometimes")
        else {
            panic!("refused")
        };
        let text = error.to_string();
        assert!(text.contains("db.internal") && text.contains("sslmode"), "{text}");
        assert!(!text.contains("Sup3rSecretPw"), "{text}");
    }
}
