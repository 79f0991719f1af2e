//! The reporter's settings: the same names as flags (`--bucket`) or environment variables
//! (`BUCKET_NAME`). The names, their encoding and the defaults are the rules crate's
//! [`contract`](compliance_rules::contract).

use anyhow::Result;
use compliance_rules::contract::ReporterSettings;

/// Where the reporter reads and writes, and whom it tells.
pub type Settings = ReporterSettings;

/// Reads `BUCKET_NAME` and the optional `BUCKET_OWNER`, `TOPIC_ARN` and `STACK_NAME` from the
/// environment; empty or white space counts as not given (Terraform and shells pass `""`).
pub fn from_env() -> Result<Settings> {
    Ok(ReporterSettings::from_vars(|name| {
        std::env::var(name).ok()
    })?)
}
