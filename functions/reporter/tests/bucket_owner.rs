//! The reporter pins the results bucket to its owner: with `BUCKET_OWNER` set (or
//! `--bucket-owner`), every S3 request (the listing, each scan's and the previous report's
//! GetObject, the three PutObjects) sends it as `ExpectedBucketOwner`, so a bucket of the same name
//! in another account is refused by S3 (403 AccessDenied): nothing is read from it or written to
//! it. The fidelity proxy plays S3's check (`bucket_owners`) and counts the requests that carried
//! the header.

mod common;

use std::process::Output;

use common::*;
use test_support::fidelity::{Counters, Fidelity, FidelityProxy};

const DAY: &str = "2024-05-02";
const REPORT_JSON: &str = "reports/2024/05/02/report.json";
/// moto's account: the one that created the bucket.
const OURS: &str = "123456789012";
const THEIRS: &str = "111122223333";

fn bucket_of(world: &World, owner: &str) -> Fidelity {
    Fidelity {
        bucket_owners: [(world.bucket.clone(), owner.to_string())].into(),
        ..Fidelity::default()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
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
    let world = World::start().await;
    previous_day(&world).await;
    the_day(&world).await;
    let bucket = world.bucket.clone();
    let proxy = FidelityProxy::start(&world.moto, bucket_of(&world, THEIRS));

    // Owned by another account: the first request (the listing) is refused, the run fails naming
    // the bucket and AccessDenied, and no report is written.
    let out = world
        .reporter_through(&proxy)
        .env("BUCKET_OWNER", OURS)
        .args(["report", "--date", DAY])
        .output()
        .expect("run the reporter");
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("list s3://{bucket}/scans/2024/05/02/"))
            && err.contains("AccessDenied"),
        "{err}"
    );
    assert!(!world.exists(REPORT_JSON).await);
    let c = proxy.counters();
    assert_eq!(c.wrong_owner, 1, "{c:?}");
    assert_eq!(c.owner_expected.get(&bucket), Some(&1), "{c:?}");
    assert!(c.owner_not_expected.is_empty(), "{c:?}");

    // Our bucket: the whole report, and every S3 request carried the owner: 1 listing, 4 scans,
    // the previous day's report, 3 files.
    proxy.set(bucket_of(&world, OURS));
    proxy.reset_counters();
    let out = world
        .reporter_through(&proxy)
        .env("BUCKET_OWNER", OURS)
        .args(["report", "--date", DAY])
        .output()
        .expect("run the reporter");
    assert_success(&out);
    let outcome: serde_json::Value = serde_json::from_slice(&out.stdout).expect("outcome");
    assert_eq!(outcome["scans_analysed"], 4, "{}", stderr(&out));
    let r = world.get_json(REPORT_JSON).await;
    assert_eq!(r["trend"]["previous_date"], "2024-05-01", "{r}");
    let c = proxy.counters();
    // The day's scans listed and read, the previous report, the day's event results listed,
    // three files written.
    assert_eq!(c.owner_expected.get(&bucket), Some(&10), "{c:?}");
    assert_eq!(s3_requests(&c), 10, "{c:?}");
    assert!(c.owner_not_expected.is_empty(), "{c:?}");
    assert_eq!(c.wrong_owner, 0);

    // Without an owner (a local run against a bucket of unknown owner) no header is sent, and S3
    // checks nothing, whoever owns the bucket.
    proxy.set(bucket_of(&world, THEIRS));
    proxy.reset_counters();
    let out = world
        .reporter_through(&proxy)
        .args(["report", "--date", DAY])
        .output()
        .expect("run the reporter");
    assert_success(&out);
    let c = proxy.counters();
    assert!(c.owner_expected.is_empty(), "{c:?}");
    assert_eq!(c.owner_not_expected.get(&bucket), Some(&10), "{c:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_owner_flag_sends_the_header_and_a_bad_owner_is_refused_before_any_call() {
    let world = World::start().await;
    the_day(&world).await;
    let bucket = world.bucket.clone();
    let proxy = FidelityProxy::start(&world.moto, bucket_of(&world, THEIRS));

    // Given as a flag, the owner is sent and checked the same way.
    let out = world
        .reporter_through(&proxy)
        .args(["report", "--date", DAY, "--bucket-owner", OURS])
        .output()
        .expect("run the reporter");
    let err = stderr(&out);
    assert!(
        !out.status.success() && err.contains(&bucket) && err.contains("AccessDenied"),
        "{err}"
    );
    assert_eq!(proxy.counters().wrong_owner, 1);
    assert!(!world.exists(REPORT_JSON).await);

    // Not an account id: refused naming the variable, and no request at all.
    proxy.reset_counters();
    for bad in [
        "12345678901",
        "123456789012x",
        "arn:aws:iam::123456789012:root",
    ] {
        let out = world
            .reporter_through(&proxy)
            .env("BUCKET_OWNER", bad)
            .args(["report", "--date", DAY])
            .output()
            .expect("run the reporter");
        let err = stderr(&out);
        assert!(!out.status.success(), "{bad}: {err}");
        assert!(err.contains("BUCKET_OWNER"), "{err}");
    }
    assert_eq!(proxy.counters().total_requests(), 0);
}
