//! The scanner's event mode: judges the resources that just changed, within a minute of the
//! change, instead of waiting for the next scheduled scan.
//!
//! An EventBridge rule sends the changes that can make an instance or a group non-compliant to an
//! SQS queue; its event source mapping invokes the function with a batch of records. Member
//! accounts forward their changes to the stack's default bus, and those are read through the
//! member role ([`clients::Context::reach`]). One invocation handles the whole batch: every id
//! across it is collected and deduplicated, EC2 is read in batches per account and region
//! ([`read`]), the scan's rules judge ([`compliance_rules::verdict::evaluate`]),
//! one result is stored, the metrics are published and one alert goes out when something is
//! non-compliant ([`handle`]). `docs/events.md` describes the stored result and the rules for
//! dropping and retrying records.

pub mod clients;
pub mod handle;
pub mod message;
pub mod output;
pub mod parse;
pub mod read;

pub use clients::Context;
pub use handle::{handle, Outcome};
pub use parse::is_sqs_batch;

use tokio::sync::OnceCell;

/// Made on the first SQS batch the process serves, so a function that only ever scans on a
/// schedule never builds it.
static CONTEXT: OnceCell<Context> = OnceCell::const_new();

/// One Lambda invocation with an SQS batch: the partial batch response
/// (`{"batchItemFailures": [...]}`), or an error when a call was refused. Boxed: the handler's
/// future is deep, and the runtime's service type would otherwise nest it once more.
pub fn serve(
    payload: serde_json::Value,
) -> futures::future::BoxFuture<'static, Result<serde_json::Value, lambda_runtime::Error>> {
    Box::pin(async move {
        let ctx = CONTEXT
            .get_or_try_init(Context::from_env)
            .await
            .map_err(|e| format!("event mode setup failed: {e:#}"))?;
        let outcome = handle(ctx, &payload)
            .await
            .map_err(|e| format!("event batch failed: {e}"))?;
        Ok(outcome.response())
    })
}
