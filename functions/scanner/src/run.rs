//! One scan, start to end: read every region, judge, store, then metrics and alert.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Context;
use aws_config::SdkConfig;
use aws_types::region::Region;
use compliance_rules::exemptions::Day;
use compliance_rules::result::{ScanResult, Summary, SCAN_SCHEMA_VERSION};
use compliance_rules::verdict::evaluate;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::calls::CallCounter;
use crate::config::{Config, ScanArgs};
use crate::fetch::{fetch_region, RegionFleet};
use crate::outputs;

pub use crate::retry::MAX_ATTEMPTS;

/// The AWS clients of a run, built once per process (the Lambda function serves every invocation
/// with them) and all sharing one configuration and one call counter.
#[derive(Debug, Clone)]
pub struct Clients {
    sdk: SdkConfig,
    counter: CallCounter,
    s3: aws_sdk_s3::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    sns: aws_sdk_sns::Client,
    sts: aws_sdk_sts::Client,
    /// An EC2 client per region to scan.
    ec2: BTreeMap<String, aws_sdk_ec2::Client>,
}

impl Clients {
    /// Clients from a loaded SDK configuration, with an EC2 client for each of `regions`.
    pub fn new(sdk: SdkConfig, regions: &[String]) -> Clients {
        let counter = CallCounter::default();
        // An emulator or private endpoint serves buckets by path, not by virtual host.
        let path_style =
            sdk.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(path_style)
                .interceptor(counter.clone())
                .build(),
        );
        let cloudwatch = aws_sdk_cloudwatch::Client::from_conf(
            aws_sdk_cloudwatch::config::Builder::from(&sdk)
                .interceptor(counter.clone())
                .build(),
        );
        let sns = aws_sdk_sns::Client::from_conf(
            aws_sdk_sns::config::Builder::from(&sdk)
                .interceptor(counter.clone())
                .build(),
        );
        let sts = aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(&sdk)
                .interceptor(counter.clone())
                .build(),
        );
        let ec2 = regions
            .iter()
            .map(|r| (r.clone(), ec2_client(&sdk, &counter, r)))
            .collect();
        Clients {
            sdk,
            counter,
            s3,
            cloudwatch,
            sns,
            sts,
            ec2,
        }
    }

    /// The EC2 client for one region (one made now for a region not given to [`Clients::new`]).
    pub fn ec2(&self, region: &str) -> aws_sdk_ec2::Client {
        match self.ec2.get(region) {
            // SDK clients are handles: a clone shares the connection pool.
            Some(client) => client.clone(),
            None => ec2_client(&self.sdk, &self.counter, region),
        }
    }

    /// HTTP attempts so far, per `Service:Operation`, since the clients were built.
    pub fn api_calls(&self) -> BTreeMap<String, u64> {
        self.counter.snapshot()
    }
}

fn ec2_client(sdk: &SdkConfig, counter: &CallCounter, region: &str) -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(sdk)
            .region(Region::new(region.to_string()))
            .interceptor(counter.clone())
            .build(),
    )
}

/// The settings and clients of a process. The SDK configuration comes from the standard chain
/// (environment, profile, container or instance credentials; `AWS_ENDPOINT_URL` for an emulator),
/// retrying as [`crate::retry`] says, and is loaded first: its region is the default region to
/// scan. Fails on invalid settings, `AWS_MAX_ATTEMPTS` or `AWS_RETRY_MODE`.
pub async fn setup(args: ScanArgs) -> anyhow::Result<(Config, Clients)> {
    let sdk = crate::retry::load_sdk_config().await?;
    let config = args.into_config(sdk.region().map(|r| r.as_ref()))?;
    let clients = Clients::new(sdk, &config.regions);
    Ok((config, clients))
}

/// What a run returns: the summary (flattened, so its fields are top level), where the result is,
/// and what went wrong after it was stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// The scan's totals.
    #[serde(flatten)]
    pub summary: Summary,
    /// The stack scanned for.
    pub stack: String,
    /// The regions scanned.
    pub regions: Vec<String>,
    /// Bucket holding the result.
    pub bucket: String,
    /// Key of the stored result.
    pub result_key: String,
    /// Whether an alert was published.
    pub alert_sent: bool,
    /// Wall time of the whole run (scan, store, metrics, alert) in milliseconds.
    pub run_ms: u64,
    /// HTTP attempts per `Service:Operation`, retries included.
    pub api_calls: BTreeMap<String, u64>,
    /// Failures after the result was stored (metrics, alert); non-empty means the run failed.
    pub errors: Vec<String>,
}

impl RunReport {
    /// One line for a person: counts, percentage, where the result is.
    pub fn human_line(&self) -> String {
        let s = &self.summary;
        let mut line = format!(
            "compliance scan [{}] {}: {} instances, {} non-compliant, {} compliant, {} exempt \
             ({:.1}% compliant), {} open rules; result s3://{}/{}; alert {}",
            self.stack,
            self.regions.join(","),
            s.scanned,
            s.non_compliant,
            s.compliant,
            s.exempt,
            s.compliance_percentage,
            s.open_rules,
            self.bucket,
            self.result_key,
            if self.alert_sent { "sent" } else { "not sent" },
        );
        if !self.errors.is_empty() {
            line.push_str(&format!("; FAILED: {}", self.errors.join("; ")));
        }
        line
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("UTC time formats as RFC 3339")
}

/// Runs one scan. An error means nothing was stored; once the result is stored, metric and alert
/// failures are collected in [`RunReport::errors`] (both are still attempted).
pub async fn run_scan(config: &Config, clients: &Clients) -> anyhow::Result<RunReport> {
    let started_at = OffsetDateTime::now_utc();
    let clock = Instant::now();
    // The clients outlive a run (one process serves many invocations): count this run's calls.
    let calls_before = clients.api_calls();

    // No error of GetCallerIdentity means "no account": once the SDK's retries are spent, a
    // throttled or refused call fails the scan like every other read, rather than store a result
    // that names no account.
    let account = async {
        let id = clients
            .sts
            .get_caller_identity()
            .send()
            .await
            .context("STS GetCallerIdentity")?;
        anyhow::Ok(id.account)
    };
    let fleets = futures::future::try_join_all(config.regions.iter().map(|region| async move {
        let client = clients.ec2(region);
        fetch_region(&client, region).await
    }));
    let (account_id, fleets) = tokio::try_join!(account, fleets)?;
    let mut instances = Vec::new();
    let mut groups = Vec::new();
    for RegionFleet {
        instances: i,
        groups: g,
    } in fleets
    {
        instances.extend(i);
        groups.extend(g);
    }
    // The day the scan started decides which exemptions have expired, whenever it finishes.
    let today = Day::from_unix_seconds(started_at.unix_timestamp());
    let evaluation = evaluate(instances, &groups, &config.rules, today);
    drop(groups);

    let finished_at = OffsetDateTime::now_utc();
    let result = ScanResult {
        schema_version: SCAN_SCHEMA_VERSION,
        started_at: rfc3339(started_at),
        finished_at: rfc3339(finished_at),
        duration_ms: clock.elapsed().as_millis() as u64,
        stack: config.stack.clone(),
        account_id,
        regions: config.regions.clone(),
        settings: config.rules.clone(),
        summary: evaluation.summary,
        instances: evaluation.instances,
        security_groups: evaluation.security_groups,
        errors: Vec::new(),
    };

    let key = outputs::result_key(started_at);
    let json = serde_json::to_vec(&result).context("serialize the scan result")?;
    outputs::store(
        &clients.s3,
        &config.bucket,
        config.bucket_owner.as_deref(),
        &key,
        json,
    )
    .await?;
    tracing::info!(bucket = %config.bucket, key = %key, "scan result stored");

    // Metrics and alert do not depend on each other: send both at once, and let neither failure
    // stop the other.
    let data = outputs::metric_data(&result.summary, &config.stack, finished_at);
    let metrics = outputs::publish_metrics(&clients.cloudwatch, &config.metric_namespace, data);
    let alert = async {
        if result.summary.non_compliant == 0 {
            return Ok(false);
        }
        match &config.topic_arn {
            Some(topic) => outputs::send_alert(&clients.sns, topic, &result, &config.bucket, &key)
                .await
                .map(|()| true),
            None => {
                tracing::warn!("non-compliant instances found but no TOPIC_ARN: no alert sent");
                Ok(false)
            }
        }
    };
    let (metrics, alert) = tokio::join!(metrics, alert);
    let mut errors = Vec::new();
    if let Err(e) = metrics {
        errors.push(format!("{e:#}"));
    }
    let alert_sent = alert.unwrap_or_else(|e| {
        errors.push(format!("{e:#}"));
        false
    });
    for e in &errors {
        tracing::error!(error = %e, key = %key, "failure after the result was stored");
    }
    Ok(RunReport {
        summary: result.summary,
        stack: config.stack.clone(),
        regions: config.regions.clone(),
        bucket: config.bucket.clone(),
        result_key: key,
        alert_sent,
        run_ms: clock.elapsed().as_millis() as u64,
        api_calls: clients.counter.since(&calls_before),
        errors,
    })
}
