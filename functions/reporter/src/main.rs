//! `compliance-reporter`: the Lambda bootstrap and local CLI; all logic lives in the library.

// The AWS SDK's nested futures make the entry future deeper than rustc's default limit.
#![recursion_limit = "256"]

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match compliance_reporter::main_entry().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compliance-reporter: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
