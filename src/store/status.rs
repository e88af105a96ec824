//! The statuses a stored event can have, and where it came from: one table of names, read by
//! both engines' SQL, the command line, the admin API and the status page.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    Pending,
    Delivered,
    Dead,
    Ignored,
    /// A test-mode event at a relay bound to live mode, or the reverse: kept, never delivered.
    #[value(name = "rejected_mode")]
    RejectedMode,
    /// Delivered (the DR package answered 2xx), but the package stored it as a failure record in
    /// the org: the order was not updated.
    #[value(name = "failed_in_salesforce")]
    FailedInSalesforce,
    /// Failed in Salesforce, then processed there (`Processed__c`).
    Recovered,
}

/// Every status with its name: the one table the names are read from (stored, shown, parsed).
const STATUS_NAMES: [(EventStatus, &str); 7] = [
    (EventStatus::Pending, "pending"),
    (EventStatus::Delivered, "delivered"),
    (EventStatus::Dead, "dead"),
    (EventStatus::Ignored, "ignored"),
    (EventStatus::RejectedMode, "rejected_mode"),
    (EventStatus::FailedInSalesforce, "failed_in_salesforce"),
    (EventStatus::Recovered, "recovered"),
];

/// The statuses a replay takes, as an SQL list (both engines).
pub(crate) const REPLAYABLE_SQL: &str = "'dead', 'delivered', 'failed_in_salesforce', 'recovered'";

impl EventStatus {
    pub const ALL: [EventStatus; 7] = [
        STATUS_NAMES[0].0,
        STATUS_NAMES[1].0,
        STATUS_NAMES[2].0,
        STATUS_NAMES[3].0,
        STATUS_NAMES[4].0,
        STATUS_NAMES[5].0,
        STATUS_NAMES[6].0,
    ];

    pub fn as_str(self) -> &'static str {
        STATUS_NAMES
            .iter()
            .find(|(status, _)| *status == self)
            .map(|(_, name)| *name)
            .expect("every status is in the table")
    }

    pub fn parse(raw: &str) -> Option<Self> {
        STATUS_NAMES
            .iter()
            .find(|(_, name)| *name == raw)
            .map(|(status, _)| *status)
    }

    /// Every name, for a message that lists them: `pending, delivered, ...`.
    pub fn names() -> String {
        STATUS_NAMES.map(|(_, name)| name).join(", ")
    }

    /// Whether a replay may make an event of this status pending again: only finished ones that
    /// were meant for delivery (dead, delivered, failed in Salesforce or recovered there).
    pub fn is_replayable(self) -> bool {
        matches!(
            self,
            Self::Dead | Self::Delivered | Self::FailedInSalesforce | Self::Recovered
        )
    }
}

/// Where a stored event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventSource {
    /// DR's POST to the relay.
    #[default]
    Webhook,
    /// DR's Events API, listed by `events backfill` (no signature: trusted as DR's API answer).
    Backfill,
}

impl EventSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Backfill => "backfill",
        }
    }

    /// A stored name; anything unknown was stored by the webhook (the column's default).
    pub fn parse(raw: &str) -> Self {
        if raw == "backfill" {
            Self::Backfill
        } else {
            Self::Webhook
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_is_named_once_and_read_back_from_its_name() {
        for status in EventStatus::ALL {
            assert_eq!(EventStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(
            EventStatus::names(),
            "pending, delivered, dead, ignored, rejected_mode, failed_in_salesforce, recovered"
        );
        let mut replayable: Vec<String> = EventStatus::ALL
            .iter()
            .filter(|s| s.is_replayable())
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        let mut in_sql: Vec<String> = REPLAYABLE_SQL.split(", ").map(str::to_owned).collect();
        replayable.sort();
        in_sql.sort();
        assert_eq!(in_sql, replayable, "the SQL list is the replayable statuses");
        assert_eq!(EventStatus::parse("Dead"), None);
    }
}
