//! `[telemetry]`: traces over OpenTelemetry (OTLP/HTTP), off unless a collector is named. Logs
//! and metrics need no setting: they are always on (stderr, `/metrics`).

use super::problems::Reader;

#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    /// The collector's OTLP/HTTP base URL (`http://otel-collector:4318`; spans go to
    /// `{endpoint}/v1/traces`); `None`: no traces are made or sent.
    pub otlp_endpoint: Option<url::Url>,
    /// The share of events traced, 0.0 to 1.0 (a trace sent by a proxy in front keeps its own
    /// decision).
    pub sample_ratio: f64,
    /// `service.name` of every span.
    pub service_name: String,
    /// `service.instance.id`: which relay process made a span; the host name when empty.
    pub instance: Option<String>,
    /// `drsf.modes`: the DR modes the relay delivers (`test`, `live`), from `[salesforce]`.
    pub modes: Vec<crate::domain::Mode>,
}

impl TelemetrySettings {
    pub(super) fn read(r: &mut Reader) -> Self {
        let sample_ratio: f64 = r.get("telemetry.sample_ratio");
        let service_name = r
            .optional_text("telemetry.service_name")
            .unwrap_or_else(|| "dr-sf-bridge".to_owned());
        let instance = r.optional_text("telemetry.instance");
        let otlp_endpoint = r.parse("telemetry.otlp_endpoint", parse_endpoint);
        if !(0.0..=1.0).contains(&sample_ratio) {
            r.problems.push(
                "telemetry.sample_ratio",
                format!("{sample_ratio} is not a share: give 0.0 (none) to 1.0 (every event)"),
            );
        }
        TelemetrySettings {
            otlp_endpoint,
            sample_ratio: sample_ratio.clamp(0.0, 1.0),
            service_name,
            instance,
            modes: Vec::new(),
        }
    }
}

fn parse_endpoint(raw: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(raw).map_err(|e| match e {
        url::ParseError::RelativeUrlWithoutBase => {
            format!("`{raw}` is not a URL: add http:// (e.g. http://otel-collector:4318)")
        }
        e => format!("`{raw}` is not a URL: {e}"),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "`{raw}` must start with http:// or https:// (OTLP over HTTP): add http://"
        ));
    }
    if url.password().is_some() || url.username() != "" {
        return Err("must not carry credentials in the URL".into());
    }
    Ok(url)
}
