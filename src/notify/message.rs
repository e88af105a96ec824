//! A notification and its shapes: Slack's `text` + `blocks`, a Teams MessageCard, the relay's own
//! JSON, and plain text for email. Each says what happened, since when, what it means for
//! orders, what to do, and where the status page is.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::conditions::Level;
use crate::support::text::{age, time};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// A condition began (and held past `notify.min_duration`).
    Started,
    /// It still holds after `notify.repeat_after`.
    Reminder,
    /// It ended.
    Resolved,
    /// Events died within `notify.dead_window`.
    DeadEvents,
    /// `notify test`.
    Test,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub kind: MessageKind,
    /// The condition's key (`sign_in_refused.test`, ...), or `dead_events`, `test`.
    pub key: String,
    pub level: Level,
    pub headline: String,
    pub detail: String,
    pub since_ms: i64,
    /// How long it lasted (resolved messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lasted_ms: Option<i64>,
    /// The status page (from `relay.public_url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    pub at_ms: i64,
}

impl Message {
    /// The first line: what kind of message, and the headline.
    pub fn title(&self) -> String {
        match self.kind {
            MessageKind::Started | MessageKind::DeadEvents => format!("[dr-sf-bridge] {}", self.headline),
            MessageKind::Reminder => format!("[dr-sf-bridge] Still: {}", self.headline),
            MessageKind::Resolved => format!(
                "[dr-sf-bridge] Resolved after {}: {}",
                age(self.lasted_ms.unwrap_or(0)),
                self.headline
            ),
            MessageKind::Test => "[dr-sf-bridge] Test message: notifications reach this channel".to_owned(),
        }
    }

    /// What the message says below its title.
    pub fn body_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        match self.kind {
            MessageKind::Resolved => lines.push(format!(
                "It began {} and ended {}: nothing more to do.",
                time(self.since_ms),
                time(self.at_ms)
            )),
            MessageKind::Test => lines.push("Sent by `dr-sf-bridge notify test`; nothing is wrong.".to_owned()),
            _ => {
                lines.push(self.detail.clone());
                lines.push(format!(
                    "Since {} ({} ago).",
                    time(self.since_ms),
                    age(self.at_ms - self.since_ms)
                ));
            }
        }
        if let Some(link) = &self.link {
            lines.push(format!("Status page: {link}"));
        }
        lines
    }

    /// Plain text, for email.
    pub fn text(&self) -> String {
        let mut text = self.title();
        text.push_str("\n\n");
        text.push_str(&self.body_lines().join("\n"));
        text.push('\n');
        text
    }

    /// `{"text", "blocks"}` for Slack's incoming webhooks.
    pub fn slack(&self) -> Value {
        let mut body = format!("*{}*\n{}", self.title(), self.body_lines().join("\n"));
        if let Some(link) = &self.link {
            body = body.replace(
                &format!("Status page: {link}"),
                &format!("<{link}|Open the status page>"),
            );
        }
        json!({
            "text": self.title(),
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": body}}],
        })
    }

    /// A MessageCard for a Teams incoming webhook.
    pub fn teams(&self) -> Value {
        let colour = match (self.kind, self.level) {
            (MessageKind::Resolved | MessageKind::Test, _) => "2E7D32",
            (_, Level::Bad) => "C62828",
            _ => "F9A825",
        };
        let mut card = json!({
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": self.title(),
            "themeColor": colour,
            "title": self.title(),
            "text": self.body_lines().join("\n\n"),
        });
        if let Some(link) = &self.link {
            card["potentialAction"] = json!([{
                "@type": "OpenUri",
                "name": "Open the status page",
                "targets": [{"os": "default", "uri": link}],
            }]);
        }
        card
    }

    /// The relay's own schema (`format = "json"`).
    pub fn json(&self) -> Value {
        json!({
            "schema": "drsf.notification.v1",
            "kind": self.kind,
            "key": self.key,
            "level": self.level,
            "title": self.title(),
            "headline": self.headline,
            "detail": self.detail,
            "sinceMs": self.since_ms,
            "lastedMs": self.lasted_ms,
            "link": self.link,
            "atMs": self.at_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: MessageKind) -> Message {
        Message {
            kind,
            key: "failing.test".into(),
            level: Level::Bad,
            headline: "Salesforce failing since 2026-12-02 04:00:00 UTC (12 min ago)".into(),
            detail: "Events wait and are retried; nothing is lost.".into(),
            since_ms: 1_796_184_000_000,
            lasted_ms: (kind == MessageKind::Resolved).then_some(720_000),
            link: Some("https://relay.acme.com/ui/".into()),
            at_ms: 1_796_184_720_000,
        }
    }

    #[test]
    fn every_shape_says_what_happened_what_it_means_and_where_to_look() {
        let started = message(MessageKind::Started);
        let slack = started.slack();
        assert!(slack["text"].as_str().unwrap().contains("Salesforce failing"));
        let block = slack["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(
            block.contains("nothing is lost") && block.contains("<https://relay.acme.com/ui/|Open the status page>")
        );
        let teams = started.teams();
        assert_eq!(teams["@type"], "MessageCard");
        assert_eq!(teams["themeColor"], "C62828");
        assert_eq!(
            teams["potentialAction"][0]["targets"][0]["uri"],
            "https://relay.acme.com/ui/"
        );
        let json = started.json();
        assert_eq!(json["schema"], "drsf.notification.v1");
        assert_eq!(json["kind"], "started");
        assert_eq!(json["key"], "failing.test");
        let text = started.text();
        assert!(text.starts_with("[dr-sf-bridge] Salesforce failing") && text.contains("Since 2026-12-02"));
    }

    #[test]
    fn a_resolved_message_says_how_long_it_lasted() {
        let resolved = message(MessageKind::Resolved);
        assert!(
            resolved.title().starts_with("[dr-sf-bridge] Resolved after 12 min:"),
            "{}",
            resolved.title()
        );
        assert_eq!(resolved.teams()["themeColor"], "2E7D32");
        assert!(resolved.text().contains("nothing more to do"));
    }
}
