//! Reading the DR package's own failure records (`DR_Failed_Event__c`) with SOQL over REST, with
//! the token the relay delivers with.
//!
//! The query asks for the records changed since a time (`LastModifiedDate`, a field of every
//! object): a new record is one, and so is a record whose `Processed__c` was ticked later — one
//! query sees both. Salesforce pages long answers (`nextRecordsUrl`); each page is one API
//! request against the org's daily allocation, so the caller decides how many to follow.

use std::time::Duration;

use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::auth::AuthError;
use super::client::{ApexClient, ApiUsage, error_fields, read_answer_up_to};
use crate::support::clock::rfc3339;
use crate::support::text::{error_chain, truncate};

/// The managed package's object.
pub const OBJECT: &str = "digitalriverv3__DR_Failed_Event__c";
/// The REST resource that runs SOQL.
pub const QUERY_PATH: &str = "/services/data/v60.0/query";
/// Pages (2,000 records with reasons of 512 characters at most) are read up to this size.
const PAGE_READ_LIMIT: usize = 8 * 1024 * 1024;

const FIELDS: &str = "Id, CreatedDate, LastModifiedDate, digitalriverv3__Event_Id__c, digitalriverv3__Event_Type__c, \
                      digitalriverv3__Event_Capture_Reason__c, digitalriverv3__Processed__c";

/// Why the records could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QueryError {
    /// `INVALID_TYPE`: the object is not visible to the integration user (or the package is not
    /// installed).
    #[error(
        "the integration user cannot read {OBJECT} (Salesforce answered INVALID_TYPE: {message}); fix: in Setup, give \
         the user read access to the DR Failed Event object with a permission set (Object Settings → DR Failed \
         Events → Read)"
    )]
    NotReadable { message: String },
    #[error("Salesforce refused the query of {OBJECT}: {status} {said}")]
    Refused { status: u16, said: String },
    #[error("cannot reach Salesforce for the query of {OBJECT}: {0}")]
    Unreachable(String),
    #[error("Salesforce's answer to the query of {OBJECT} is not a query result: {0}")]
    Unreadable(String),
    #[error(transparent)]
    SignIn(#[from] AuthError),
}

/// One failure record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEventRecord {
    pub id: String,
    /// DR's event id (`Event_Id__c`); `None` when the package stored none.
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    /// `Event_Capture_Reason__c`.
    pub reason: String,
    pub processed: bool,
    pub created_ms: i64,
    pub modified_ms: i64,
}

/// One page of records, and where the next one is.
#[derive(Debug, Clone)]
pub struct RecordsPage {
    pub records: Vec<FailedEventRecord>,
    /// `nextRecordsUrl` (a path on the org), when the answer is not `done`.
    pub next: Option<String>,
    pub api_usage: Option<ApiUsage>,
}

#[derive(Deserialize)]
struct QueryAnswer {
    #[serde(default)]
    done: bool,
    #[serde(rename = "nextRecordsUrl")]
    next_records_url: Option<String>,
    #[serde(default)]
    records: Vec<RawRecord>,
}

#[derive(Deserialize)]
struct RawRecord {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "CreatedDate")]
    created: String,
    #[serde(rename = "LastModifiedDate")]
    modified: Option<String>,
    #[serde(rename = "digitalriverv3__Event_Id__c")]
    event_id: Option<String>,
    #[serde(rename = "digitalriverv3__Event_Type__c")]
    event_type: Option<String>,
    #[serde(rename = "digitalriverv3__Event_Capture_Reason__c")]
    reason: Option<String>,
    #[serde(rename = "digitalriverv3__Processed__c", default)]
    processed: Option<bool>,
}

/// Salesforce's `2026-12-02T04:54:35.000+0000` (or RFC 3339) in ms.
pub fn parse_salesforce_time(raw: &str) -> Option<i64> {
    let normalized = raw.strip_suffix("+0000").map(|t| format!("{t}Z"));
    let text = normalized.as_deref().unwrap_or(raw);
    let at = humantime::parse_rfc3339_weak(text).ok()?;
    Some(at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as i64)
}

/// The SOQL of the records changed at or after `since_ms` (whole seconds, rounded down).
pub fn changed_since_soql(since_ms: i64) -> String {
    format!(
        "SELECT {FIELDS} FROM {OBJECT} WHERE LastModifiedDate >= {} ORDER BY LastModifiedDate",
        rfc3339(since_ms)
    )
}

impl RawRecord {
    fn parse(self) -> Result<FailedEventRecord, QueryError> {
        let created_ms = parse_salesforce_time(&self.created)
            .ok_or_else(|| QueryError::Unreadable(format!("CreatedDate {}", truncate(&self.created))))?;
        let modified_ms = self
            .modified
            .as_deref()
            .and_then(parse_salesforce_time)
            .unwrap_or(created_ms);
        Ok(FailedEventRecord {
            id: self.id,
            event_id: self.event_id.filter(|id| !id.trim().is_empty()),
            event_type: self.event_type,
            reason: self.reason.unwrap_or_default(),
            processed: self.processed.unwrap_or(false),
            created_ms,
            modified_ms,
        })
    }
}

impl ApexClient {
    /// The first page of the records changed at or after `since_ms`.
    #[tracing::instrument(skip_all)]
    pub async fn failed_events_since(&self, since_ms: i64) -> Result<RecordsPage, QueryError> {
        self.query_page(QueryAt::Soql(changed_since_soql(since_ms))).await
    }

    /// The page at `next` (a `nextRecordsUrl`).
    #[tracing::instrument(skip_all)]
    pub async fn failed_events_page(&self, next: &str) -> Result<RecordsPage, QueryError> {
        self.query_page(QueryAt::Next(next.to_owned())).await
    }

    /// Whether the integration user can read the records: one `LIMIT 1` query, for `check`.
    pub async fn failed_events_readable(&self) -> Result<(), QueryError> {
        self.query_page(QueryAt::Soql(format!("SELECT Id FROM {OBJECT} LIMIT 1")))
            .await
            .map(|_| ())
    }

    async fn query_page(&self, at: QueryAt) -> Result<RecordsPage, QueryError> {
        let url = self.query_url(&at)?;
        let token = self.tokens.get().await?;
        let mut answer = self.get_answer(&url, token.secret.expose_secret()).await?;
        if answer.status == StatusCode::UNAUTHORIZED {
            self.tokens.invalidate(token.generation).await;
            let fresh = self.tokens.get().await?;
            answer = self.get_answer(&url, fresh.secret.expose_secret()).await?;
        }
        if !answer.status.is_success() {
            let (code, message) = error_fields(&answer.body);
            if code.as_deref() == Some("INVALID_TYPE") {
                return Err(QueryError::NotReadable {
                    message: message.unwrap_or_default(),
                });
            }
            let said = [code, message].into_iter().flatten().collect::<Vec<_>>().join(": ");
            return Err(QueryError::Refused {
                status: answer.status.as_u16(),
                said,
            });
        }
        let parsed: QueryAnswer =
            serde_json::from_str(&answer.body).map_err(|e| QueryError::Unreadable(e.to_string()))?;
        let records = parsed
            .records
            .into_iter()
            .map(RawRecord::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RecordsPage {
            records,
            next: (!parsed.done).then_some(parsed.next_records_url).flatten(),
            api_usage: answer.api_usage,
        })
    }

    /// The query's address on the org's own host: a `nextRecordsUrl` is taken only as a path
    /// under `/services/data/` (an answer cannot send the token to another host).
    fn query_url(&self, at: &QueryAt) -> Result<reqwest::Url, QueryError> {
        let base = reqwest::Url::parse(self.webhook_url()).map_err(|e| QueryError::Unreadable(e.to_string()))?;
        match at {
            QueryAt::Soql(soql) => {
                let mut url = base
                    .join(QUERY_PATH)
                    .map_err(|e| QueryError::Unreadable(e.to_string()))?;
                url.query_pairs_mut().append_pair("q", soql);
                Ok(url)
            }
            QueryAt::Next(path) if path.starts_with("/services/data/") && !path.contains("//") => {
                base.join(path).map_err(|e| QueryError::Unreadable(e.to_string()))
            }
            QueryAt::Next(path) => Err(QueryError::Unreadable(format!(
                "nextRecordsUrl {} is not a path on the org",
                truncate(path)
            ))),
        }
    }

    async fn get_answer(&self, url: &reqwest::Url, token: &str) -> Result<super::client::Answer, QueryError> {
        let response = self
            .http
            .get(url.clone())
            .bearer_auth(token)
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .map_err(|e| QueryError::Unreachable(error_chain(&e)))?;
        read_answer_up_to(response, PAGE_READ_LIMIT)
            .await
            .map_err(|e| QueryError::Unreachable(error_chain(&e)))
    }
}

enum QueryAt {
    Soql(String),
    Next(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salesforce_times_are_read_with_their_offset() {
        let at = parse_salesforce_time("2026-12-02T04:54:35.000+0000").unwrap();
        assert_eq!(rfc3339(at), "2026-12-02T04:54:35Z");
        assert_eq!(parse_salesforce_time("2026-12-02T04:54:35Z"), Some(at));
        assert_eq!(parse_salesforce_time("yesterday"), None);
    }

    #[test]
    fn the_query_asks_for_records_changed_since_a_second() {
        let soql = changed_since_soql(parse_salesforce_time("2026-12-02T04:54:35.900Z").unwrap());
        assert!(
            soql.ends_with("WHERE LastModifiedDate >= 2026-12-02T04:54:35Z ORDER BY LastModifiedDate"),
            "{soql}"
        );
        assert!(soql.contains(OBJECT) && soql.contains("digitalriverv3__Processed__c"));
    }
}
