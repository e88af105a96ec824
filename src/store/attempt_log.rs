//! One meaning of "attempts" for every view of an event: `events show`, the event's page and
//! the counts beside them.
//!
//! An event's `attempts` is what its retry schedule has used: the attempts *counted since the last
//! replay*. Its attempt log keeps everything that happened to it, so the two disagree unless the
//! log says why: a replay writes a marker line ([`OUTCOME_REPLAYED`]) and numbering starts again
//! after it; an attempt the org's own limits turned away (a refused sign-in, the org's concurrency
//! or daily API limit) is listed but not counted; a record read in Salesforce is no attempt.
//! [`lines`] reads a log that way once, so that each view numbers it alike and the last number
//! is always the event's `attempts`.

use super::AttemptSummary;
use super::confirm;

/// The attempt-log outcome of a replay; its `error` names who replayed it ("by the status page").
pub const OUTCOME_REPLAYED: &str = "replayed";

/// Outcomes of attempts that do not count against the retry schedule: the org's limits, not the
/// event, turned them away.
const NOT_COUNTED: [&str; 3] = ["auth_rejected", "congested", "daily_limit"];

/// What one line of an attempt log is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A counted delivery attempt: the `n`th since the event arrived or was last replayed.
    Counted(u32),
    /// A delivery attempt the org's limits turned away; not counted.
    NotCounted,
    /// The event was sent again; numbering starts over.
    Replayed,
    /// A `DR_Failed_Event__c` record read in Salesforce.
    InSalesforce,
}

/// Each line of `log` (oldest first) with what it is.
pub fn lines(log: &[AttemptSummary]) -> Vec<(Kind, &AttemptSummary)> {
    let mut counted = 0;
    log.iter()
        .map(|line| {
            let kind = match line.outcome.as_str() {
                OUTCOME_REPLAYED => {
                    counted = 0;
                    Kind::Replayed
                }
                outcome if confirm::is_record_line(outcome) => Kind::InSalesforce,
                outcome if NOT_COUNTED.contains(&outcome) => Kind::NotCounted,
                _ => {
                    counted += 1;
                    Kind::Counted(counted)
                }
            };
            (kind, line)
        })
        .collect()
}

/// The last replay in `log`, if the event was ever sent again.
pub fn last_replay(log: &[AttemptSummary]) -> Option<&AttemptSummary> {
    log.iter().rev().find(|line| line.outcome == OUTCOME_REPLAYED)
}

/// "2", or "2 counted since the replay at …" once the event was sent again: the event's
/// `attempts`, which is the number of the last attempt line.
pub fn counted(attempts: u32, log: &[AttemptSummary]) -> String {
    match last_replay(log) {
        Some(replay) => format!(
            "{attempts} counted since the replay at {}",
            crate::support::text::time(replay.at_ms)
        ),
        None => attempts.to_string(),
    }
}

/// "by the status page", from a replay line.
pub fn replayed_by(line: &AttemptSummary) -> &str {
    line.error.as_deref().unwrap_or("by an operator")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(outcome: &str) -> AttemptSummary {
        AttemptSummary {
            at_ms: 0,
            status_code: None,
            duration_ms: 0,
            outcome: outcome.into(),
            error: None,
            excerpt: None,
        }
    }

    #[test]
    fn numbering_starts_over_after_a_replay_and_skips_what_the_org_turned_away() {
        let log: Vec<_> = [
            "retry",
            "auth_rejected",
            "retry",
            "dead",
            "replayed",
            "congested",
            "delivered",
        ]
        .into_iter()
        .map(line)
        .collect();
        let kinds: Vec<Kind> = lines(&log).into_iter().map(|(kind, _)| kind).collect();
        assert_eq!(
            kinds,
            [
                Kind::Counted(1),
                Kind::NotCounted,
                Kind::Counted(2),
                Kind::Counted(3),
                Kind::Replayed,
                Kind::NotCounted,
                Kind::Counted(1),
            ]
        );
    }

    #[test]
    fn a_record_read_in_salesforce_is_no_attempt() {
        let log = [line("delivered"), line(confirm::OUTCOME_FAILED)];
        let kinds: Vec<Kind> = lines(&log).into_iter().map(|(kind, _)| kind).collect();
        assert_eq!(kinds, [Kind::Counted(1), Kind::InSalesforce]);
    }
}
