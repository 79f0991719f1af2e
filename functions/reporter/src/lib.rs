//! The daily compliance reporter: reads one UTC day's scan objects from the bucket, one at a time,
//! folds them with [`compliance_rules::report`], and writes `report.json`, `report.csv` and
//! `report.html` under `reports/YYYY/MM/DD/`, with an optional one-message SNS summary.
//!
//! The same code runs as a Lambda function (when `AWS_LAMBDA_RUNTIME_API` is set) and as the CLI
//! `compliance-reporter report [--date YYYY-MM-DD]`.

use std::io::BufReader;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
use aws_sdk_s3::primitives::ByteStream;
use clap::{Parser, Subcommand};
use compliance_rules::report::{
    self, DailyReport, DayAccumulator, ReadScanError, REPORT_SCHEMA_VERSION,
};
use compliance_rules::result::ScanResult;
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime};
use tokio_util::io::SyncIoBridge;

pub use compliance_retry as retry;

/// Where the reporter reads and writes, and whom it tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The results bucket (`BUCKET_NAME`).
    pub bucket: String,
    /// The topic for the daily summary (`TOPIC_ARN`); no message when absent.
    pub topic_arn: Option<String>,
    /// The stack's name (`STACK_NAME`): names the report's stack on a day without scans, whose
    /// report would otherwise say `unknown`.
    pub stack: Option<String>,
}

impl Settings {
    /// Reads `BUCKET_NAME` and the optional `TOPIC_ARN` and `STACK_NAME` from the environment.
    pub fn from_env() -> Result<Settings> {
        let var = |name: &str| non_blank(std::env::var(name).ok());
        Ok(Settings {
            bucket: var("BUCKET_NAME").context("BUCKET_NAME is not set")?,
            topic_arn: var("TOPIC_ARN"),
            stack: var("STACK_NAME"),
        })
    }
}

/// A setting given as empty or white space counts as not given (Terraform and shells pass `""`).
fn non_blank(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// The AWS clients the reporter uses.
#[derive(Debug, Clone)]
pub struct Clients {
    /// S3, path-style when an endpoint override is set (emulators have no per-bucket hosts).
    pub s3: aws_sdk_s3::Client,
    /// SNS.
    pub sns: aws_sdk_sns::Client,
}

impl Clients {
    /// Builds clients from the environment (`AWS_ENDPOINT_URL` is honoured by the SDK), retrying
    /// as the scanner does ([`retry`]). Fails only on an invalid `AWS_MAX_ATTEMPTS` or
    /// `AWS_RETRY_MODE`.
    pub async fn from_env() -> Result<Clients> {
        Ok(Clients::new(&retry::load_sdk_config().await?))
    }

    /// Builds clients from a loaded SDK configuration.
    pub fn new(shared: &aws_config::SdkConfig) -> Clients {
        let s3 = aws_sdk_s3::config::Builder::from(shared)
            .force_path_style(shared.endpoint_url().is_some())
            .build();
        Clients {
            s3: aws_sdk_s3::Client::from_conf(s3),
            sns: aws_sdk_sns::Client::new(shared),
        }
    }
}

/// What one run did, printed by the CLI and returned by the Lambda function.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// The day reported on.
    pub date: String,
    /// Scans folded into the figures.
    pub scans_analysed: u64,
    /// Objects skipped.
    pub skipped: u64,
    /// Average compliance, when there were scans.
    pub average_compliance: Option<f64>,
    /// The report's one-sentence summary.
    pub message: String,
    /// Keys of `report.json`, `report.csv` and `report.html`.
    pub keys: Vec<String>,
    /// The SNS message id of the summary, when a topic is set.
    pub sns_message_id: Option<String>,
}

const DAY: &[time::format_description::FormatItem<'static>] =
    format_description!("[year]-[month]-[day]");

/// Reads a `YYYY-MM-DD` day.
pub fn parse_date(text: &str) -> Result<Date> {
    // The parser's own message repeats itself; the input and the expected form say enough.
    Date::parse(text.trim(), DAY).map_err(|_| anyhow!("{text:?} is not a YYYY-MM-DD date"))
}

/// Writes a day as `YYYY-MM-DD`.
pub fn format_date(date: Date) -> String {
    date.format(DAY).expect("a calendar date always formats")
}

/// Refuses a day after the UTC day of `now`: no scan can exist for it yet, and its empty report
/// would stand until that day's real one (most likely a mistyped year or month).
pub fn check_not_future(date: Date, now: OffsetDateTime) -> Result<Date> {
    let today = now.to_offset(time::UtcOffset::UTC).date();
    if date > today {
        anyhow::bail!(
            "{} is in the future (today is {} UTC): there are no scans to report on yet",
            format_date(date),
            format_date(today)
        );
    }
    Ok(date)
}

/// The UTC day before the day of `now`: the default day to report on.
pub fn previous_utc_day(now: OffsetDateTime) -> Date {
    let today = now.to_offset(time::UtcOffset::UTC).date();
    today.previous_day().unwrap_or(today)
}

/// When a report is made, as RFC 3339 UTC to the millisecond (people read it on the page).
pub fn generated_at(now: OffsetDateTime) -> Result<String> {
    let utc = now.to_offset(time::UtcOffset::UTC);
    utc.replace_millisecond(utc.millisecond())
        .unwrap_or(utc)
        .format(&Rfc3339)
        .context("format the current time")
}

/// The key prefix of one day's objects under `root` (`scans` or `reports`).
pub fn day_prefix(root: &str, date: Date) -> String {
    format!(
        "{root}/{:04}/{:02}/{:02}/",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// The day a Lambda event asks for: its `date` (backfill), else the day before the scheduled
/// event's `time` (so a delayed retry still reports the intended day), else the previous UTC day.
pub fn date_from_event(event: &serde_json::Value, now: OffsetDateTime) -> Result<Date> {
    if let Some(date) = event.get("date") {
        let text = date
            .as_str()
            .ok_or_else(|| anyhow!("the event's date must be a \"YYYY-MM-DD\" string"))?;
        return check_not_future(parse_date(text)?, now);
    }
    if let Some(at) = event.get("time").and_then(|t| t.as_str()) {
        if let Ok(at) = OffsetDateTime::parse(at, &Rfc3339) {
            return Ok(previous_utc_day(at));
        }
    }
    Ok(previous_utc_day(now))
}

/// Makes the report of `date`: lists and folds the day's scans, reads the previous day's report
/// for the trend, writes the three files, and publishes the summary when a topic is set.
///
/// Unusable scan objects (gone when read, or content that is not a scan of the day) are skipped and
/// named. Failing to list, to read or to write is an error: a throttled, refused or broken read
/// says nothing about the object, and skipping it would leave a scan out of the figures for good.
/// A failed SNS publish is an error too, after the files are stored, so the failure alarm fires.
pub async fn make_report(
    clients: &Clients,
    settings: &Settings,
    date: Date,
    now: OffsetDateTime,
) -> Result<Outcome> {
    let date_text = format_date(date);
    let generated_at = generated_at(now)?;
    let mut acc = DayAccumulator::new(&date_text, &generated_at);

    let keys = list_keys(clients, &settings.bucket, &day_prefix("scans", date)).await?;
    tracing::info!(date = %date_text, objects = keys.len(), "folding the day's scans");
    for key in &keys {
        match read_scan_object(clients, &settings.bucket, key).await? {
            Ok(scan) => acc.add_scan(key, &scan),
            Err(why) => {
                tracing::warn!(key = %key, reason = %why, "skipping scan object");
                acc.skip(key, &why);
            }
        }
    }

    let previous = match date.previous_day() {
        Some(prev) => read_previous_report(clients, &settings.bucket, prev, &mut acc).await?,
        None => None,
    };
    let mut report = acc.finish(previous.as_ref());
    drop(previous);
    if report.stack.is_none() {
        report.stack.clone_from(&settings.stack);
    }

    let prefix = day_prefix("reports", date);
    let json_key = format!("{prefix}report.json");
    let csv_key = format!("{prefix}report.csv");
    let html_key = format!("{prefix}report.html");
    let json = serde_json::to_vec_pretty(&report).context("serialise the report")?;
    put(
        clients,
        &settings.bucket,
        &json_key,
        json,
        "application/json",
    )
    .await?;
    let csv = report::csv::render(&report).into_bytes();
    put(
        clients,
        &settings.bucket,
        &csv_key,
        csv,
        "text/csv; charset=utf-8",
    )
    .await?;
    let html = report::html::render(&report).into_bytes();
    put(
        clients,
        &settings.bucket,
        &html_key,
        html,
        "text/html; charset=utf-8",
    )
    .await?;
    tracing::info!(date = %date_text, scans = report.scans_analysed, skipped = report.skipped.len(), "report stored");

    let sns_message_id = match &settings.topic_arn {
        Some(topic) => {
            let location = format!("s3://{}/{html_key}", settings.bucket);
            let sent = clients
                .sns
                .publish()
                .topic_arn(topic)
                .subject(report::summary_subject(&report))
                .message(report::summary_body(&report, &location))
                .send()
                .await
                .context("publish the daily summary (the report itself is stored)")?;
            sent.message_id
        }
        None => None,
    };

    Ok(Outcome {
        date: date_text,
        scans_analysed: report.scans_analysed,
        skipped: report.skipped.len() as u64,
        average_compliance: report.compliance.map(|c| c.average),
        message: report.message,
        keys: vec![json_key, csv_key, html_key],
        sns_message_id,
    })
}

async fn list_keys(clients: &Clients, bucket: &str, prefix: &str) -> Result<Vec<String>> {
    let mut keys = Vec::new();
    let mut pages = clients
        .s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.with_context(|| format!("list s3://{bucket}/{prefix}"))?;
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key())
                // Folder markers made by consoles are not objects anyone wrote.
                .filter(|k| !k.ends_with('/'))
                .map(str::to_string),
        );
    }
    keys.sort();
    Ok(keys)
}

/// Fetches an object; `Ok(None)` only for `NoSuchKey`. Every other failure (throttling once the
/// retries are spent, AccessDenied, a lost connection) is an error naming the object.
async fn get(clients: &Clients, bucket: &str, key: &str) -> Result<Option<GetObjectOutput>> {
    match clients.s3.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => Ok(Some(out)),
        Err(SdkError::ServiceError(e)) if matches!(e.err(), GetObjectError::NoSuchKey(_)) => {
            Ok(None)
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("get s3://{bucket}/{key}"))),
    }
}

/// Deserialises a JSON body on a blocking thread as the bytes arrive, without buffering it whole.
async fn decode_body<T, F>(body: ByteStream, decode: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(BufReader<SyncIoBridge<Box<dyn tokio::io::AsyncBufRead + Send + Unpin>>>) -> T
        + Send
        + 'static,
{
    let stream: Box<dyn tokio::io::AsyncBufRead + Send + Unpin> = Box::new(body.into_async_read());
    let bridge = SyncIoBridge::new(stream);
    tokio::task::spawn_blocking(move || decode(BufReader::with_capacity(64 * 1024, bridge)))
        .await
        .context("decoding task")
}

/// One scan object, or (inner `Err`) the reason the object itself cannot be used. S3 failing to
/// serve it, or the stream breaking, is the outer error.
async fn read_scan_object(
    clients: &Clients,
    bucket: &str,
    key: &str,
) -> Result<std::result::Result<ScanResult, String>> {
    let Some(object) = get(clients, bucket, key).await? else {
        return Ok(Err("missing (listed, but gone when read)".to_string()));
    };
    match decode_body(object.body, report::read_scan).await? {
        Ok(scan) => Ok(Ok(scan)),
        Err(ReadScanError::Io(e)) => Err(anyhow!("read s3://{bucket}/{key}: {e}")),
        Err(why) => Ok(Err(why.to_string())),
    }
}

/// The previous day's report, for the trend. A missing one (`NoSuchKey`) is simply the first day;
/// one whose content is unusable is named among the skipped objects and the trend left out; one
/// S3 does not serve is an error, as a report without its trend would stand for good.
async fn read_previous_report(
    clients: &Clients,
    bucket: &str,
    prev: Date,
    acc: &mut DayAccumulator,
) -> Result<Option<DailyReport>> {
    let key = format!("{}report.json", day_prefix("reports", prev));
    let Some(object) = get(clients, bucket, &key)
        .await
        .context("read the previous day's report for the trend")?
    else {
        return Ok(None);
    };
    let parsed = decode_body(object.body, |r| {
        serde_json::from_reader::<_, DailyReport>(r)
    })
    .await?;
    match parsed {
        Err(e) if e.is_io() => Err(anyhow!("read s3://{bucket}/{key}: {e}")),
        Ok(r) if r.schema_version == REPORT_SCHEMA_VERSION => Ok(Some(r)),
        Ok(r) => {
            acc.skip(
                &key,
                &format!(
                    "previous day's report has unknown schema_version {}; no trend",
                    r.schema_version
                ),
            );
            Ok(None)
        }
        Err(e) => {
            acc.skip(
                &key,
                &format!("previous day's report is unreadable ({e}); no trend"),
            );
            Ok(None)
        }
    }
}

async fn put(
    clients: &Clients,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
    content_type: &str,
) -> Result<()> {
    clients
        .s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type(content_type)
        .body(ByteStream::from(body))
        .send()
        .await
        .with_context(|| format!("put s3://{bucket}/{key}"))?;
    Ok(())
}

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
        #[arg(long, env = "BUCKET_NAME")]
        bucket: String,
        /// The SNS topic for the daily summary.
        #[arg(long, env = "TOPIC_ARN")]
        topic_arn: Option<String>,
        /// The stack's name, for a day without scans (scans carry their own).
        #[arg(long, env = "STACK_NAME")]
        stack: Option<String>,
    },
}

/// Runs the CLI: makes the report and prints the outcome as JSON on stdout.
pub async fn run_cli(cli: Cli) -> Result<()> {
    let Command::Report {
        date,
        bucket,
        topic_arn,
        stack,
    } = cli.command;
    let now = OffsetDateTime::now_utc();
    let date = match date {
        Some(d) => check_not_future(parse_date(&d)?, now)?,
        None => previous_utc_day(now),
    };
    let settings = Settings {
        bucket,
        topic_arn: non_blank(topic_arn),
        stack: non_blank(stack),
    };
    let clients = Clients::from_env().await?;
    let outcome = make_report(&clients, &settings, date, now).await?;
    println!("{}", serde_json::to_string(&outcome)?);
    Ok(())
}

/// Runs as a Lambda function until the runtime stops it.
pub async fn run_lambda() -> Result<()> {
    let settings = Settings::from_env()?;
    let clients = Clients::from_env().await?;
    let ctx = Arc::new((clients, settings));
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
            let ctx = Arc::clone(&ctx);
            async move {
                let now = OffsetDateTime::now_utc();
                let result = async {
                    let date = date_from_event(&event.payload, now)?;
                    make_report(&ctx.0, &ctx.1, date, now).await
                }
                .await;
                match result {
                    Ok(outcome) => Ok(serde_json::to_value(outcome)?),
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "report failed");
                        Err(lambda_runtime::Error::from(format!("{e:#}")))
                    }
                }
            }
        },
    ))
    .await
    .map_err(|e| anyhow!("lambda runtime: {e}"))
}

/// Entry point shared by the binary: Lambda mode when the runtime API is set, else the CLI.
pub async fn main_entry() -> Result<()> {
    let in_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if in_lambda {
        // CloudWatch keeps one JSON object per line; colours would be noise there.
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .init();
        run_lambda().await
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
        run_cli(Cli::parse()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn default_day_is_the_previous_utc_day() {
        assert_eq!(
            previous_utc_day(datetime!(2024-03-01 00:00:05 UTC)),
            date!(2024 - 02 - 29)
        );
        // 01:00 at +02:00 is still the previous UTC day's 23:00.
        assert_eq!(
            previous_utc_day(datetime!(2024-03-01 01:00 +02:00)),
            date!(2024 - 02 - 28)
        );
    }

    #[test]
    fn event_date_wins_then_schedule_time_then_now() {
        let now = datetime!(2024-06-10 12:00 UTC);
        let ev = serde_json::json!({"date": "2024-01-15"});
        assert_eq!(date_from_event(&ev, now).unwrap(), date!(2024 - 01 - 15));
        let scheduled =
            serde_json::json!({"detail-type": "Scheduled Event", "time": "2024-06-09T00:00:00Z"});
        assert_eq!(
            date_from_event(&scheduled, now).unwrap(),
            date!(2024 - 06 - 08)
        );
        assert_eq!(
            date_from_event(&serde_json::json!({}), now).unwrap(),
            date!(2024 - 06 - 09)
        );
        assert!(date_from_event(&serde_json::json!({"date": "15/01/2024"}), now).is_err());
        assert!(date_from_event(&serde_json::json!({"date": 20240115}), now).is_err());
        // Today is allowed (a partial day, by hand); tomorrow names no scan that can exist.
        let today = serde_json::json!({"date": "2024-06-10"});
        assert_eq!(date_from_event(&today, now).unwrap(), date!(2024 - 06 - 10));
        let future = date_from_event(&serde_json::json!({"date": "2204-06-11"}), now);
        assert_eq!(
            future.unwrap_err().to_string(),
            "2204-06-11 is in the future (today is 2024-06-10 UTC): there are no scans to report on yet"
        );
    }

    #[test]
    fn generated_at_is_utc_to_the_millisecond() {
        assert_eq!(
            generated_at(datetime!(2024-05-03 02:00:04.123456789 +02:00)).unwrap(),
            "2024-05-03T00:00:04.123Z"
        );
    }

    #[test]
    fn prefixes_are_zero_padded() {
        assert_eq!(
            day_prefix("scans", date!(2024 - 02 - 03)),
            "scans/2024/02/03/"
        );
    }
}
