//! Finding a stack's newest stored scan result. Keys are
//! `scans/YYYY/MM/DD/<UTC start, ISO 8601 basic>.json`, so the greatest key is the newest, and a
//! month's prefix bounds each listing: a plan lists one or two months, not the whole history.

use aws_sdk_s3::Client;
use compliance_rules::result::{ScanResult, SCAN_SCHEMA_VERSION};
use time::{Date, Month};
use tokio_util::sync::CancellationToken;

use crate::aws::{codes, describe, is_code};

/// How far back the search goes: results older than this (to the start of that month) are not
/// looked for, so a bucket without results costs about 14 listings, not a walk of its history.
pub const LOOKBACK_DAYS: i64 = 400;

/// Most results read (GetObject) when filters skip results: a filter no result matches costs
/// at most this many reads.
pub const MAX_EXAMINED: usize = 50;

/// The optional filters of the data source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// The result's `account_id` must be this.
    pub account_id: Option<String>,
    /// The result's `regions` must include this.
    pub region: Option<String>,
}

impl Filters {
    /// True when `scan` passes every filter that is set.
    pub fn admit(&self, scan: &ScanResult) -> bool {
        let account = self
            .account_id
            .as_ref()
            .is_none_or(|a| scan.account_id.as_deref() == Some(a.as_str()));
        let region = self
            .region
            .as_ref()
            .is_none_or(|r| scan.regions.iter().any(|x| x == r));
        account && region
    }

    /// The filters as a phrase: `of account 111122223333 and covering region "eu-west-1"`.
    pub fn phrase(&self) -> String {
        let mut parts = Vec::new();
        if let Some(a) = &self.account_id {
            parts.push(format!("of account_id {a:?}"));
        }
        if let Some(r) = &self.region {
            parts.push(format!("covering region {r:?}"));
        }
        parts.join(" and ")
    }
}

/// One listing: the keys after a point (the newest months, and any later key a skewed clock
/// wrote), or the keys under one month's prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Window {
    /// `start_after` this key, under `scans/`.
    After(String),
    /// Every key under this prefix.
    Prefix(String),
}

fn previous_month(year: i32, month: u8) -> (i32, u8) {
    if month == 1 {
        (year - 1, 12)
    } else {
        (year, month - 1)
    }
}

fn month_prefix((year, month): (i32, u8)) -> String {
    format!("scans/{year:04}/{month:02}/")
}

/// The listings to make on `today` (UTC), newest first: everything from the start of last
/// month on, then one month at a time back to the month [`LOOKBACK_DAYS`] ago.
pub fn windows(today: Date) -> Vec<Window> {
    let mut month = previous_month(today.year(), u8::from(today.month()));
    let mut out = vec![Window::After(month_prefix(month))];
    let oldest = today
        .checked_sub(time::Duration::days(LOOKBACK_DAYS))
        .unwrap_or(Date::MIN);
    let last = (oldest.year(), u8::from(oldest.month()));
    loop {
        month = previous_month(month.0, month.1);
        if month < last {
            return out;
        }
        out.push(Window::Prefix(month_prefix(month)));
    }
}

/// True for a key the scanner writes: `scans/YYYY/MM/DD/<name>.json` with a real date.
pub fn is_result_key(key: &str) -> bool {
    let Some(rest) = key.strip_prefix("scans/") else {
        return false;
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let [year, month, day, file] = parts.as_slice() else {
        return false;
    };
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if !(digits(year, 4) && digits(month, 2) && digits(day, 2)) {
        return false;
    }
    let date = Month::try_from(month.parse::<u8>().unwrap_or(0))
        .ok()
        .and_then(|m| {
            Date::from_calendar_date(year.parse().unwrap_or(0), m, day.parse().unwrap_or(0)).ok()
        });
    date.is_some() && file.len() > ".json".len() && file.ends_with(".json")
}

/// Why no result was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The bucket does not exist.
    NoBucket,
    /// Nothing under `scans/` in the lookback.
    NoResult,
    /// Results exist, but none within [`MAX_EXAMINED`] passes the filters.
    NoMatch {
        /// The newest result read: its key, account and regions.
        newest: (String, Option<String>, Vec<String>),
        /// How many were read.
        examined: usize,
    },
    /// ListObjectsV2 failed.
    Listing(String),
    /// GetObject failed.
    Reading {
        /// The key.
        key: String,
        /// The AWS error.
        error: String,
    },
    /// The newest result moved to Glacier and cannot be read without a restore.
    Archived(String),
    /// The object is not a scan result.
    Unparsable {
        /// The key.
        key: String,
        /// Why.
        error: String,
    },
    /// A result of a format version this provider does not read.
    UnknownVersion {
        /// The key.
        key: String,
        /// Its `schema_version`.
        version: u64,
    },
    /// Terraform stopped the provider.
    Cancelled,
}

/// Reads a stored object as a scan result of the version this provider knows.
pub fn parse(key: &str, body: &[u8]) -> Result<ScanResult, Failure> {
    let unparsable = |error: String| Failure::Unparsable {
        key: key.to_string(),
        error,
    };
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| unparsable(format!("not JSON ({e})")))?;
    // The version first: a newer format may not decode as this one, and its message should say
    // the version rather than which field is missing.
    match json
        .get("schema_version")
        .and_then(serde_json::Value::as_u64)
    {
        Some(v) if v == u64::from(SCAN_SCHEMA_VERSION) => {}
        Some(version) => {
            return Err(Failure::UnknownVersion {
                key: key.to_string(),
                version,
            })
        }
        None => return Err(unparsable("it has no integer schema_version".into())),
    }
    serde_json::from_value(json).map_err(|e| unparsable(e.to_string()))
}

/// The newest result, its key and the result.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// Its S3 key.
    pub key: String,
    /// The parsed result.
    pub scan: ScanResult,
}

/// Every result key of one window, in no particular order.
async fn list(
    s3: &Client,
    bucket: &str,
    owner: &str,
    window: &Window,
    cancel: &CancellationToken,
) -> Result<Vec<String>, Failure> {
    let (prefix, start_after) = match window {
        Window::After(after) => ("scans/", Some(after.clone())),
        Window::Prefix(p) => (p.as_str(), None),
    };
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        if cancel.is_cancelled() {
            return Err(Failure::Cancelled);
        }
        let page = s3
            .list_objects_v2()
            .bucket(bucket)
            .expected_bucket_owner(owner)
            .prefix(prefix)
            .set_start_after(start_after.clone())
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| {
                if is_code(&e, codes::S3_NO_SUCH_BUCKET) {
                    Failure::NoBucket
                } else {
                    Failure::Listing(describe(&e))
                }
            })?;
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key())
                .filter(|k| is_result_key(k))
                .map(str::to_string),
        );
        token = page
            .next_continuation_token
            .filter(|_| page.is_truncated == Some(true));
        if token.is_none() {
            return Ok(keys);
        }
    }
}

/// The stored result under `key`; `None` when it went between listing and reading.
async fn fetch(
    s3: &Client,
    bucket: &str,
    owner: &str,
    key: &str,
    cancel: &CancellationToken,
) -> Result<Option<ScanResult>, Failure> {
    if cancel.is_cancelled() {
        return Err(Failure::Cancelled);
    }
    let reading = |error: String| Failure::Reading {
        key: key.to_string(),
        error,
    };
    let out = match s3
        .get_object()
        .bucket(bucket)
        .expected_bucket_owner(owner)
        .key(key)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) if is_code(&e, "NoSuchKey") => return Ok(None),
        Err(e) if is_code(&e, "InvalidObjectState") => {
            return Err(Failure::Archived(key.to_string()))
        }
        Err(e) => return Err(reading(describe(&e))),
    };
    let body = out
        .body
        .collect()
        .await
        .map_err(|e| reading(format!("reading the body: {e}")))?
        .into_bytes();
    parse(key, &body).map(Some)
}

/// The newest result in `bucket` (owned by `owner`) that passes `filters`, looking back from
/// `today`. The newest object that is not a readable result of a known version is an error, not
/// skipped: a gate must not pass on an older result because the newest is broken.
pub async fn find(
    s3: &Client,
    bucket: &str,
    owner: &str,
    filters: &Filters,
    today: Date,
    cancel: &CancellationToken,
) -> Result<Found, Failure> {
    let mut examined = 0;
    let mut newest = None;
    for window in windows(today) {
        let mut keys = list(s3, bucket, owner, &window, cancel).await?;
        keys.sort_unstable_by(|a, b| b.cmp(a));
        for key in keys {
            if examined == MAX_EXAMINED {
                break;
            }
            let Some(scan) = fetch(s3, bucket, owner, &key, cancel).await? else {
                continue;
            };
            examined += 1;
            if filters.admit(&scan) {
                return Ok(Found { key, scan });
            }
            newest.get_or_insert_with(|| (key, scan.account_id.clone(), scan.regions.clone()));
        }
        if examined == MAX_EXAMINED {
            break;
        }
    }
    match newest {
        Some(newest) => Err(Failure::NoMatch { newest, examined }),
        None => Err(Failure::NoResult),
    }
}
