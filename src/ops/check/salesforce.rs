//! `check`'s Salesforce lines: the token, the DR package's Apex resource, and read access to
//! the package's failure records.

use super::{CheckLine, Status, line};
use crate::salesforce::failed_events::{OBJECT, QueryError};
use crate::salesforce::{ApexClient, AuthError, GrantType, PASSWORD_FLOW_ENDS, PASSWORD_FLOW_WAYS_OUT};
use crate::settings::{SalesforceSettings, Settings};

pub(super) async fn check_salesforce(
    sf: &SalesforceSettings,
    settings: &Settings,
    tag: &str,
    checks: &mut Vec<CheckLine>,
) {
    let client = match sf.apex_client(
        &settings.delivery,
        Default::default(),
        Vec::new(),
        &crate::support::clock::Clock::system(),
    ) {
        Ok(client) => client,
        Err(e) => {
            checks.push(line("Salesforce token", Status::Fail, format!("{tag}{e}"), None));
            checks.push(line(
                "Apex REST resource",
                Status::Skip,
                "not checked: no Salesforce client",
                None,
            ));
            return;
        }
    };
    let auth = client.tokens().auth();
    let grant = auth.grant_type().as_str();
    let host = auth.token_url().host().to_owned();
    if auth.grant_type() == GrantType::Password {
        checks.push(line(
            "password flow",
            Status::Warn,
            format!("{tag}{PASSWORD_FLOW_ENDS}"),
            Some(PASSWORD_FLOW_WAYS_OUT.to_owned()),
        ));
    }
    match client.tokens().get().await {
        Ok(token) => checks.push(line(
            "Salesforce token",
            Status::Pass,
            format!(
                "{tag}{grant} grant at {host}{}; instance {}",
                auth.signed_in_key()
                    .map(|key| format!(" signed with {key}"))
                    .unwrap_or_default(),
                token.instance_url.as_deref().unwrap_or("(not given)")
            ),
            None,
        )),
        Err(e) => {
            let fix = match &e {
                AuthError::Rejected { hint, .. } => hint.clone(),
                AuthError::Unavailable { .. } => format!(
                    "check the network path to Salesforce and {}; try again later",
                    sf.key("token_url")
                ),
            };
            checks.push(line("Salesforce token", Status::Fail, format!("{tag}{e}"), Some(fix)));
            checks.push(line(
                "Apex REST resource",
                Status::Skip,
                "not checked: no Salesforce token",
                None,
            ));
            return;
        }
    }
    let url = client.webhook_url().to_owned();
    checks.push(match client.probe().await {
        Ok((405, _)) | Ok((200..=299, _)) => line(
            "Apex REST resource",
            Status::Pass,
            format!("{tag}{url} exists (the DR package is installed)"),
            None,
        ),
        Ok((404, said)) => line(
            "Apex REST resource",
            Status::Fail,
            format!("{tag}{url} answered 404 {}", said.unwrap_or_default())
                .trim_end()
                .to_owned(),
            Some(format!(
                "install the Digital River app (namespace digitalriverv3) in this org, or correct {}",
                sf.key("webhook_path")
            )),
        ),
        Ok((401, _)) => line(
            "Apex REST resource",
            Status::Fail,
            format!("{tag}{url} answered 401 with a fresh token"),
            Some("give the integration user access to the DR package's Apex classes (permission set)".into()),
        ),
        Ok((status, said)) => line(
            "Apex REST resource",
            Status::Fail,
            format!("{tag}{url} answered {status} {}", said.unwrap_or_default())
                .trim_end()
                .to_owned(),
            Some(format!(
                "check {} and {}",
                sf.key("my_domain_url"),
                sf.key("webhook_path")
            )),
        ),
        Err(e) => line(
            "Apex REST resource",
            Status::Fail,
            format!("{tag}{e}"),
            Some(format!("check {}", sf.key("my_domain_url"))),
        ),
    });
    if settings.confirm.enabled {
        checks.push(failure_records(&client, tag).await);
    }
}

/// Whether the relay can read the DR package's failure records (one `LIMIT 1` query).
async fn failure_records(client: &ApexClient, tag: &str) -> CheckLine {
    match client.failed_events_readable().await {
        Ok(()) => line(
            "DR failure records",
            Status::Pass,
            format!("{tag}{OBJECT} is readable: events the package keeps as failures are marked failed_in_salesforce"),
            None,
        ),
        Err(QueryError::NotReadable { message }) => line(
            "DR failure records",
            Status::Fail,
            format!(
                "{tag}the integration user cannot read {OBJECT}: Salesforce answered INVALID_TYPE ({})",
                crate::support::text::one_line(&message, usize::MAX)
            ),
            Some(
                "in Setup, give the integration user read access to the DR Failed Event object with a permission set \
                 (Object Settings → DR Failed Events → Read), or set confirm.enabled = false"
                    .into(),
            ),
        ),
        Err(e) => line(
            "DR failure records",
            Status::Warn,
            format!("{tag}{e}"),
            Some("the relay tries again at every sweep; deliveries do not wait for it".into()),
        ),
    }
}
