//! The result streamed to S3: a fleet too large for one part (the synthetic EC2 and STS endpoint
//! makes it; S3 is moto behind the fidelity proxy) is stored by a multipart upload of parts of at
//! least 5 MiB, every call naming the bucket's owner, and reads back whole; a part S3 refuses
//! aborts the upload and stores nothing; a time limit stores what was read and names what was not.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use compliance_rules::result::ScanResult;
use compliance_scanner::upload::{MIN_PART_SIZE, PART_SIZE};
use test_support::fidelity::{Fidelity, FidelityProxy};
use test_support::synthetic_ec2::{SyntheticEc2, SyntheticFleet};
use test_support::Moto;

const BUCKET: &str = "compliance-results-stream";
const OWN: &str = "123456789012";

/// The scanner against the synthetic endpoint for EC2 and STS, the proxy for the rest.
fn env(proxy: &FidelityProxy, ec2: &SyntheticEc2) -> Vec<(String, String)> {
    let mut env = proxy.aws_env();
    env.extend(ec2.service_env());
    env
}

async fn uploads_in_progress(aws: &Aws) -> usize {
    aws.s3
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .expect("ListMultipartUploads")
        .uploads()
        .len()
}

async fn read(aws: &Aws, key: &str) -> ScanResult {
    aws.read_result(BUCKET, key).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_result_is_a_multipart_upload_that_reads_back_whole() {
    let moto = Moto::start();
    let aws = Aws::new(&moto).await;
    aws.stack(BUCKET, "compliance-alerts-stream").await;
    let mut fleet = SyntheticFleet::new(
        vec![OWN.to_string(), "200000000001".to_string()],
        vec!["us-east-1".to_string(), "eu-west-1".to_string()],
    );
    fleet.instances_per_region = 18_000;
    fleet.groups_per_region = 60;
    let ec2 = SyntheticEc2::start(fleet.clone());
    let proxy = FidelityProxy::start(
        &moto,
        Fidelity {
            bucket_owners: BTreeMap::from([(BUCKET.to_string(), OWN.to_string())]),
            ..Fidelity::default()
        },
    );
    let out = run_scan_with(
        &env(&proxy, &ec2),
        &[
            ("BUCKET_NAME", BUCKET),
            ("BUCKET_OWNER", OWN),
            ("STACK_NAME", "stream"),
            ("SCAN_REGIONS", "us-east-1,eu-west-1"),
            ("MEMBER_ACCOUNTS", "200000000001"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report = stdout_json(&out);
    let bytes = report["result_bytes"].as_u64().expect("result_bytes");
    assert!(
        bytes > 2 * PART_SIZE as u64,
        "{bytes} bytes: not enough for two parts"
    );

    // The calls: one upload made, every part but the last a full part, one completion; every
    // S3 request named the owner.
    let c = proxy.counters();
    let count = |kind: &str| c.requests.get(kind).copied().unwrap_or(0);
    let parts = bytes.div_ceil(PART_SIZE as u64);
    assert_eq!(count("s3:POST ?uploads"), 1, "{:?}", c.requests);
    assert_eq!(
        count(&format!("s3:PUT /{BUCKET}/scans/*")),
        parts,
        "{:?}",
        c.requests
    );
    assert_eq!(
        count(&format!("s3:POST /{BUCKET}/scans/*")),
        1,
        "{:?}",
        c.requests
    );
    assert_eq!(c.owner_not_expected, BTreeMap::new());
    assert_eq!(c.owner_expected.get(BUCKET), Some(&(parts + 2)));
    assert_eq!(uploads_in_progress(&aws).await, 0);

    // The object is the whole scan.
    let keys = aws.scan_keys(BUCKET).await;
    assert_eq!(keys.len(), 1);
    let head = aws
        .s3
        .head_object()
        .bucket(BUCKET)
        .key(&keys[0])
        .send()
        .await
        .expect("HeadObject");
    assert_eq!(head.content_length(), Some(bytes as i64));
    assert!(bytes as usize > MIN_PART_SIZE);
    let result = read(&aws, &keys[0]).await;
    let totals = fleet.totals();
    assert_eq!(result.summary.scanned, totals.scanned);
    assert_eq!(result.instances.len() as u64, totals.scanned);
    assert_eq!(result.summary.exempt, totals.exempt);
    assert_eq!(result.security_groups.len() as u64, totals.open_groups);
    let ids: BTreeSet<&str> = result
        .instances
        .iter()
        .map(|i| i.instance_id.as_str())
        .collect();
    assert_eq!(ids.len() as u64, totals.scanned, "no instance twice");
    let per_account: BTreeMap<&str, u64> =
        result.instances.iter().fold(BTreeMap::new(), |mut m, i| {
            *m.entry(i.account_id.as_str()).or_default() += 1;
            m
        });
    assert_eq!(
        per_account.values().copied().collect::<Vec<_>>(),
        [totals.scanned / 2, totals.scanned / 2]
    );
    let accounts: Vec<(&str, u64)> = result
        .summary
        .accounts
        .iter()
        .map(|a| (a.account_id.as_str(), a.counts.scanned))
        .collect();
    assert_eq!(
        accounts,
        [
            (OWN, totals.scanned / 2),
            ("200000000001", totals.scanned / 2)
        ]
    );
    assert_eq!(result.errors, []);
    assert_eq!(report["api_calls"]["STS:AssumeRole"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_part_s3_refuses_aborts_the_upload_and_stores_nothing() {
    let moto = Moto::start();
    let aws = Aws::new(&moto).await;
    aws.stack(BUCKET, "compliance-alerts-stream").await;
    let mut fleet = SyntheticFleet::new(vec![OWN.to_string()], vec!["us-east-1".to_string()]);
    fleet.instances_per_region = 30_000;
    let ec2 = SyntheticEc2::start(fleet);
    // Parts are refused (503 SlowDown) every time; the upload's other calls are served.
    let proxy = FidelityProxy::start(
        &moto,
        Fidelity {
            throttle: BTreeMap::from([(format!("s3:PUT /{BUCKET}/scans/*"), 1.0)]),
            ..Fidelity::default()
        },
    );
    let mut env = env(&proxy, &ec2);
    env.push(("AWS_MAX_ATTEMPTS".into(), "2".into()));
    let out = run_scan_with(&env, &[("BUCKET_NAME", BUCKET), ("STACK_NAME", "stream")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("nothing stored")
            && stderr.contains("UploadPart 1")
            && stderr.contains("SlowDown"),
        "{stderr}"
    );
    let c = proxy.counters();
    let count = |kind: &str| c.requests.get(kind).copied().unwrap_or(0);
    assert_eq!(count("s3:POST ?uploads"), 1, "{:?}", c.requests);
    assert_eq!(
        count(&format!("s3:PUT /{BUCKET}/scans/*")),
        2,
        "two attempts"
    );
    assert_eq!(count(&format!("s3:DELETE /{BUCKET}/scans/*")), 1, "aborted");
    assert_eq!(
        count(&format!("s3:POST /{BUCKET}/scans/*")),
        0,
        "never completed"
    );
    assert_eq!(uploads_in_progress(&aws).await, 0);
    assert_eq!(aws.scan_keys(BUCKET).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_time_limit_stores_what_was_read_and_names_what_was_not() {
    let moto = Moto::start();
    let aws = Aws::new(&moto).await;
    aws.stack(BUCKET, "compliance-alerts-stream").await;
    // Every EC2 answer takes 100 ms and each account holds 200,000 instances: neither is read
    // whole in 3 s.
    let mut fleet = SyntheticFleet::new(
        vec![OWN.to_string(), "200000000001".to_string()],
        vec!["us-east-1".to_string()],
    );
    fleet.instances_per_region = 200_000;
    fleet.latency = std::time::Duration::from_millis(100);
    let ec2 = SyntheticEc2::start(fleet);
    let proxy = FidelityProxy::start(&moto, Fidelity::default());
    let mut cmd = scan_command(
        &env(&proxy, &ec2),
        &[
            ("BUCKET_NAME", BUCKET),
            ("STACK_NAME", "stream"),
            ("MEMBER_ACCOUNTS", "200000000001"),
        ],
    );
    cmd.args(["--time-limit-seconds", "3"]);
    let started = std::time::Instant::now();
    let out = cmd.output().expect("run compliance-scanner");
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(elapsed < std::time::Duration::from_secs(20), "{elapsed:?}");
    let keys = aws.scan_keys(BUCKET).await;
    let result = read(&aws, &keys[0]).await;
    let timeouts: BTreeSet<(String, String)> = result
        .errors
        .iter()
        .map(|e| (e.account_id.clone(), e.operation.clone()))
        .collect();
    assert_eq!(
        timeouts,
        BTreeSet::from([
            (OWN.to_string(), "Timeout".to_string()),
            ("200000000001".to_string(), "Timeout".to_string())
        ]),
        "{:#?}",
        result.errors
    );
    // What was read before the limit is in the result, counted in the totals it names.
    assert!(result.summary.scanned > 0);
    assert_eq!(result.instances.len() as u64, result.summary.scanned);
    assert!(result.summary.scanned < 2 * 200_000);
    assert!(result
        .errors
        .iter()
        .all(|e| e.cause.contains("time ran out")));
}
