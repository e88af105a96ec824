//! The Salesforce side of "no order left behind": reading each org's `DR_Failed_Event__c`
//! records, so that an event the DR package answered 2xx for but kept as a failure is not shown as
//! delivered.
//!
//! A [`Confirmer`] per org (the relay's own sign-in, the same token) sweeps every
//! `confirm.interval`: the records changed since its cursor (kept in the store) minus an overlap,
//! page by page, at most `confirm.max_requests_per_sweep` pages and none while the org's API usage
//! is in the reserve deliveries keep for its other integrations. Each record goes to
//! [`Store::confirm`], which holds the rules; records of events the store lacks are kept as a
//! fact for the status page. The sweep reports and never blocks: a user without read access to
//! the object is named once, and deliveries go on.

use std::sync::Arc;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::delivery::Target;
use crate::delivery::pacing::PauseCause;
use crate::domain::EventId;
use crate::metrics::ConfirmMetrics;
use crate::salesforce::failed_events::{FailedEventRecord, QueryError, RecordsPage};
use crate::settings::confirm::ConfirmSettings;
use crate::store::confirm::{Confirmation, SalesforceFailure};
use crate::store::facts::{SalesforceSweep, UnknownFailure};
use crate::store::{EventFilter, EventStatus, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ConfirmError {
    #[error(transparent)]
    Salesforce(#[from] QueryError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one sweep found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfirmCount {
    /// Records read.
    pub records: u64,
    /// Delivered events now `failed_in_salesforce`.
    pub failed: u64,
    /// Events now `recovered`.
    pub recovered: u64,
    /// Records of events the store does not hold.
    pub not_stored: u64,
    /// Query requests made (API requests).
    pub requests: u32,
    /// Pages were left for the next sweep (the request budget, or the API reserve).
    pub cut_short: bool,
}

/// What one sweep did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmSweep {
    /// Another relay holds the sweep's lease.
    NotMine,
    /// Nothing was asked of the org: its deliveries are paused or its usage is in the reserve.
    Skipped(PauseCause),
    Swept(ConfirmCount),
}

pub fn cursor_key(target: &Target) -> String {
    format!("confirm.cursor.{}", target.mode)
}

#[derive(Clone)]
pub struct Confirmer {
    target: Arc<Target>,
    store: Arc<dyn Store>,
    settings: ConfirmSettings,
    metrics: ConfirmMetrics,
    holder: String,
}

impl Confirmer {
    pub fn new(target: Arc<Target>, store: Arc<dyn Store>, settings: ConfirmSettings, metrics: ConfirmMetrics) -> Self {
        let holder = super::lease_holder();
        Self {
            target,
            store,
            settings,
            metrics,
            holder,
        }
    }

    pub fn mode(&self) -> crate::domain::Mode {
        self.target.mode
    }

    /// One sweep, now.
    #[tracing::instrument(skip_all, fields(target = self.target.mode.as_str()))]
    pub async fn sweep(&self) -> Result<ConfirmSweep, ConfirmError> {
        let now = self.target.clock.now_ms();
        let lease_key = format!("confirm.lease.{}", self.target.mode);
        let lease_until = now + self.settings.interval.as_millis() as i64 + 600_000;
        if !self
            .store
            .take_lease(&lease_key, &self.holder, now, lease_until)
            .await?
        {
            return Ok(ConfirmSweep::NotMine);
        }
        if let Err(cause) = self.target.pacer.api_room() {
            return Ok(ConfirmSweep::Skipped(cause));
        }
        let cursor = self
            .store
            .state(&cursor_key(&self.target))
            .await?
            .and_then(|c| c.parse::<i64>().ok())
            .unwrap_or(now - self.settings.first_lookback.as_millis() as i64);
        let from = cursor - self.settings.overlap.as_millis() as i64;
        let mut fact = SalesforceSweep::recall(&*self.store, self.target.mode)
            .await?
            .unwrap_or_default();
        fact.swept_at_ms = now;
        let mut count = ConfirmCount::default();
        let mut reached = cursor;
        let outcome = self.read_pages(from, &mut count, &mut fact, &mut reached).await;
        if let Err(e) = &outcome {
            fact.error = Some(e.to_string());
            fact.remember(&*self.store, self.target.mode).await?;
            outcome?;
        }
        fact.error = None;
        fact.remember(&*self.store, self.target.mode).await?;
        // Read to the end: the next sweep starts from when this one asked (less the overlap).
        let next_cursor = if count.cut_short { reached } else { now.max(cursor) };
        self.store
            .set_state(&cursor_key(&self.target), Some(next_cursor.to_string()), now)
            .await?;
        self.metrics.unknown_failures.set(fact.unknown.len() as i64);
        self.metrics.failed_in_salesforce.set(self.failed_now().await? as i64);
        self.metrics.last_success.set(self.target.clock.now_ms() / 1000);
        if count.failed > 0 {
            tracing::warn!(
                failed = count.failed,
                "Salesforce stored {} event{} as failures: the DR package answered 2xx but kept them as DR Failed Event records, so their orders were not updated; they are marked failed_in_salesforce (fix the cause in the org, then send them again)",
                count.failed,
                if count.failed == 1 { "" } else { "s" }
            );
        }
        if count.recovered > 0 {
            tracing::info!(
                recovered = count.recovered,
                "DR Failed Event records processed in Salesforce: events marked recovered"
            );
        }
        if count.not_stored > 0 {
            tracing::warn!(
                records = count.not_stored,
                "DR Failed Event records in the org name events this relay never received (DR posted straight to the org, or before the relay): listed on the status page"
            );
        }
        Ok(ConfirmSweep::Swept(count))
    }

    /// Reads pages from `from_ms` on, applying each record; `reached` ends at the last record's
    /// change time.
    async fn read_pages(
        &self,
        from_ms: i64,
        count: &mut ConfirmCount,
        fact: &mut SalesforceSweep,
        reached: &mut i64,
    ) -> Result<(), ConfirmError> {
        let client = &self.target.client;
        let mut page: RecordsPage = client.failed_events_since(from_ms).await?;
        loop {
            count.requests += 1;
            self.metrics.requests.inc();
            self.target.pacer.noted_usage(page.api_usage);
            for record in &page.records {
                self.apply(record, count, fact).await?;
                *reached = (*reached).max(record.modified_ms);
            }
            let Some(next) = page.next.take() else {
                return Ok(());
            };
            if count.requests >= self.settings.max_requests_per_sweep || self.target.pacer.api_room().is_err() {
                count.cut_short = true;
                return Ok(());
            }
            page = client.failed_events_page(&next).await?;
        }
    }

    async fn apply(
        &self,
        record: &FailedEventRecord,
        count: &mut ConfirmCount,
        fact: &mut SalesforceSweep,
    ) -> Result<(), ConfirmError> {
        count.records += 1;
        let event_id = record.event_id.as_deref().and_then(|raw| EventId::parse(raw).ok());
        let confirmation = match event_id {
            Some(event_id) => {
                let failure = SalesforceFailure {
                    record_id: record.id.clone(),
                    event_id,
                    created_ms: record.created_ms,
                    processed: record.processed,
                    reason: record.reason.clone(),
                };
                self.store.confirm(&failure, self.target.clock.now_ms()).await?
            }
            None => Confirmation::NotStored,
        };
        match confirmation {
            Confirmation::FailedInSalesforce => count.failed += 1,
            Confirmation::Recovered => count.recovered += 1,
            Confirmation::Unchanged => {}
            Confirmation::NotStored => {
                count.not_stored += 1;
                fact.note_unknown(UnknownFailure {
                    record_id: record.id.clone(),
                    event_id: record.event_id.clone(),
                    event_type: record.event_type.clone(),
                    reason: record.reason.clone(),
                    created_ms: record.created_ms,
                    processed: record.processed,
                });
            }
        }
        Ok(())
    }

    /// This org's events now `failed_in_salesforce`.
    async fn failed_now(&self) -> Result<usize, StoreError> {
        let failed = self
            .store
            .list(EventFilter {
                status: Some(EventStatus::FailedInSalesforce),
                limit: 10_000,
                ..Default::default()
            })
            .await?;
        Ok(failed.iter().filter(|e| e.target == self.target.mode).count())
    }

    /// Sweeps every `confirm.interval` (the first after one interval) until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let mut failures = 0u32;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.settings.interval) => {}
            }
            match self.sweep().await {
                Ok(_) => failures = 0,
                Err(e) => {
                    failures += 1;
                    if super::worth_logging(failures) {
                        tracing::error!(
                            target_mode = self.target.mode.as_str(),
                            error = %e,
                            "could not read the DR package's failure records; deliveries go on, and the next sweep tries again"
                        );
                    }
                }
            }
        }
    }
}
