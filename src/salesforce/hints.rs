//! What to tell the admin about each refusal of Salesforce's token endpoint: the Setup fix for
//! each answer, by grant.

use super::credentials::GrantType;

/// What to tell the admin about a token-endpoint refusal.
pub fn hint_for(error: &str, description: &str, grant: GrantType) -> String {
    let description = description.to_ascii_lowercase();
    match error {
        "invalid_grant" if description.contains("not supported on this domain") => {
            "The client-credentials grant works only on the org's My Domain host, not on login.salesforce.com or \
             test.salesforce.com: set salesforce.my_domain_url and leave salesforce.token_url unset (or point it at \
             https://<name>.my.salesforce.com/services/oauth2/token)."
                .to_owned()
        }
        "invalid_grant" if description.contains("no client credentials user") => {
            "The connected app has no Run-As user: in Setup > App Manager > the connected app > Manage > Edit \
             Policies, enable the Client Credentials Flow and choose a 'Run As' user."
                .to_owned()
        }
        "invalid_grant" if grant == GrantType::JwtBearer && description.contains("approved") => {
            "The integration user is not pre-authorized for the connected app: in Setup > App Manager > the connected \
             app > Manage > Edit Policies, set Permitted Users to \"Admin approved users are pre-authorized\", then add \
             the user's profile (Manage Profiles) or a permission set (Manage Permission Sets). Not retried \
             automatically."
                .to_owned()
        }
        "invalid_grant" if grant == GrantType::JwtBearer && description.contains("audience") => {
            "The assertion's audience is not this org's login host: it is https://test.salesforce.com for a sandbox \
             and https://login.salesforce.com for production, taken from salesforce.environment — check that it \
             names the org's kind (the token request itself may go to My Domain)."
                .to_owned()
        }
        "invalid_grant" if grant == GrantType::JwtBearer => {
            "Salesforce did not accept the signed assertion. Likely causes: the connected app's certificate \
             (\"Use digital signatures\") is not the one made with salesforce.private_key_file — upload the .crt \
             `dr-sf-bridge salesforce keygen` wrote beside the key; salesforce.username is not the integration \
             user's exact username; or this machine's clock is off (the assertion is valid for 3 minutes: check NTP). \
             Not retried automatically."
                .to_owned()
        }
        "invalid_grant" if grant == GrantType::Password => {
            "Likely causes: a wrong salesforce.username, or a salesforce.password without the user's security token \
             appended; or the org has 'Allow OAuth Username-Password Flows' switched off (Setup > OAuth and OpenID \
             Connect Settings; off by default in orgs created since Summer '23). Also check sandbox vs production \
             (salesforce.environment). Not retried automatically: repeated failures lock the user out."
                .to_owned()
        }
        "invalid_grant" => {
            "Check that the connected app enables the Client Credentials Flow with a Run-As user, and that the token \
             URL is the org's My Domain."
                .to_owned()
        }
        "invalid_client_id" if grant == GrantType::JwtBearer => {
            "salesforce.client_id (the assertion's issuer) is not a consumer key this org knows: copy the Consumer Key \
             of the connected app that holds the certificate, in this org (a sandbox has its own), and allow up to 10 \
             minutes after creating the app."
                .to_owned()
        }
        "invalid_client_id" => {
            "salesforce.client_id is not a consumer key this org knows: copy the Consumer Key from the connected app \
             of this org (a sandbox has its own), and allow up to 10 minutes after creating the app."
                .to_owned()
        }
        "invalid_client" => {
            "salesforce.client_secret does not match the consumer key: copy the Consumer Secret of the same \
             connected app."
                .to_owned()
        }
        "inactive_user" => "The integration user is inactive or frozen: reactivate it in Setup > Users.".to_owned(),
        "inactive_org" => "The org is inactive, locked or expired: check it in Setup > Company Information.".to_owned(),
        "rate_limit_exceeded" => {
            "Salesforce limits sign-ins for this user: too many token requests; wait before trying again.".to_owned()
        }
        "unsupported_grant_type" => format!(
            "This endpoint does not accept the {} grant: check salesforce.grant_type and salesforce.token_url.",
            grant.as_str()
        ),
        _ => "Check salesforce.client_id, salesforce.client_secret and, with the password grant, salesforce.username \
              and salesforce.password (password + security token)."
            .to_owned(),
    }
}

/// The password grant's end, as `check`, the relay's start-up log and the status page say it.
pub const PASSWORD_FLOW_ENDS: &str = "Salesforce stops the OAuth username-password flow for connected apps in Winter '27 \
     (enforced at each org's upgrade; one published date is 20 February 2027): this sign-in will then be refused and \
     orders stop";

/// The two ways out of the password grant.
pub const PASSWORD_FLOW_WAYS_OUT: &str = "move before then to (a) grant_type = \"client_credentials\" (DR can post \
     straight to Salesforce with it), or (b) DR → relay → Salesforce with grant_type = \"jwt_bearer\" (no shared \
     secret: `dr-sf-bridge salesforce keygen`, then `register --target relay`); the README's \"Leaving the password \
     flow\" has the steps";
