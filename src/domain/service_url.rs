use std::fmt;
use std::net::IpAddr;

use url::Url;

/// An absolute URL of a remote service: HTTPS, or plain HTTP only toward a loopback host (tests
/// and local runs). Credentials and tokens travel to these URLs, so anything else is refused.
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceUrl(Url);

impl ServiceUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        if !trimmed.contains("://") {
            return Err(format!(
                "`{raw}` has no scheme: add https://, as in https://{}",
                trimmed.trim_start_matches('/')
            ));
        }
        let url = Url::parse(trimmed).map_err(|e| format!("`{raw}` is not an absolute URL ({e})"))?;
        let host = url.host_str().unwrap_or_default();
        if host.is_empty() {
            return Err(format!("`{raw}` has no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials in the URL; use the dedicated keys".to_owned());
        }
        match url.scheme() {
            "https" => {}
            "http" if is_loopback_host(host) => {}
            "http" => {
                return Err(format!(
                    "`{raw}` uses plain HTTP; use https:// (plain HTTP is allowed only for loopback hosts)"
                ));
            }
            other => return Err(format!("`{raw}` has scheme `{other}`; use https://")),
        }
        Ok(Self(url))
    }

    pub fn host(&self) -> &str {
        self.0.host_str().unwrap_or_default()
    }

    pub fn url(&self) -> &Url {
        &self.0
    }

    /// The URL as text without a trailing slash, ready to have a path appended.
    pub fn base(&self) -> &str {
        self.0.as_str().trim_end_matches('/')
    }

    /// Appends `path` (which starts with `/`) to the base.
    pub fn join_path(&self, path: &str) -> String {
        format!("{}{}", self.base(), path)
    }
}

/// `localhost`, `127.0.0.0/8` and `::1`.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost") || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl fmt::Display for ServiceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.base())
    }
}

impl fmt::Debug for ServiceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServiceUrl({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_without_a_scheme_is_told_to_add_https() {
        let said = ServiceUrl::parse("acme.my.salesforce.com").unwrap_err();
        assert!(
            said.contains("add https://, as in https://acme.my.salesforce.com"),
            "{said}"
        );
        assert!(!said.contains("relative URL"), "{said}");
    }

    #[test]
    fn https_and_loopback_http_are_accepted() {
        assert!(ServiceUrl::parse("https://api.digitalriver.com").is_ok());
        assert!(ServiceUrl::parse("http://127.0.0.1:8080").is_ok());
        assert!(ServiceUrl::parse("http://localhost:1").is_ok());
        assert!(ServiceUrl::parse("http://[::1]:1").is_ok());
    }

    #[test]
    fn plain_http_to_other_hosts_and_other_schemes_are_refused() {
        assert!(
            ServiceUrl::parse("http://api.digitalriver.com")
                .unwrap_err()
                .contains("https://")
        );
        assert!(ServiceUrl::parse("ftp://example.com").is_err());
        assert!(ServiceUrl::parse("example.com").is_err());
        assert!(ServiceUrl::parse("https://user:pw@example.com").is_err());
    }
}
