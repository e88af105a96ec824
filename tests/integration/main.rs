//! Integration tests: the real binary and library against stand-ins for Digital River and
//! Salesforce that answer like the real services (see ../shared/reference/).

mod backfill;
mod bad_input;
mod check;
mod events;
mod first_run;
mod helpers;
mod modes;
mod pacing;
mod pg;
mod pg_proxy;
mod properties;
mod register;
mod relay_admin;
mod relay_connections;
mod relay_delivery;
mod relay_disk_full;
mod relay_helpers;
mod relay_ingress;
mod relay_oauth;
mod relay_postgres;
mod relay_process;
mod salesforce_auth;
mod salesforce_delivery;
mod salesforce_standin;
mod secrets_audit;
mod sign_in_safety;
mod soak;
mod status_page;
mod store_contract;
mod store_copy;
mod store_postgres;
mod store_upgrade;
mod validation;
mod webhooks;
mod worker_step;
