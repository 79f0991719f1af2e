//! The EC2 compliance scanner: reads every instance and security group of the configured regions,
//! judges them with [`compliance_rules`], stores the result in S3, publishes CloudWatch metrics and
//! alerts by SNS.
//!
//! It runs as a Lambda function (`provided.al2023`) when `AWS_LAMBDA_RUNTIME_API` is set, one scan
//! per invocation, and otherwise as a CLI: `compliance-scanner scan`.

pub mod accounts;
pub mod alert;
pub mod calls;
pub mod config;
pub mod events;
pub mod fetch;
pub mod outputs;
pub mod run;
pub mod upload;

pub use compliance_runtime::retry;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lambda_runtime::{service_fn, LambdaEvent};

use crate::config::{Config, ScanArgs};
use crate::run::{run_scan_until, setup, Clients, RunReport};

/// The command line of a local run.
#[derive(Debug, Parser)]
#[command(
    name = "compliance-scanner",
    version,
    about = "Scans EC2 instances and security groups for compliance"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The CLI's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs one scan: prints the summary as JSON on stdout and one line on stderr.
    Scan(ScanArgs),
}

/// The Lambda function reads the same settings, from the environment only.
#[derive(Debug, Parser)]
struct LambdaArgs {
    #[command(flatten)]
    scan: ScanArgs,
}

/// Entry point of the binary: Lambda mode or CLI mode, by the environment.
pub async fn main_entry() -> ExitCode {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        compliance_runtime::logging::init("info");
        match lambda_main().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "lambda runtime stopped");
                ExitCode::FAILURE
            }
        }
    } else {
        // A local run prints its own summary; the log carries only what went wrong.
        compliance_runtime::logging::init("warn");
        let Command::Scan(args) = Cli::parse().command;
        cli_scan(args).await
    }
}

/// `compliance-scanner scan`: the summary JSON on stdout, one line on stderr, exit 1 on failure
/// and 2 on invalid settings.
pub async fn cli_scan(args: ScanArgs) -> ExitCode {
    let deadline = args
        .time_limit_seconds
        .map(|s| tokio::time::Instant::now() + std::time::Duration::from_secs(s));
    let (config, clients) = match setup(args).await {
        Ok(both) => both,
        Err(e) => {
            eprintln!("compliance-scanner: {e:#}");
            return ExitCode::from(2);
        }
    };
    match Box::pin(run_scan_until(&config, &clients, deadline)).await {
        Ok(report) => {
            match serde_json::to_string(&report) {
                Ok(json) => println!("{json}"),
                Err(e) => eprintln!("compliance-scanner: cannot print the summary: {e}"),
            }
            eprintln!("{}", report.human_line());
            if report.errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("compliance-scanner: scan failed, nothing stored: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Serves invocations until the runtime stops: an SQS batch goes to the event mode ([`events`]);
/// any other event is one scan (its content is not used: a schedule or a manual invoke both mean
/// "scan now"). Settings and clients are made once,
/// before the first event, and borrowed by every invocation.
async fn lambda_main() -> Result<(), lambda_runtime::Error> {
    let args = LambdaArgs::try_parse_from(["compliance-scanner"])?.scan;
    let (config, clients) = setup(args).await?;
    let (config, clients) = (&config, &clients);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            // An SQS batch carries changes (event mode); anything else means "scan now".
            if events::is_sqs_batch(&event.payload) {
                return events::serve(event.payload).await;
            }
            let deadline = run::scan_deadline(event.context.deadline);
            let report = handle(config, clients, deadline).await?;
            Ok(serde_json::to_value(report)?)
        },
    ))
    .await
}

/// One invocation: a scan, its summary as the response; a failure after the result was stored
/// fails the invocation (so the errors alarm fires) and names where the result is.
async fn handle(
    config: &Config,
    clients: &Clients,
    deadline: Option<tokio::time::Instant>,
) -> Result<RunReport, lambda_runtime::Error> {
    let report = Box::pin(run_scan_until(config, clients, deadline))
        .await
        .map_err(|e| format!("scan failed, nothing stored: {e:#}"))?;
    tracing::info!("{}", report.human_line());
    if report.errors.is_empty() {
        Ok(report)
    } else {
        Err(format!(
            "result stored at s3://{}/{} but: {}",
            report.bucket,
            report.result_key,
            report.errors.join("; ")
        )
        .into())
    }
}
