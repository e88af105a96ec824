//! Errors and remote answers as one readable line, for logs, reports and the audit trail.

/// How many characters of a remote answer are kept.
pub const EXCERPT_CHARS: usize = 300;

/// An error and its causes on one line (`a: b: c`), skipping causes the text already contains.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let s = cause.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        source = cause.source();
    }
    text
}

/// The first [`EXCERPT_CHARS`] characters of a body, on one line.
pub fn excerpt(body: &str) -> String {
    let one_line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.is_empty() {
        return "(empty body)".to_owned();
    }
    truncate(&one_line)
}

/// A client's address as log lines show it: `127.0.0.1`, or `unknown` when the socket gave none.
pub fn client_address(client: Option<std::net::IpAddr>) -> String {
    client.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

/// `text` on one line (newlines and runs of spaces as one space), cut to `chars` characters with
/// `…`: Salesforce's multi-line Apex errors in a table row or a log line.
pub fn one_line(text: &str, chars: usize) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match joined.char_indices().nth(chars) {
        Some((cut, _)) => format!("{}…", &joined[..cut]),
        None => joined,
    }
}

/// `text` cut to [`EXCERPT_CHARS`] characters, with `…` when cut.
pub fn truncate(text: &str) -> String {
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// A URL fit for a message: its password (`postgres://user:pw@host`) replaced by `***`.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
            }
            // libpq-style URLs may carry the password as a parameter.
            if url.query_pairs().any(|(k, _)| k == "password") {
                let pairs: Vec<(String, String)> = url
                    .query_pairs()
                    .map(|(k, v)| {
                        let v = if k == "password" {
                            "***".to_owned()
                        } else {
                            v.into_owned()
                        };
                        (k.into_owned(), v)
                    })
                    .collect();
                url.query_pairs_mut().clear().extend_pairs(pairs);
            }
            if url.as_str() == raw {
                raw.to_owned()
            } else {
                url.to_string()
            }
        }
        // Unparsable: keep the scheme and nothing that could be a credential.
        Err(_) => match raw.split_once('@') {
            Some((_, host)) => format!("{}://***@{host}", raw.split("://").next().unwrap_or("?")),
            None => raw.to_owned(),
        },
    }
}

/// A time as the page shows it: `2026-11-30 14:02:09 UTC`.
pub fn time(ms: i64) -> String {
    let text = crate::support::clock::rfc3339(ms);
    format!("{} UTC", text.trim_end_matches('Z').replacen('T', " ", 1))
}

/// How long ago, in the largest sensible unit: `just now`, `12 min`, `3 h 5 min`, `2 days`.
pub fn age(ms: i64) -> String {
    let secs = ms.max(0) / 1000;
    match secs {
        0..60 => "under a minute".to_owned(),
        60..3600 => format!("{} min", secs / 60),
        3600..86_400 => match (secs % 3600) / 60 {
            0 => format!("{} h", secs / 3600),
            min => format!("{} h {min} min", secs / 3600),
        },
        _ => match secs / 86_400 {
            1 => "1 day".to_owned(),
            days => format!("{days} days"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_excerpt_is_one_line_and_bounded() {
        assert_eq!(excerpt("a\n  b\tc"), "a b c");
        assert_eq!(excerpt("  "), "(empty body)");
        let long = "x".repeat(EXCERPT_CHARS + 5);
        let cut = excerpt(&long);
        assert_eq!(cut.chars().count(), EXCERPT_CHARS + 1);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn a_url_password_is_never_shown() {
        let shown = redact_url("postgres://relay:S3cretPw@db.internal:5432/relay");
        assert_eq!(shown, "postgres://relay:***@db.internal:5432/relay");
        assert!(!redact_url("postgres://relay:S3cretPw@db:5432 /bad url").contains("S3cretPw"));
        assert_eq!(redact_url("sqlite:///var/lib/relay.db"), "sqlite:///var/lib/relay.db");
        let shown = redact_url("postgres://relay@db:5432/relay?sslmode=disable&password=S3cretPw");
        assert!(
            shown.contains("sslmode=disable") && shown.contains("password=***"),
            "{shown}"
        );
        assert!(!shown.contains("S3cretPw"), "{shown}");
    }

    #[test]
    fn a_cause_already_in_the_text_is_not_repeated() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer: inner")]
        struct Outer(#[source] Inner);
        #[derive(Debug, thiserror::Error)]
        #[error("inner")]
        struct Inner;
        #[derive(Debug, thiserror::Error)]
        #[error("top")]
        struct Top(#[source] Outer);
        assert_eq!(error_chain(&Top(Outer(Inner))), "top: outer: inner");
    }
}
