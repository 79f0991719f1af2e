//! The bucket: listing a day's scans, reading a scan or a report as it streams in, writing a file.
//!
//! Only `NoSuchKey` reads as absent. Every other failure (throttling once the retries are spent,
//! AccessDenied, a lost connection) is an error naming the object: it says nothing about the
//! object, and skipping it would leave a scan or the trend out of a report for good.

use std::io::BufReader;

use anyhow::{anyhow, Context, Result};
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
use aws_sdk_s3::primitives::ByteStream;
use compliance_rules::report::{
    self, DailyReport, DayAccumulator, ReadScanError, REPORT_SCHEMA_VERSION,
};
use compliance_rules::result::ScanResult;
use time::Date;
use tokio_util::io::SyncIoBridge;

use crate::dates::day_prefix;

/// The results bucket as every request names it: one place that sets the expected owner, so no
/// request can leave it out.
#[derive(Debug, Clone, Copy)]
pub struct Bucket<'a> {
    /// The S3 client.
    pub s3: &'a aws_sdk_s3::Client,
    /// The bucket's name.
    pub name: &'a str,
    /// The account that must own it, sent as `ExpectedBucketOwner` (S3 answers 403 when another
    /// account does); `None`, no check.
    pub owner: Option<&'a str>,
}

impl Bucket<'_> {
    fn owner(&self) -> Option<String> {
        self.owner.map(str::to_string)
    }
}

/// Every key under `prefix`, sorted, folder markers left out.
pub async fn list_keys(b: Bucket<'_>, prefix: &str) -> Result<Vec<String>> {
    let bucket = b.name;
    let mut keys = Vec::new();
    // The paginator sends this input, owner included, for every page.
    let mut pages =
        b.s3.list_objects_v2()
            .bucket(bucket)
            .set_expected_bucket_owner(b.owner())
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

/// Fetches an object; `Ok(None)` only for `NoSuchKey`.
async fn get(b: Bucket<'_>, key: &str) -> Result<Option<GetObjectOutput>> {
    let bucket = b.name;
    let request =
        b.s3.get_object()
            .bucket(bucket)
            .set_expected_bucket_owner(b.owner())
            .key(key);
    match request.send().await {
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
pub async fn read_scan_object(
    b: Bucket<'_>,
    key: &str,
) -> Result<std::result::Result<ScanResult, String>> {
    let bucket = b.name;
    let Some(object) = get(b, key).await? else {
        return Ok(Err("missing (listed, but gone when read)".to_string()));
    };
    match decode_body(object.body, report::read_scan).await? {
        Ok(scan) => Ok(Ok(scan)),
        Err(ReadScanError::Io(e)) => Err(anyhow!("read s3://{bucket}/{key}: {e}")),
        Err(why) => Ok(Err(why.to_string())),
    }
}

/// One stored event result (`events/...json`), or (inner `Err`) why the object cannot be used.
pub async fn read_event_object(
    b: Bucket<'_>,
    key: &str,
) -> Result<std::result::Result<report::events::EventRecord, String>> {
    let Some(object) = get(b, key).await? else {
        return Ok(Err("missing (listed, but gone when read)".to_string()));
    };
    decode_body(object.body, |r| {
        serde_json::from_reader::<_, report::events::EventRecord>(r)
            .map_err(|e| format!("not an event result: {e}"))
    })
    .await
}

/// The previous day's report, for the trend. A missing one (`NoSuchKey`) is simply the first day;
/// one whose content is unusable is named among the skipped objects and the trend left out; one
/// S3 does not serve is an error, as a report without its trend would stand for good.
pub async fn read_previous_report(
    b: Bucket<'_>,
    prev: Date,
    acc: &mut DayAccumulator,
) -> Result<Option<DailyReport>> {
    let bucket = b.name;
    let key = format!("{}report.json", day_prefix("reports", prev));
    let Some(object) = get(b, &key)
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

/// Stores one file.
pub async fn put(b: Bucket<'_>, key: &str, body: Vec<u8>, content_type: &str) -> Result<()> {
    let bucket = b.name;
    b.s3.put_object()
        .bucket(bucket)
        .set_expected_bucket_owner(b.owner())
        .key(key)
        .content_type(content_type)
        .body(ByteStream::from(body))
        .send()
        .await
        .with_context(|| format!("put s3://{bucket}/{key}"))?;
    Ok(())
}
