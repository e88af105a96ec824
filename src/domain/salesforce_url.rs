use std::fmt;

use super::ServiceUrl;

/// The base URL of a Salesforce org's My Domain (`https://<name>.my.salesforce.com`, or for a
/// sandbox `https://<name>--<sandbox>.sandbox.my.salesforce.com`).
///
/// The Lightning host (`*.lightning.force.com`) is what an admin sees in the browser's address bar,
/// and the most common mistake: API calls and tokens do not work there, so it is refused with the
/// My Domain form to use instead.
#[derive(Clone, PartialEq, Eq)]
pub struct SalesforceUrl(ServiceUrl);

impl SalesforceUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = Self::parse_any(raw)?;
        if url.url().path() != "/" || url.url().query().is_some() {
            return Err(format!(
                "`{raw}` must be the bare My Domain URL without a path, such as https://acme.my.salesforce.com"
            ));
        }
        Ok(Self(url))
    }

    /// Any Salesforce URL (such as an explicit token endpoint): a [`ServiceUrl`] that is not on the
    /// Lightning host.
    pub fn parse_any(raw: &str) -> Result<ServiceUrl, String> {
        let url = ServiceUrl::parse(raw)?;
        let host = url.host().to_ascii_lowercase();
        if let Some(name) = host.strip_suffix(".lightning.force.com") {
            let my_domain = match name.strip_suffix(".sandbox") {
                Some(sandbox) => format!("https://{sandbox}.sandbox.my.salesforce.com"),
                None => format!("https://{name}.my.salesforce.com"),
            };
            return Err(format!(
                "`{raw}` is a Lightning URL (*.lightning.force.com), which the API does not serve; \
                 use the org's My Domain URL (*.my.salesforce.com), here probably {my_domain}"
            ));
        }
        Ok(url)
    }

    pub fn host(&self) -> &str {
        self.0.host()
    }

    /// Whether the host is a sandbox My Domain (`*.sandbox.my.salesforce.com`).
    pub fn is_sandbox_host(&self) -> bool {
        self.host().to_ascii_lowercase().ends_with(".sandbox.my.salesforce.com")
    }

    pub fn join_path(&self, path: &str) -> String {
        self.0.join_path(path)
    }

    pub fn as_service_url(&self) -> &ServiceUrl {
        &self.0
    }
}

impl fmt::Display for SalesforceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for SalesforceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SalesforceUrl({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lightning_urls_are_refused_naming_the_my_domain_form() {
        let err = SalesforceUrl::parse("https://acme.lightning.force.com").unwrap_err();
        assert!(err.contains("https://acme.my.salesforce.com"), "{err}");
        let err = SalesforceUrl::parse("https://acme--uat.sandbox.lightning.force.com/").unwrap_err();
        assert!(err.contains("https://acme--uat.sandbox.my.salesforce.com"), "{err}");
    }

    #[test]
    fn my_domain_urls_parse_and_know_sandboxes() {
        let prod = SalesforceUrl::parse("https://acme.my.salesforce.com/").unwrap();
        assert!(!prod.is_sandbox_host());
        assert_eq!(
            prod.join_path("/services/oauth2/token"),
            "https://acme.my.salesforce.com/services/oauth2/token"
        );
        assert!(
            SalesforceUrl::parse("https://acme--uat.sandbox.my.salesforce.com")
                .unwrap()
                .is_sandbox_host()
        );
        assert!(SalesforceUrl::parse("https://acme.my.salesforce.com/lightning/page").is_err());
    }
}
