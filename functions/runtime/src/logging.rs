//! How both functions log: one JSON object per line on stderr, as Lambda's advanced logging
//! controls expect of a custom runtime (a `level` key it filters on, an RFC 3339 `timestamp`, the
//! `message` at the top level), in the Lambda function and in a local run alike.

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// The filter: Lambda's `AWS_LAMBDA_LOG_LEVEL` (set by the function's logging configuration) wins,
/// then `RUST_LOG`, then `default` (e.g. `info`). Blank values count as unset.
pub fn filter_directive(
    lambda_level: Option<&str>,
    rust_log: Option<&str>,
    default: &str,
) -> String {
    let set = |v: Option<&str>| {
        v.map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    match set(lambda_level) {
        // Lambda's levels are TRACE..ERROR and FATAL; tracing stops at ERROR.
        Some(level) if level.eq_ignore_ascii_case("fatal") => "error".to_string(),
        Some(level) => level.to_ascii_lowercase(),
        None => set(rust_log).unwrap_or_else(|| default.to_string()),
    }
}

/// A subscriber writing JSON lines to `writer`, filtered by `directive`.
pub fn subscriber<W>(directive: &str, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    // A directive that does not parse falls back to `info` rather than silencing the function.
    let filter = EnvFilter::try_new(directive).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_ansi(false)
        .with_current_span(true)
        .with_span_list(false)
        .with_env_filter(filter)
        .with_writer(writer)
        .finish()
        .with(tracing_subscriber::filter::filter_fn(
            not_below_info_for_others,
        ))
}

/// Other crates (the AWS SDK, HTTP) never log below info, whatever level is asked for: their
/// debug and trace lines include signed requests, whose headers carry the function's access key
/// id and session token.
fn not_below_info_for_others(meta: &tracing::Metadata<'_>) -> bool {
    meta.target().starts_with("compliance_") || *meta.level() <= tracing::Level::INFO
}

/// Installs the JSON subscriber on stderr for the process, at `default` unless the environment
/// says otherwise (see [`filter_directive`]). A second call does nothing.
pub fn init(default: &str) {
    let var = |name: &str| std::env::var(name).ok();
    let directive = filter_directive(
        var("AWS_LAMBDA_LOG_LEVEL").as_deref(),
        var("RUST_LOG").as_deref(),
        default,
    );
    let _ = subscriber(&directive, std::io::stderr).try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Lines {
        type Writer = Lines;
        fn make_writer(&'w self) -> Lines {
            self.clone()
        }
    }

    /// At trace, the functions' own lines show and other crates' debug and trace lines (the
    /// SDK's signed requests) do not.
    #[test]
    fn other_crates_never_log_below_info() {
        let lines = Lines::default();
        let sub = subscriber("trace", lines.clone());
        tracing::subscriber::with_default(sub, || {
            tracing::trace!(target: "compliance_scanner::run", "own trace line");
            tracing::trace!(target: "aws_smithy_runtime::client", "x-amz-security-token: secret");
            tracing::debug!(target: "aws_sigv4", "canonical request with secret");
            tracing::info!(target: "aws_config", "sdk info line");
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("own trace line"), "{text}");
        assert!(text.contains("sdk info line"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }

    #[test]
    fn lambda_level_then_rust_log_then_the_default() {
        assert_eq!(
            filter_directive(Some("DEBUG"), Some("trace"), "info"),
            "debug"
        );
        assert_eq!(filter_directive(Some("FATAL"), None, "info"), "error");
        assert_eq!(
            filter_directive(Some(" "), Some("aws=debug"), "info"),
            "aws=debug"
        );
        assert_eq!(filter_directive(None, None, "warn"), "warn");
    }

    #[test]
    fn each_event_is_one_json_line_with_level_timestamp_and_message() {
        let lines = Lines::default();
        let sub = subscriber("info", lines.clone());
        tracing::subscriber::with_default(sub, || {
            tracing::debug!("filtered out");
            tracing::warn!(key = "scans/x.json", "skipping scan object");
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let events: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(events.len(), 1, "{text}");
        let e = &events[0];
        assert_eq!(e["level"], "WARN");
        assert_eq!(e["message"], "skipping scan object");
        assert_eq!(e["key"], "scans/x.json");
        let at = e["timestamp"].as_str().unwrap();
        assert!(
            time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).is_ok(),
            "{at}"
        );
    }
}
