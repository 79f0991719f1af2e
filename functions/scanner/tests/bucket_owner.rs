//! The scanner pins the results bucket to its owner: with `BUCKET_OWNER` set, every S3 request
//! sends it as `ExpectedBucketOwner`, so a bucket of the same name in another account (names are
//! global) is refused by S3 (403 AccessDenied) and nothing is stored there. The fidelity proxy
//! plays S3's check (`bucket_owners`) and counts the requests that carried the header.

mod common;

use common::*;
use test_support::fidelity::{Counters, Fidelity, FidelityProxy};
use test_support::Moto;

const BUCKET: &str = "compliance-results-owned";
/// moto's account: the one that created the bucket.
const OURS: &str = "123456789012";
const THEIRS: &str = "111122223333";

/// The bucket and one compliant instance, built straight on moto.
async fn fleet(aws: &Aws) {
    aws.s3
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("create bucket");
    let image = image_id(&aws.ec2).await;
    let tags = [
        ("Environment", "prod"),
        ("Owner", "ana"),
        ("CostCenter", "cc-1"),
    ];
    launch(&aws.ec2, &image, None, &[], &tags, 1).await;
}

fn bucket_of(owner: &str) -> Fidelity {
    Fidelity {
        bucket_owners: [(BUCKET.to_string(), owner.to_string())].into(),
        ..Fidelity::default()
    }
}

/// Every S3 request the proxy saw.
fn s3_requests(c: &Counters) -> u64 {
    c.requests
        .iter()
        .filter(|(kind, _)| kind.starts_with("s3:"))
        .map(|(_, n)| n)
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_s3_request_names_the_owner_and_another_owners_bucket_is_refused() {
    let moto = Moto::start();
    let aws = Aws::new(&moto).await;
    fleet(&aws).await;
    let proxy = FidelityProxy::start(&moto, bucket_of(OURS));
    let env = [("BUCKET_NAME", BUCKET), ("BUCKET_OWNER", OURS)];

    // Our bucket: stored, and every S3 request carried the owner.
    let out = run_scan_with(&proxy.aws_env(), &env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report = stdout_json(&out);
    assert_eq!(report["scanned"], 1, "{stderr}");
    let key = report["result_key"].as_str().expect("result_key");
    assert_eq!(aws.scan_keys(BUCKET).await, [key]);
    let c = proxy.counters();
    let with = c.owner_expected.get(BUCKET).copied().unwrap_or(0);
    assert!(with > 0, "{c:?}");
    assert_eq!(with, s3_requests(&c), "{c:?}");
    assert!(c.owner_not_expected.is_empty(), "{c:?}");
    assert_eq!(c.wrong_owner, 0);

    // The same name owned by another account: refused, the scan fails naming the bucket and
    // AccessDenied, and nothing is stored.
    proxy.set(bucket_of(THEIRS));
    proxy.reset_counters();
    let out = run_scan_with(&proxy.aws_env(), &env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("nothing stored"), "{stderr}");
    assert!(
        stderr.contains(&format!("PutObject s3://{BUCKET}/scans/"))
            && stderr.contains("AccessDenied"),
        "{stderr}"
    );
    assert_eq!(aws.scan_keys(BUCKET).await, [key], "something was stored");
    let c = proxy.counters();
    // Refused once: AccessDenied is not retried.
    assert_eq!(c.wrong_owner, 1, "{c:?}");
    assert_eq!(c.owner_expected.get(BUCKET), Some(&1), "{c:?}");
    assert!(c.owner_not_expected.is_empty(), "{c:?}");

    // Without an owner (a local run against a bucket of unknown owner) no header is sent, and S3
    // checks nothing.
    proxy.reset_counters();
    let out = run_scan_with(&proxy.aws_env(), &[("BUCKET_NAME", BUCKET)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = proxy.counters();
    assert!(c.owner_expected.is_empty(), "{c:?}");
    assert_eq!(
        c.owner_not_expected.get(BUCKET).copied(),
        Some(s3_requests(&c))
    );
    assert_eq!(aws.scan_keys(BUCKET).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_owner_flag_sends_the_header_and_a_bad_owner_is_refused_before_any_call() {
    let moto = Moto::start();
    let aws = Aws::new(&moto).await;
    fleet(&aws).await;
    let proxy = FidelityProxy::start(&moto, bucket_of(THEIRS));

    // Given as a flag, the owner is sent and checked the same way.
    let out = scan_command(&proxy.aws_env(), &[])
        .args(["--bucket-name", BUCKET, "--bucket-owner", OURS])
        .output()
        .expect("run compliance-scanner");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("AccessDenied"),
        "{stderr}"
    );
    assert_eq!(proxy.counters().wrong_owner, 1);
    assert!(aws.scan_keys(BUCKET).await.is_empty());

    // Not an account id: exit 2 naming the variable and the flag, and no request at all.
    proxy.reset_counters();
    for bad in [
        "12345678901",
        "123456789012x",
        "arn:aws:iam::123456789012:root",
    ] {
        let out = run_scan_with(
            &proxy.aws_env(),
            &[("BUCKET_NAME", BUCKET), ("BUCKET_OWNER", bad)],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
        assert!(
            stderr.contains("BUCKET_OWNER") && stderr.contains("--bucket-owner"),
            "{stderr}"
        );
    }
    assert_eq!(proxy.counters().total_requests(), 0);
}
