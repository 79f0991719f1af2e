//! The `compliance-scanner` binary: Lambda function or CLI (see the library).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    compliance_scanner::main_entry().await
}
