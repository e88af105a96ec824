//! `[notify]`: who is told when a condition an admin must act on starts, lasts and ends, and how
//! (chat webhooks, email), with the rules that keep it quiet.
//!
//! Channels are named tables, `[notify.channels.<name>]`, so that each key has an environment
//! variable too (`DRSF__NOTIFY__CHANNELS__OPS__URL`): a chat webhook's URL and an SMTP password
//! are secrets, and secrets are given in the environment, never in files under `config/`.

use std::time::Duration;

use secrecy::SecretString;

use super::problems::Reader;

#[derive(Debug, Clone)]
pub struct NotifySettings {
    /// Time between looks at the relay's conditions (seconds in the configuration).
    pub check_interval: Duration,
    /// Deliveries failing this long are told (seconds in the configuration).
    pub failing_after: Duration,
    /// Events that died within this window are told in one message (seconds in the configuration).
    pub dead_window: Duration,
    /// A condition that lasts is told again after this long (seconds in the configuration).
    pub repeat_after: Duration,
    /// A condition must hold this long before it is told, so that a flap is not (seconds in the
    /// configuration); sign-in refused, the store unavailable and DR's webhook disabled go at once.
    pub min_duration: Duration,
    /// Messages per channel and hour at most.
    pub max_per_hour: u32,
    /// Signs webhook messages (`X-DRSF-Signature`), when set.
    pub signing_secret: Option<SecretString>,
    pub channels: Vec<ChannelSettings>,
}

#[derive(Debug, Clone)]
pub struct ChannelSettings {
    /// The table's name: `ops` for `[notify.channels.ops]`.
    pub name: String,
    pub kind: ChannelKind,
}

#[derive(Debug, Clone)]
pub enum ChannelKind {
    /// A POST of a JSON message.
    Webhook { url: SecretString, format: WebhookFormat },
    /// SMTP.
    Email(EmailSettings),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// `{"text", "blocks"}`: Slack's incoming webhooks, and chat tools that take its shape.
    Slack,
    /// A MessageCard for a Microsoft Teams incoming webhook.
    Teams,
    /// The relay's own schema (README, "Notifications").
    Json,
}

#[derive(Debug, Clone)]
pub struct EmailSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub from: String,
    pub to: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a mail relay on this machine or its private network.
    None,
}

impl NotifySettings {
    pub(super) fn read(r: &mut Reader) -> Self {
        let secs = |r: &mut Reader, key: &str| -> Duration {
            let value: u64 = r.get(key);
            Duration::from_secs(value)
        };
        let check_interval = secs(r, "notify.check_interval_secs").max(Duration::from_secs(1));
        let failing_after = secs(r, "notify.failing_after_secs");
        let dead_window = secs(r, "notify.dead_window_secs").max(Duration::from_secs(1));
        let repeat_after = secs(r, "notify.repeat_after_secs").max(Duration::from_secs(60));
        let min_duration = secs(r, "notify.min_duration_secs");
        let max_per_hour: u32 = r.get("notify.max_per_hour");
        r.problems.positive("notify.max_per_hour", u64::from(max_per_hour));
        let signing_secret = r.secret("notify.signing_secret");
        let mut channels = Vec::new();
        for name in r.table_keys("notify.channels") {
            if let Some(channel) = read_channel(r, &name) {
                channels.push(channel);
            }
        }
        channels.sort_by(|a, b| a.name.cmp(&b.name));
        NotifySettings {
            check_interval,
            failing_after,
            dead_window,
            repeat_after,
            min_duration,
            max_per_hour: max_per_hour.max(1),
            signing_secret,
            channels,
        }
    }
}

fn read_channel(r: &mut Reader, name: &str) -> Option<ChannelSettings> {
    let key = |field: &str| format!("notify.channels.{name}.{field}");
    let kind = r.text(&key("kind"));
    let kind = match kind.trim() {
        "webhook" => {
            let url = r.secret(&key("url"));
            let format = if r.is_set(&key("format")) {
                r.one_of(&key("format"), "`slack`, `teams`, `json`")
            } else {
                Some(WebhookFormat::Slack)
            };
            let url = match url {
                Some(url) => url,
                None => {
                    r.problems.push(
                        &key("url"),
                        "is required for a webhook channel (the chat tool's incoming webhook URL)",
                    );
                    return None;
                }
            };
            use secrecy::ExposeSecret;
            match reqwest::Url::parse(url.expose_secret()) {
                Ok(parsed) if matches!(parsed.scheme(), "https" | "http") => {}
                _ => {
                    r.problems.push(&key("url"), "must be an https:// URL");
                    return None;
                }
            }
            ChannelKind::Webhook { url, format: format? }
        }
        "email" => {
            let host = r.optional_text(&key("host"));
            let tls: Option<SmtpTls> = if r.is_set(&key("tls")) {
                r.one_of(&key("tls"), "`starttls`, `tls`, `none`")
            } else {
                Some(SmtpTls::Starttls)
            };
            let port: Option<u16> = r.get(&key("port"));
            let username = r.optional_text(&key("username"));
            let password = r.secret(&key("password"));
            let from = r.optional_text(&key("from"));
            let to = r.list(&key("to"));
            for (field, missing) in [
                ("host", host.is_none()),
                ("from", from.is_none()),
                ("to", to.is_empty()),
            ] {
                if missing {
                    r.problems.push(&key(field), "is required for an email channel");
                }
            }
            let tls = tls?;
            let port = port.unwrap_or(match tls {
                SmtpTls::Tls => 465,
                SmtpTls::Starttls => 587,
                SmtpTls::None => 25,
            });
            ChannelKind::Email(EmailSettings {
                host: host?,
                port,
                tls,
                username,
                password,
                from: from?,
                to,
            })
        }
        other => {
            r.problems.push(
                &key("kind"),
                format!("`{}` is not one of `webhook`, `email`", other.trim()),
            );
            return None;
        }
    };
    Some(ChannelSettings {
        name: name.to_owned(),
        kind,
    })
}
