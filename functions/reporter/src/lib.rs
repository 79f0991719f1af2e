//! The daily compliance reporter: reads one UTC day's scan objects from the bucket, one at a time,
//! folds them with [`compliance_rules::report`], and writes `report.json`, `report.csv` and
//! `report.html` under `reports/YYYY/MM/DD/`, with an optional one-message SNS summary.
//!
//! The same code runs as a Lambda function (when `AWS_LAMBDA_RUNTIME_API` is set) and as the CLI
//! `compliance-reporter report [--date YYYY-MM-DD]`.

pub mod config;
pub mod dates;
pub mod run;
pub mod store;

pub use compliance_runtime::retry;

pub use crate::config::Settings;
pub use crate::dates::{
    check_not_future, date_from_event, day_prefix, format_date, generated_at, parse_date,
    previous_utc_day,
};
pub use crate::run::{make_report, Clients, Outcome};

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use compliance_rules::contract::{self, ReporterSettings};
use lambda_runtime::{service_fn, LambdaEvent};
use time::OffsetDateTime;

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "compliance-reporter",
    version,
    about = "The daily EC2 compliance report"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Report on one UTC day's scans (default: the previous UTC day).
    Report {
        /// The day, YYYY-MM-DD.
        #[arg(long)]
        date: Option<String>,
        /// The results bucket.
        #[arg(long, env = contract::BUCKET_NAME)]
        bucket: String,
        /// Account id (12 digits) that must own the bucket; every S3 request is refused (403)
        /// when another account owns it. Without one, no check.
        #[arg(long, env = contract::BUCKET_OWNER)]
        bucket_owner: Option<String>,
        /// The SNS topic for the daily summary.
        #[arg(long, env = contract::TOPIC_ARN)]
        topic_arn: Option<String>,
        /// The stack's name, for a day without scans (scans carry their own).
        #[arg(long, env = contract::STACK_NAME)]
        stack: Option<String>,
    },
}

/// Entry point of the binary: Lambda mode when the runtime API is set, else the CLI.
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
        compliance_runtime::logging::init("info");
        match run_cli(Cli::parse()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("compliance-reporter: {e:#}");
                ExitCode::FAILURE
            }
        }
    }
}

/// Runs the CLI: makes the report and prints the outcome as JSON on stdout.
pub async fn run_cli(cli: Cli) -> Result<()> {
    let Command::Report {
        date,
        bucket,
        bucket_owner,
        topic_arn,
        stack,
    } = cli.command;
    let now = OffsetDateTime::now_utc();
    let date = match date {
        Some(d) => check_not_future(parse_date(&d)?, now)?,
        None => previous_utc_day(now),
    };
    // The flags read through the contract, as the environment does: blank means not given.
    let settings = ReporterSettings::from_vars(|name| match name {
        contract::BUCKET_NAME => Some(bucket.clone()),
        contract::BUCKET_OWNER => bucket_owner.clone(),
        contract::TOPIC_ARN => topic_arn.clone(),
        contract::STACK_NAME => stack.clone(),
        _ => None,
    })?;
    let clients = Clients::from_env().await?;
    let outcome = make_report(&clients, &settings, date, now).await?;
    println!("{}", serde_json::to_string(&outcome)?);
    Ok(())
}

/// Serves invocations until the runtime stops: one report per event, of the day the event names
/// ([`date_from_event`]). Settings and clients are made once, before the first event, and
/// borrowed by every invocation.
async fn lambda_main() -> Result<(), lambda_runtime::Error> {
    let settings = config::from_env()?;
    let clients = Clients::from_env().await?;
    let (settings, clients) = (&settings, &clients);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            handle(clients, settings, &event.payload).await
        },
    ))
    .await
}

/// One invocation: the report's outcome as the response; a failure fails the invocation (so the
/// failure alarm fires) with the reason.
async fn handle(
    clients: &Clients,
    settings: &Settings,
    event: &serde_json::Value,
) -> Result<serde_json::Value, lambda_runtime::Error> {
    let now = OffsetDateTime::now_utc();
    let made = async {
        let date = date_from_event(event, now)?;
        make_report(clients, settings, date, now).await
    };
    match made.await {
        Ok(outcome) => Ok(serde_json::to_value(outcome)?),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "report failed");
            Err(lambda_runtime::Error::from(format!("{e:#}")))
        }
    }
}
