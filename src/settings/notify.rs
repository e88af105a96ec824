//! `[notify]`: who is told when a condition an admin must act on starts, lasts and ends, and how
//! (chat webhooks, email), with the rules that keep it quiet.
//!
//! Channels are named tables, `[notify.channels.<name>]`, so that each key has an environment
//! variable too (`DRSF__NOTIFY__CHANNELS__OPS__URL`), or an array of tables, `[[notify.channels]]`
//! named by `name`. A chat webhook's URL and an SMTP password are secrets: given in the
//! environment or as a file (`url_file`, `password_file`), never in files under `config/`.

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
    /// The certificate (PEM) of a private CA the mail server's certificate is signed by, besides
    /// the public ones (`ca_file`).
    pub ca_pem: Option<Vec<u8>>,
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
        let mut channels: Vec<ChannelSettings> = Vec::new();
        for (name, prefix) in r.entries("notify.channels") {
            if channels.iter().any(|c| c.name == name) {
                r.problems.push(
                    &format!("{prefix}.name"),
                    format!("`{name}` names two channels; give each its own name"),
                );
                continue;
            }
            if let Some(channel) = read_channel(r, &name, &prefix) {
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

/// A channel's secret: its value (from the environment), or the content of `<key>_file`.
fn channel_secret(r: &mut Reader, key: &str) -> Option<SecretString> {
    let file_key = format!("{key}_file");
    let inline = r.secret(key);
    let Some(path) = r.optional_text(&file_key) else {
        return inline;
    };
    if inline.is_some() {
        r.problems
            .push(key, format!("is given both inline and as {file_key}; keep one"));
        return None;
    }
    match super::read_secret_file(std::path::Path::new(&path)) {
        Ok(content) if !content.is_empty() => Some(SecretString::from(content)),
        Ok(_) => {
            r.problems.push(&file_key, format!("{path} is empty"));
            None
        }
        Err(e) => {
            r.problems.push(&file_key, e);
            None
        }
    }
}

fn read_channel(r: &mut Reader, name: &str, prefix: &str) -> Option<ChannelSettings> {
    let key = |field: &str| format!("{prefix}.{field}");
    let kind = r.text(&key("kind"));
    let kind = match kind.trim() {
        "webhook" => {
            let url = channel_secret(r, &key("url"));
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
            let password = channel_secret(r, &key("password"));
            let from = r.optional_text(&key("from"));
            let to = r.list(&key("to"));
            let ca_pem = match r.optional_text(&key("ca_file")) {
                None => None,
                Some(path) => match std::fs::read(&path) {
                    Ok(pem) if lettre::transport::smtp::client::Certificate::from_pem(&pem).is_ok() => Some(pem),
                    Ok(_) => {
                        r.problems
                            .push(&key("ca_file"), format!("{path} holds no PEM certificate"));
                        None
                    }
                    Err(e) => {
                        r.problems.push(&key("ca_file"), format!("cannot read {path}: {e}"));
                        None
                    }
                },
            };
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
                ca_pem,
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

#[cfg(test)]
mod tests {
    use crate::settings::{LoadOptions, Purpose, load};
    use secrecy::ExposeSecret;

    /// The settings a relay would read from `toml` as its `--config` file.
    fn from_file(toml: &str) -> Result<crate::settings::Settings, Vec<(String, String)>> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("relay.toml");
        std::fs::write(&file, toml).unwrap();
        let options = LoadOptions {
            config_dir: Some(dir.path().to_owned()),
            config_file: Some(file),
            ignore_environment: true,
            ..Default::default()
        };
        let loaded = load(&options, Purpose::Store);
        drop(dir);
        loaded.map_err(|p| p.0.into_iter().map(|p| (p.key, p.message)).collect())
    }

    #[test]
    fn channels_may_be_an_array_of_tables_named_by_name_with_secrets_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let url_file = dir.path().join("url");
        std::fs::write(&url_file, "https://hooks.example.com/services/T0/B0/x\n").unwrap();
        let toml = format!(
            "[[notify.channels]]\nname = \"ops\"\nkind = \"webhook\"\nurl_file = \"{}\"\nformat = \"teams\"\n\n\
             [[notify.channels]]\nkind = \"email\"\nhost = \"smtp.example.com\"\nfrom = \"relay@example.com\"\nto = [\"admin@example.com\"]\n",
            url_file.display()
        );
        let settings = from_file(&toml).expect("valid");
        let names: Vec<&str> = settings.notify.channels.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["2", "ops"], "the unnamed one by its place");
        let super::ChannelKind::Webhook { url, format } = &settings.notify.channels[1].kind else {
            panic!("ops is a webhook");
        };
        assert_eq!(url.expose_secret(), "https://hooks.example.com/services/T0/B0/x");
        assert_eq!(*format, super::WebhookFormat::Teams);
    }

    #[test]
    fn an_array_entrys_typo_and_a_name_used_twice_are_named() {
        let toml = "[[notify.channels]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"https://hooks.example.com/a\"\nformt = \"json\"\n\n\
                    [[notify.channels]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"https://hooks.example.com/b\"\n";
        let problems = from_file(toml).expect_err("two problems");
        assert!(
            problems.iter().any(
                |(key, message)| key == "notify.channels[0].formt" && message.contains("notify.channels[0].format")
            ),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|(key, message)| key == "notify.channels[1].name" && message.contains("two channels")),
            "{problems:?}"
        );
    }
}
