//! `compliance-reporter`: the Lambda bootstrap and local CLI; all logic lives in the library.

// The AWS SDK's nested futures make the entry future deeper than rustc's default limit.
#![recursion_limit = "256"]

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    compliance_reporter::main_entry().await
}
