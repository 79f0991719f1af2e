//! Logs as hclog-style JSON lines on stderr, which Terraform shows at their level under
//! `TF_LOG_PROVIDER` / `TF_LOG`.

use std::io::Write;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// The level asked for by `TF_LOG_PROVIDER`, else `TF_LOG` (`JSON` means trace); `None` is off.
/// Unset means warnings and errors only.
pub fn level_from_env() -> Option<Level> {
    let raw = std::env::var("TF_LOG_PROVIDER")
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| std::env::var("TF_LOG").ok().filter(|v| !v.is_empty()));
    match raw.as_deref().map(str::to_ascii_uppercase).as_deref() {
        None => Some(Level::WARN),
        Some("TRACE" | "JSON") => Some(Level::TRACE),
        Some("DEBUG") => Some(Level::DEBUG),
        Some("INFO") => Some(Level::INFO),
        Some("WARN") => Some(Level::WARN),
        Some("ERROR") => Some(Level::ERROR),
        Some("OFF") => None,
        Some(_) => Some(Level::TRACE),
    }
}

/// Installs the JSON-lines logger as the global `tracing` subscriber.
pub fn init() {
    let layer = HclogLayer {
        level: level_from_env(),
    };
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

struct HclogLayer {
    level: Option<Level>,
}

impl HclogLayer {
    fn enabled_for(&self, level: &Level, target: &str) -> bool {
        let Some(max) = self.level else { return false };
        // Other crates (AWS SDK, HTTP, gRPC) never log below info, whatever level is asked for:
        // the SDK's debug and trace lines include signed requests, whose headers carry the
        // access key id and the session token.
        let ours = target.starts_with("terraform_provider_compliance");
        let max = if ours { max } else { max.min(Level::INFO) };
        *level <= max
    }
}

impl<S: Subscriber> Layer<S> for HclogLayer {
    fn enabled(&self, metadata: &tracing::Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        self.enabled_for(metadata.level(), metadata.target())
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut fields = serde_json::Map::new();
        let mut visitor = JsonVisitor(&mut fields);
        event.record(&mut visitor);
        let message = fields
            .remove("message")
            .and_then(|m| m.as_str().map(str::to_string))
            .unwrap_or_default();
        let mut line = serde_json::Map::new();
        line.insert("@level".into(), level_name(meta.level()).into());
        line.insert("@message".into(), message.into());
        line.insert("@module".into(), "provider.compliance".into());
        line.insert("@timestamp".into(), timestamp().into());
        line.insert("target".into(), meta.target().into());
        line.extend(fields);
        let mut text = serde_json::Value::Object(line).to_string();
        text.push('\n');
        // One write per line so lines from concurrent tasks never interleave.
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

fn timestamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.microsecond()
    )
}

struct JsonVisitor<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_crates_never_log_below_info_at_any_level() {
        let at = |level| HclogLayer { level: Some(level) };
        for asked in [Level::TRACE, Level::DEBUG, Level::INFO] {
            let layer = at(asked);
            for target in ["aws_smithy_runtime::client::orchestrator", "hyper", "h2"] {
                assert!(
                    !layer.enabled_for(&Level::TRACE, target),
                    "{asked} {target}"
                );
                assert!(
                    !layer.enabled_for(&Level::DEBUG, target),
                    "{asked} {target}"
                );
                assert!(layer.enabled_for(&Level::INFO, target), "{asked} {target}");
            }
        }
        let ours = "terraform_provider_compliance::aws::functions";
        assert!(at(Level::TRACE).enabled_for(&Level::TRACE, ours));
        assert!(!at(Level::WARN).enabled_for(&Level::INFO, ours));
        assert!(!HclogLayer { level: None }.enabled_for(&Level::ERROR, ours));
    }
}
