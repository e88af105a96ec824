//! Sending one message to one channel: a chat webhook (POST, optionally signed) or email (SMTP
//! through `lettre`). Every problem is an answer in words, never a panic; no secret is in them.

use std::time::Duration;

use hmac::{Hmac, Mac};
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use super::message::Message;
use crate::settings::notify::{ChannelKind, ChannelSettings, EmailSettings, SmtpTls, WebhookFormat};
use crate::support::clock::unix_secs;
use crate::support::text::{error_chain, excerpt, redact_url};

/// How long one send may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends `message`; answers what the channel said (`answered 200`), or why it failed.
pub async fn send(
    http: &reqwest::Client,
    channel: &ChannelSettings,
    signing_secret: Option<&SecretString>,
    message: &Message,
) -> Result<String, String> {
    match &channel.kind {
        ChannelKind::Webhook { url, format } => {
            let body = match format {
                WebhookFormat::Slack => message.slack(),
                WebhookFormat::Teams => message.teams(),
                WebhookFormat::Json => message.json(),
            }
            .to_string();
            let mut request = http
                .post(url.expose_secret())
                .timeout(SEND_TIMEOUT)
                .header(reqwest::header::CONTENT_TYPE, "application/json");
            if let Some(secret) = signing_secret {
                request = request.header("X-DRSF-Signature", signature(secret, unix_secs(), &body));
            }
            let host = origin(url);
            let response = request
                .body(body)
                .send()
                .await
                .map_err(|e| format!("cannot reach {host}: {}", error_chain(&e.without_url())))?;
            let status = response.status();
            if status.is_success() {
                Ok(format!("{host} answered {}", status.as_u16()))
            } else {
                let said = response.text().await.unwrap_or_default();
                Err(format!("{host} answered {}: {}", status.as_u16(), excerpt(&said)))
            }
        }
        ChannelKind::Email(email) => send_email(email, message).await,
    }
}

/// A webhook URL as messages may name it: scheme and host only (its path often holds a token).
pub fn origin(url: &SecretString) -> String {
    redact_url(url.expose_secret())
        .split('/')
        .take(3)
        .collect::<Vec<_>>()
        .join("/")
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`, as the README documents.
pub fn signature(secret: &SecretString, at_secs: u64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()).expect("any key length");
    mac.update(format!("{at_secs}.{body}").as_bytes());
    format!("t={at_secs},v1={}", hex::encode(mac.finalize().into_bytes()))
}

fn transport(email: &EmailSettings) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let server = || format!("SMTP {}:{}", email.host, email.port);
    let tls = || -> Result<TlsParameters, String> {
        let mut parameters = TlsParameters::builder(email.host.clone());
        if let Some(pem) = &email.ca_pem {
            let ca = Certificate::from_pem(pem).map_err(|e| format!("{}: ca_file: {e}", server()))?;
            parameters = parameters.add_root_certificate(ca);
        }
        parameters.build_rustls().map_err(|e| format!("{}: {e}", server()))
    };
    let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&email.host);
    let builder = match email.tls {
        // STARTTLS required: no credentials or mail go over a connection that did not upgrade.
        SmtpTls::Starttls => builder.tls(Tls::Required(tls()?)),
        SmtpTls::Tls => builder.tls(Tls::Wrapper(tls()?)),
        SmtpTls::None => builder,
    };
    let mut builder = builder.port(email.port).timeout(Some(SEND_TIMEOUT));
    if let (Some(user), Some(password)) = (&email.username, &email.password) {
        builder = builder.credentials(Credentials::new(user.clone(), password.expose_secret().to_owned()));
    }
    Ok(builder.build())
}

async fn send_email(email: &EmailSettings, message: &Message) -> Result<String, String> {
    let server = format!("{}:{}", email.host, email.port);
    let mut builder = lettre::Message::builder()
        .from(
            email
                .from
                .parse()
                .map_err(|e| format!("notify email from `{}`: {e}", email.from))?,
        )
        .subject(message.title())
        .header(ContentType::TEXT_PLAIN);
    for to in &email.to {
        builder = builder.to(to.parse().map_err(|e| format!("notify email to `{to}`: {e}"))?);
    }
    let mail = builder.body(message.text()).map_err(|e| e.to_string())?;
    let response = transport(email)?
        .send(mail)
        .await
        .map_err(|e| format!("SMTP {server}: {}", error_chain(&e)))?;
    Ok(format!("SMTP {server} accepted it ({})", response.code()))
}

/// Whether the SMTP server answers and takes the credentials (for `check`).
pub async fn email_reachable(email: &EmailSettings) -> Result<String, String> {
    let server = format!("{}:{}", email.host, email.port);
    match transport(email)?.test_connection().await {
        Ok(true) => Ok(format!("SMTP {server} answers")),
        Ok(false) => Err(format!("SMTP {server} did not accept the connection")),
        Err(e) => Err(format!("SMTP {server}: {}", error_chain(&e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_an_hmac_of_the_time_and_the_body() {
        let secret = SecretString::from("secret".to_owned());
        let signed = signature(&secret, 1_700_000_000, "{}");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret").unwrap();
        mac.update(b"1700000000.{}");
        assert_eq!(
            signed,
            format!("t=1700000000,v1={}", hex::encode(mac.finalize().into_bytes()))
        );
    }
}
