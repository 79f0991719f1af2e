//! One report, start to end: fold the day's scans, read the previous day's report for the trend,
//! store the three files, then the summary message.

use anyhow::{Context, Result};
use compliance_rules::report::{self, DayAccumulator};
use serde::Serialize;
use time::{Date, OffsetDateTime};

use crate::config::Settings;
use crate::dates::{day_prefix, format_date, generated_at};
use crate::store::{
    list_keys, put, read_event_object, read_previous_report, read_scan_object, Bucket,
};

/// The AWS clients the reporter uses, built once per process (the Lambda function serves every
/// invocation with them).
#[derive(Debug, Clone)]
pub struct Clients {
    /// S3, path-style when an endpoint override is set (emulators have no per-bucket hosts).
    pub s3: aws_sdk_s3::Client,
    /// SNS.
    pub sns: aws_sdk_sns::Client,
}

impl Clients {
    /// Builds clients from the environment (`AWS_ENDPOINT_URL` is honoured by the SDK), retrying
    /// as the scanner does ([`crate::retry`]). Fails only on an invalid `AWS_MAX_ATTEMPTS` or
    /// `AWS_RETRY_MODE`.
    pub async fn from_env() -> Result<Clients> {
        Ok(Clients::new(&crate::retry::load_sdk_config().await?))
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
    /// Active exemptions whose last day is within 14 days of the reported day.
    pub expiring_exemptions: u64,
    /// Exemptions still configured whose last day has passed.
    pub expired_exemptions: u64,
    /// Keys of `report.json`, `report.csv` and `report.html`.
    pub keys: Vec<String>,
    /// The SNS message id of the summary, when a topic is set.
    pub sns_message_id: Option<String>,
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
    let bucket = settings.bucket.as_str();
    let b = Bucket {
        s3: &clients.s3,
        name: bucket,
        owner: settings.bucket_owner.as_deref(),
    };
    let date_text = format_date(date);
    let generated_at = generated_at(now)?;
    let mut acc = DayAccumulator::new(&date_text, &generated_at);

    let keys = list_keys(b, &day_prefix("scans", date)).await?;
    tracing::info!(date = %date_text, objects = keys.len(), "folding the day's scans");
    for key in &keys {
        match read_scan_object(b, key).await? {
            Ok(scan) => acc.add_scan(key, &scan),
            Err(why) => {
                tracing::warn!(key = %key, reason = %why, "skipping scan object");
                acc.skip(key, &why);
            }
        }
    }

    // The event mode's results of the day, beside the scans.
    let events = list_keys(b, &day_prefix("events", date)).await?;
    for key in &events {
        match read_event_object(b, key).await? {
            Ok(record) => acc.add_event(&record),
            Err(why) => {
                tracing::warn!(key = %key, reason = %why, "skipping event result");
                acc.skip(key, &why);
            }
        }
    }

    let previous = match date.previous_day() {
        Some(prev) => read_previous_report(b, prev, &mut acc).await?,
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
    put(b, &json_key, json, "application/json").await?;
    let csv = report::csv::render(&report).into_bytes();
    put(b, &csv_key, csv, "text/csv; charset=utf-8").await?;
    let html = report::html::render(&report).into_bytes();
    put(b, &html_key, html, "text/html; charset=utf-8").await?;
    tracing::info!(date = %date_text, scans = report.scans_analysed, skipped = report.skipped.len(), "report stored");

    let sns_message_id = match &settings.topic_arn {
        Some(topic) => {
            let location = format!("s3://{bucket}/{html_key}");
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
        expiring_exemptions: report.expiring_exemptions().count() as u64,
        expired_exemptions: report.expired_exemptions.len() as u64,
        message: report.message,
        keys: vec![json_key, csv_key, html_key],
        sns_message_id,
    })
}
