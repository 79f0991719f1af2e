//! One scan, start to end: find the accounts and regions, read every (account, region) at once
//! under one bound, judge each page as it comes, stream the result to S3, then metrics and alert.
//!
//! Memory does not grow with the fleet: at any time the scan holds, per (account, region) being
//! read (at most `concurrency`), that region's violating groups and up to three pages of
//! instances (one being judged, one queued, one arriving); one S3 part being filled and one being
//! sent; the violating groups' JSON spilled to a temporary file, not memory; the per-account and
//! per-region totals; the errors; and the alert's digest (bounded by [`crate::alert::MAX_OFFENDERS`]).

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context;
use aws_config::SdkConfig;
use aws_sdk_ec2::config::retry::RetryPartition;
use aws_types::region::Region;
use compliance_rules::exemptions::Day;
use compliance_rules::result::{
    AccountSummary, Counts, InstanceResult, RegionSummary, ScanError, ScanSettings, Summary,
    SCAN_SCHEMA_VERSION,
};
use compliance_rules::verdict::RegionJudge;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::accounts::{self, Access, MemberRole};
use crate::alert::Digest;
use crate::calls::CallCounter;
use crate::config::{Config, ScanArgs};
use crate::fetch::{fetch_groups, instance_pages};
use crate::outputs;
use crate::upload::{Upload, PART_SIZE};

pub use crate::retry::MAX_ATTEMPTS;

/// The AWS clients of a run, built once per process (the Lambda function serves every invocation
/// with them) and all sharing one configuration and one call counter. EC2 clients are made per
/// (account, region) as a scan needs them.
#[derive(Debug, Clone)]
pub struct Clients {
    sdk: SdkConfig,
    counter: CallCounter,
    s3: aws_sdk_s3::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    sns: aws_sdk_sns::Client,
    sts: aws_sdk_sts::Client,
    organizations: aws_sdk_organizations::Client,
}

impl Clients {
    /// Clients from a loaded SDK configuration.
    pub fn new(sdk: SdkConfig) -> Clients {
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
        let organizations = aws_sdk_organizations::Client::from_conf(
            aws_sdk_organizations::config::Builder::from(&sdk)
                .interceptor(counter.clone())
                .build(),
        );
        Clients {
            sdk,
            counter,
            s3,
            cloudwatch,
            sns,
            sts,
            organizations,
        }
    }

    /// The EC2 client of the stack's own account in one region.
    pub fn ec2(&self, region: &str) -> aws_sdk_ec2::Client {
        ec2_client(&self.sdk, &self.counter, "own", region)
    }

    /// The function's own region: where DescribeRegions is asked.
    pub fn home_region(&self) -> String {
        self.sdk
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".to_string())
    }

    /// HTTP attempts so far, per `Service:Operation`, since the clients were built.
    pub fn api_calls(&self) -> BTreeMap<String, u64> {
        self.counter.snapshot()
    }
}

/// An EC2 client for `account` in `region` with `sdk`'s credentials. Each (account, region) gets
/// its own retry partition: EC2 throttles per account and region, and the SDK's retry quota and
/// rate limiter are shared per partition, so one throttled account cannot spend the retries of
/// the others.
fn ec2_client(
    sdk: &SdkConfig,
    counter: &CallCounter,
    account: &str,
    region: &str,
) -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(sdk)
            .region(Region::new(region.to_string()))
            .retry_partition(RetryPartition::new(format!("ec2-{account}-{region}")))
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
    let clients = Clients::new(sdk);
    Ok((config, clients))
}

/// Errors a run report lists (the result lists them all).
pub const MAX_REPORTED_SCAN_ERRORS: usize = 50;

/// What a run returns: the summary (flattened, so its fields are top level), where the result is,
/// what could not be scanned, and what went wrong after it was stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// The scan's totals.
    #[serde(flatten)]
    pub summary: Summary,
    /// The stack scanned for.
    pub stack: String,
    /// The regions scanned (in at least one account).
    pub regions: Vec<String>,
    /// Bucket holding the result.
    pub bucket: String,
    /// Key of the stored result.
    pub result_key: String,
    /// Size of the stored result in bytes.
    pub result_bytes: u64,
    /// Whether an alert was published.
    pub alert_sent: bool,
    /// Wall time of the whole run (scan, store, metrics, alert) in milliseconds.
    pub run_ms: u64,
    /// HTTP attempts per `Service:Operation`, retries included.
    pub api_calls: BTreeMap<String, u64>,
    /// Accounts or regions that could not be read (the first [`MAX_REPORTED_SCAN_ERRORS`]; the
    /// stored result has them all). The run still succeeds: the `ScanErrors` metric counts them.
    pub scan_errors: Vec<ScanError>,
    /// How many there were.
    pub scan_error_count: u64,
    /// Failures after the result was stored (metrics, alert); non-empty means the run failed.
    pub errors: Vec<String>,
}

impl RunReport {
    /// One line for a person: counts, percentage, where the result is.
    pub fn human_line(&self) -> String {
        let s = &self.summary;
        let accounts = if s.accounts.len() > 1 {
            format!(" in {} accounts", s.accounts.len())
        } else {
            String::new()
        };
        let mut line = format!(
            "compliance scan [{}] {}: {} instances{accounts}, {} non-compliant, {} compliant, {} exempt \
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
        if self.scan_error_count > 0 {
            let first: Vec<&str> = self
                .scan_errors
                .iter()
                .take(3)
                .map(|e| e.cause.as_str())
                .collect();
            line.push_str(&format!(
                "; NOT SCANNED ({}): {}",
                self.scan_error_count,
                first.join("; ")
            ));
        }
        if !self.errors.is_empty() {
            line.push_str(&format!("; FAILED: {}", self.errors.join("; ")));
        }
        line
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("UTC time formats as RFC 3339")
}

/// The time a Lambda invocation's scan stops reading, given the invocation's deadline (ms since
/// the epoch): the rest, a tenth of the time left and at least 10 s (at most half of it), is kept
/// to store the result, publish the metrics and send the alert.
pub fn scan_deadline(deadline_ms: u64) -> Option<tokio::time::Instant> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_millis() as u64;
    let left = deadline_ms.checked_sub(now_ms)?;
    let reserve = (left / 10).max(10_000).min(left / 2);
    Some(tokio::time::Instant::now() + std::time::Duration::from_millis(left - reserve))
}

/// Runs one scan with no time limit; see [`run_scan_until`].
pub async fn run_scan(config: &Config, clients: &Clients) -> anyhow::Result<RunReport> {
    // Boxed: the scan's future is deep, and callers' futures would have to hold it inline.
    Box::pin(run_scan_until(config, clients, None)).await
}

/// What a region's reading sends to the result's writer.
enum Fragment {
    /// Instance verdicts as JSON objects joined by commas.
    Instances(Vec<u8>),
    /// Violating groups as JSON objects joined by commas.
    Groups(Vec<u8>),
}

/// How one (account, region) went.
struct PairOutcome {
    account: String,
    region: String,
    /// Totals of what was read (all of it, or what was read before the error).
    counts: Option<Counts>,
    error: Option<ScanError>,
}

/// What every region's reading shares.
struct Shared<'a> {
    rules: &'a ScanSettings,
    today: Day,
    deadline: Option<tokio::time::Instant>,
    fragments: mpsc::Sender<Fragment>,
    digest: Mutex<Digest>,
}

/// Comma-joined JSON of `items`.
fn json_list<T: Serialize>(items: &[T]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, item).expect("a verdict serialises");
    }
    out
}

/// Reads and judges one (account, region): its groups first, then its instances a page at a time,
/// each page judged and sent on as it comes.
async fn scan_pair(
    shared: &Shared<'_>,
    ec2: aws_sdk_ec2::Client,
    account: String,
    region: String,
) -> PairOutcome {
    let where_ = format!("{region} (account {account})");
    if shared.fragments.is_closed() {
        // The writer failed: the scan is over, nothing more is read.
        return PairOutcome {
            account,
            region,
            counts: None,
            error: None,
        };
    }
    let fail = |operation: &str, code: Option<String>, cause: String| ScanError {
        account_id: account.clone(),
        region: Some(region.clone()),
        operation: operation.to_string(),
        code,
        cause,
    };
    let timed_out = || {
        fail(
            "Timeout",
            None,
            format!("the scan's time ran out before {where_} was read"),
        )
    };
    let groups = fetch_groups(&ec2, &region, &where_);
    let groups = match shared.deadline {
        Some(at) => match tokio::time::timeout_at(at, groups).await {
            Ok(g) => g,
            Err(_) => {
                return PairOutcome {
                    account: account.clone(),
                    region: region.clone(),
                    counts: None,
                    error: Some(timed_out()),
                }
            }
        },
        None => groups.await,
    };
    let groups = match groups {
        Ok(g) => g,
        Err(e) => {
            return PairOutcome {
                error: Some(fail(e.operation, e.code.clone(), e.cause.clone())),
                account,
                region,
                counts: None,
            }
        }
    };
    let mut judge = RegionJudge::new(&account, &region, groups, shared.rules, shared.today);
    // One page queued while one is judged: reading and judging overlap, memory stays a few pages.
    let (pages_tx, mut pages_rx) = mpsc::channel::<Vec<compliance_rules::input::Instance>>(1);
    let producer = async {
        let read = instance_pages(&ec2, &region, &where_, pages_tx);
        match shared.deadline {
            Some(at) => tokio::time::timeout_at(at, read).await.map_err(|_| ()),
            None => Ok(read.await),
        }
    };
    let mut writer_gone = false;
    let consumer = async {
        while let Some(page) = pages_rx.recv().await {
            let verdicts: Vec<InstanceResult> = judge.judge(page);
            if verdicts.is_empty() {
                continue;
            }
            if let Ok(mut d) = shared.digest.lock() {
                d.add_instances(&verdicts);
            }
            let bytes = json_list(&verdicts);
            drop(verdicts);
            if shared
                .fragments
                .send(Fragment::Instances(bytes))
                .await
                .is_err()
            {
                writer_gone = true;
                return;
            }
        }
    };
    let (read, ()) = tokio::join!(producer, consumer);
    let (groups, counts) = judge.finish();
    if !groups.is_empty() && !writer_gone {
        if let Ok(mut d) = shared.digest.lock() {
            d.add_groups(&groups);
        }
        let _ = shared
            .fragments
            .send(Fragment::Groups(json_list(&groups)))
            .await;
    }
    let error = match read {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(fail(e.operation, e.code.clone(), e.cause.clone())),
        Err(()) => {
            let mut e = timed_out();
            e.cause = format!(
                "the scan's time ran out while {where_} was read: {} instances were judged, the rest are not in the result",
                counts.scanned
            );
            Some(e)
        }
    };
    PairOutcome {
        account,
        region,
        counts: Some(counts),
        error,
    }
}

/// The groups' JSON, kept in a temporary file until every instance is written (they come after
/// the instances in the result). Removed when dropped.
struct Spill {
    path: std::path::PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
    any: bool,
}

impl Spill {
    fn new() -> anyhow::Result<Spill> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "compliance-scan-{}-{nanos}.groups.json",
            std::process::id()
        ));
        let file =
            std::fs::File::create(&path).with_context(|| format!("create {}", path.display()))?;
        Ok(Spill {
            path,
            file: Some(std::io::BufWriter::new(file)),
            any: false,
        })
    }

    fn push(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let file = self.file.as_mut().context("spill file closed")?;
        if self.any {
            file.write_all(b",")?;
        }
        file.write_all(bytes)
            .with_context(|| format!("write {}", self.path.display()))?;
        self.any = true;
        Ok(())
    }

    /// Copies the groups into the upload.
    async fn drain_into(&mut self, upload: &mut Upload) -> anyhow::Result<()> {
        if let Some(mut file) = self.file.take() {
            file.flush()?;
        }
        let mut file = std::fs::File::open(&self.path)
            .with_context(|| format!("open {}", self.path.display()))?;
        let mut chunk = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            upload.write(&chunk[..n]).await?;
        }
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The writer: every fragment into the upload (instances) or the spill (groups), in arrival order.
async fn write_fragments(
    upload: &mut Upload,
    spill: &mut Spill,
    mut fragments: mpsc::Receiver<Fragment>,
) -> anyhow::Result<()> {
    let mut any = false;
    while let Some(f) = fragments.recv().await {
        match f {
            Fragment::Instances(bytes) => {
                if any {
                    upload.write(b",").await?;
                }
                upload.write(&bytes).await?;
                any = true;
            }
            Fragment::Groups(bytes) => spill.push(&bytes)?,
        }
    }
    Ok(())
}

/// The result's fields known before the first instance.
#[derive(Serialize)]
struct Head<'a> {
    schema_version: u32,
    started_at: &'a str,
    stack: &'a str,
    account_id: Option<&'a str>,
    regions: &'a [String],
    settings: &'a ScanSettings,
}

/// The result's fields known at the end.
#[derive(Serialize)]
struct Tail<'a> {
    errors: &'a [ScanError],
    summary: &'a Summary,
    finished_at: &'a str,
    duration_ms: u64,
}

/// `{"a":1}` -> `"a":1`: a serialised object's fields, to splice into the streamed one.
fn fields_of(object: Vec<u8>) -> Vec<u8> {
    let mut v = object;
    v.pop();
    v.remove(0);
    v
}

/// The totals per account and region, and the whole scan's.
fn summarize(accounts: &[String], outcomes: &[PairOutcome], errors: &[ScanError]) -> Summary {
    let mut by_account: BTreeMap<String, AccountSummary> = accounts
        .iter()
        .map(|a| {
            (
                a.clone(),
                AccountSummary {
                    account_id: a.clone(),
                    ..AccountSummary::default()
                },
            )
        })
        .collect();
    let mut total = Counts::default();
    for o in outcomes {
        let Some(counts) = &o.counts else { continue };
        let a = by_account
            .entry(o.account.clone())
            .or_insert_with(|| AccountSummary {
                account_id: o.account.clone(),
                ..AccountSummary::default()
            });
        a.counts.add(counts);
        a.regions.push(RegionSummary {
            region: o.region.clone(),
            counts: counts.clone(),
        });
        total.add(counts);
    }
    for e in errors {
        if let Some(a) = by_account.get_mut(&e.account_id) {
            a.errors += 1;
        }
    }
    let mut summary = total.summary();
    summary.accounts = by_account
        .into_values()
        .map(|mut a| {
            a.regions.sort_by(|x, y| x.region.cmp(&y.region));
            // An account with nothing read has nothing judged: 100 % by the rule, like an empty
            // fleet; its errors say why.
            a.counts.compliance_percentage = compliance_rules::verdict::compliance_percentage(
                a.counts.compliant,
                a.counts.scanned - a.counts.exempt,
            );
            a
        })
        .collect();
    summary
}

/// Runs one scan; with a `deadline`, regions not read by then are recorded as timed out and the
/// rest is stored. An error means nothing was stored; once the result is stored, metric and alert
/// failures are collected in [`RunReport::errors`] (both are still attempted). Accounts and
/// regions that could not be read are in the result's `errors` and [`RunReport::scan_errors`];
/// when nothing at all could be read, the scan fails and nothing is stored.
pub async fn run_scan_until(
    config: &Config,
    clients: &Clients,
    deadline: Option<tokio::time::Instant>,
) -> anyhow::Result<RunReport> {
    let started_at = OffsetDateTime::now_utc();
    let clock = Instant::now();
    // The clients outlive a run (one process serves many invocations): count this run's calls.
    let calls_before = clients.api_calls();
    let concurrency = config.concurrency.max(1) as usize;

    // No error of GetCallerIdentity means "no account": once the SDK's retries are spent, a
    // throttled or refused call fails the scan, rather than store a result that names no account.
    let me = accounts::identity(&clients.sts).await?;
    let mut errors: Vec<ScanError> = Vec::new();
    let (members, listed) =
        accounts::members(&config.members, &clients.organizations, &me.account_id).await;
    errors.extend(listed);
    let session = accounts::session_name(&config.stack);
    let home = clients.home_region();

    // Each account: its access (the member role assumed once) and its regions.
    let own = Access {
        account_id: me.account_id.clone(),
        sdk: clients.sdk.clone(),
    };
    let mut all_accounts = vec![me.account_id.clone()];
    all_accounts.extend(members.iter().cloned());
    let prepared: Vec<Result<(Access, Vec<String>), ScanError>> =
        futures::stream::iter(all_accounts.iter().cloned())
            .map(|account| {
                let (own, session, home, me) = (&own, &session, &home, &me);
                async move {
                    let access = if account == me.account_id {
                        own.clone()
                    } else {
                        let role = MemberRole::new(
                            clients.sts.clone(),
                            &me.partition,
                            &account,
                            &config.members,
                            session.clone(),
                        );
                        Access::member(&clients.sdk, &account, role).await?
                    };
                    let ec2_home = ec2_client(&access.sdk, &clients.counter, &account, home);
                    let regions =
                        accounts::regions(&config.regions, &ec2_home, &account, home).await?;
                    Ok((access, regions))
                }
            })
            .buffered(concurrency)
            .collect()
            .await;
    let mut reachable: Vec<(Access, Vec<String>)> = Vec::new();
    for p in prepared {
        match p {
            Ok(ok) => reachable.push(ok),
            Err(e) => errors.push(e),
        }
    }
    let mut regions: Vec<String> = reachable.iter().flat_map(|(_, r)| r.clone()).collect();
    regions.sort();
    regions.dedup();

    // The pairs, interleaved across accounts, so the slots in use at any time spread over them.
    let mut pairs: Vec<(String, String, SdkConfig)> = Vec::new();
    let longest = reachable.iter().map(|(_, r)| r.len()).max().unwrap_or(0);
    for n in 0..longest {
        for (access, list) in &reachable {
            if let Some(region) = list.get(n) {
                pairs.push((
                    access.account_id.clone(),
                    region.clone(),
                    access.sdk.clone(),
                ));
            }
        }
    }

    let key = outputs::result_key(started_at);
    let mut upload = Upload::new(
        clients.s3.clone(),
        &config.bucket,
        config.bucket_owner.as_deref(),
        &key,
        PART_SIZE,
    );
    let mut spill = Spill::new()?;
    let head = serde_json::to_vec(&Head {
        schema_version: SCAN_SCHEMA_VERSION,
        started_at: &rfc3339(started_at),
        stack: &config.stack,
        account_id: Some(&me.account_id),
        regions: &regions,
        settings: &config.rules,
    })
    .context("serialize the scan result")?;
    let mut opening = vec![b'{'];
    opening.extend(fields_of(head));
    opening.extend_from_slice(br#","instances":["#);
    upload.write(&opening).await?;

    let (fragments, received) = mpsc::channel::<Fragment>(concurrency.max(2));
    let today = Day::from_unix_seconds(started_at.unix_timestamp());
    // The scan owns the only sender: when it ends, the writer drains what is queued and ends.
    let scanning = async move {
        let shared = Shared {
            rules: &config.rules,
            today,
            deadline,
            fragments,
            digest: Mutex::new(Digest::new()),
        };
        let outcomes: Vec<PairOutcome> = futures::stream::iter(pairs)
            .map(|(account, region, sdk)| {
                let ec2 = ec2_client(&sdk, &clients.counter, &account, &region);
                scan_pair(&shared, ec2, account, region)
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        (outcomes, shared.digest.into_inner().unwrap_or_default())
    };
    let writing = write_fragments(&mut upload, &mut spill, received);
    let ((outcomes, digest), written) = tokio::join!(scanning, writing);
    if let Err(e) = written {
        upload.abort().await;
        return Err(e);
    }
    errors.extend(outcomes.iter().filter_map(|o| o.error.clone()));
    errors.sort();
    // Nothing read at all (every region failed before its first instance): no result, as before
    // organisation scanning. A region cut short still counts what it read.
    let read = outcomes
        .iter()
        .filter(|o| o.error.is_none() || o.counts.as_ref().is_some_and(|c| c.scanned > 0))
        .count();
    if read == 0 {
        upload.abort().await;
        let causes: Vec<&str> = errors.iter().map(|e| e.cause.as_str()).take(5).collect();
        anyhow::bail!(
            "no account or region could be read ({} failed): {}",
            errors.len(),
            causes.join("; ")
        );
    }

    let summary = summarize(&all_accounts, &outcomes, &errors);
    let finished_at = OffsetDateTime::now_utc();
    let tail = serde_json::to_vec(&Tail {
        errors: &errors,
        summary: &summary,
        finished_at: &rfc3339(finished_at),
        duration_ms: clock.elapsed().as_millis() as u64,
    })
    .context("serialize the scan result")?;
    let stored = async {
        upload.write(br#"],"security_groups":["#).await?;
        spill.drain_into(&mut upload).await?;
        upload.write(b"],").await?;
        upload.write(&fields_of(tail)).await?;
        upload.write(b"}").await?;
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = stored {
        upload.abort().await;
        return Err(e);
    }
    let result_bytes = upload.written();
    upload.finish().await?;
    drop(spill);
    tracing::info!(bucket = %config.bucket, key = %key, bytes = result_bytes, "scan result stored");

    let mut digest = digest;
    digest.stack = config.stack.clone();
    digest.account_id = Some(me.account_id.clone());
    digest.regions = regions.clone();
    digest.finished_at = rfc3339(finished_at);
    digest.summary = summary.clone();
    digest.errors = errors.clone();

    // Metrics and alert do not depend on each other: send both at once, and let neither failure
    // stop the other.
    let mut data = outputs::metric_data(&summary, errors.len() as u64, &config.stack, finished_at);
    data.extend(outputs::share_metric_data(
        &summary,
        &config.stack,
        finished_at,
    ));
    let metrics = outputs::publish_metrics(&clients.cloudwatch, &config.metric_namespace, data);
    let alert = async {
        if summary.non_compliant == 0 {
            return Ok(false);
        }
        match &config.topic_arn {
            Some(topic) => outputs::send_alert(&clients.sns, topic, &digest, &config.bucket, &key)
                .await
                .map(|()| true),
            None => {
                tracing::warn!("non-compliant instances found but no TOPIC_ARN: no alert sent");
                Ok(false)
            }
        }
    };
    let (metrics, alert) = tokio::join!(metrics, alert);
    let mut failures = Vec::new();
    if let Err(e) = metrics {
        failures.push(format!("{e:#}"));
    }
    let alert_sent = alert.unwrap_or_else(|e| {
        failures.push(format!("{e:#}"));
        false
    });
    for e in &failures {
        tracing::error!(error = %e, key = %key, "failure after the result was stored");
    }
    for e in &errors {
        tracing::warn!(account = %e.account_id, region = ?e.region, cause = %e.cause, "not scanned");
    }
    Ok(RunReport {
        summary,
        stack: config.stack.clone(),
        regions,
        bucket: config.bucket.clone(),
        result_key: key,
        result_bytes,
        alert_sent,
        run_ms: clock.elapsed().as_millis() as u64,
        api_calls: clients.counter.since(&calls_before),
        scan_error_count: errors.len() as u64,
        scan_errors: errors.into_iter().take(MAX_REPORTED_SCAN_ERRORS).collect(),
        errors: failures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now_ms() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    }

    #[test]
    fn the_scan_stops_a_tenth_before_the_deadline_and_at_least_10_s() {
        let within = |deadline: Option<tokio::time::Instant>, secs: f64| {
            let left = deadline.unwrap() - tokio::time::Instant::now();
            (left.as_secs_f64() - secs).abs() < 0.5
        };
        // 15 minutes left: stop 90 s before.
        assert!(within(scan_deadline(now_ms() + 900_000), 810.0));
        // 60 s left: 10 s kept.
        assert!(within(scan_deadline(now_ms() + 60_000), 50.0));
        // 8 s left: half of it.
        assert!(within(scan_deadline(now_ms() + 8_000), 4.0));
        assert_eq!(scan_deadline(now_ms().saturating_sub(1_000)), None);
    }

    #[test]
    fn fields_of_splices_an_object() {
        assert_eq!(
            fields_of(br#"{"a":1,"b":[2]}"#.to_vec()),
            br#""a":1,"b":[2]"#
        );
    }
}
