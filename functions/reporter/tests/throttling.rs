//! The real reporter through the fidelity proxy, which answers a share of S3 and SNS requests with
//! their throttling errors (`SlowDown`, `Throttling`) and drops some answers after moto has served
//! them. A run retries its way through to the whole report, or fails naming the call: a read S3
//! did not serve is never taken for a missing or bad object, so no scan and no trend goes missing.

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::*;
use compliance_reporter::retry::MAX_ATTEMPTS;
use test_support::fidelity::{Counters, Fidelity, FidelityProxy};

const DAY: &str = "2024-05-02";
const REPORT_JSON: &str = "reports/2024/05/02/report.json";

/// The previous day's report and the day's four scans (see `common::the_day`), written straight
/// to moto, and a topic. Returns the topic ARN.
async fn seeded(world: &World) -> String {
    previous_day(world).await;
    the_day(world).await;
    world
        .sns
        .create_topic()
        .name("compliance-daily")
        .send()
        .await
        .expect("create topic")
        .topic_arn
        .expect("topic arn")
}

fn throttling(seed: u64, s3: f64, sns: f64, drop: f64) -> Fidelity {
    Fidelity {
        seed,
        throttle: [("s3".to_string(), s3), ("sns".to_string(), sns)].into(),
        drop_answers: drop,
        ..Fidelity::default()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The whole day is in the stored report: four scans, nothing skipped, the trend against the
/// previous day.
async fn assert_whole_report(world: &World) {
    let r = world.get_json(REPORT_JSON).await;
    assert_eq!(r["scans_analysed"], 4, "{r}");
    assert_eq!(r["skipped"], serde_json::json!([]), "{r}");
    assert_eq!(r["trend"]["previous_date"], "2024-05-01", "{r}");
}

fn count(c: &Counters, kind: &str) -> u64 {
    c.requests.get(kind).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_get_through_heavy_throttling_and_lost_answers_whole() {
    let world = World::start().await;
    let topic = seeded(&world).await;
    let proxy = FidelityProxy::start(&world.moto, throttling(11, 0.3, 0.3, 0.05));
    let bucket = &world.bucket;
    let scan_gets = format!("s3:GET /{bucket}/scans/*");
    let report_gets = format!("s3:GET /{bucket}/reports/*");
    let report_puts = format!("s3:PUT /{bucket}/reports/*");
    // Report until a scan's GetObject, the previous report's GetObject and a PutObject each needed
    // more than one attempt, SNS throttled and an answer was lost: the test cannot pass by never
    // meeting them.
    let met_everything = |c: &Counters, runs: u64| {
        count(c, &scan_gets) > 4 * runs
            && count(c, &report_gets) > runs
            && count(c, &report_puts) > 3 * runs
            && c.throttled.get("sns").is_some_and(|n| *n > 0)
            && c.dropped > 0
    };
    let mut runs = 0;
    let mut slowest = Duration::ZERO;
    while !met_everything(&proxy.counters(), runs) {
        assert!(
            runs < 30,
            "30 reports did not meet every kind of failure: {:?}",
            proxy.counters()
        );
        runs += 1;
        let started = Instant::now();
        let out = world
            .reporter_through(&proxy)
            .env("TOPIC_ARN", &topic)
            // At 30 % throttling plus lost answers, five attempts lose about one call in 240:
            // ten keep this test about retrying (the default is held to account below).
            .env("AWS_MAX_ATTEMPTS", "10")
            .args(["report", "--date", DAY])
            .output()
            .expect("run the reporter");
        slowest = slowest.max(started.elapsed());
        assert_success(&out);
        let outcome: serde_json::Value = serde_json::from_slice(&out.stdout).expect("outcome");
        assert_eq!(outcome["scans_analysed"], 4, "{}", stderr(&out));
        assert_eq!(outcome["skipped"], 0, "{}", stderr(&out));
        assert!(outcome["sns_message_id"].is_string(), "{outcome}");
        assert_whole_report(&world).await;
        for key in ["report.csv", "report.html"] {
            assert!(world.exists(&format!("reports/2024/05/02/{key}")).await);
        }
    }
    let c = proxy.counters();
    eprintln!(
        "{runs} reports, slowest {slowest:?}; {} requests, throttled {:?}, dropped {}; \
         {scan_gets}: {}, {report_gets}: {}, {report_puts}: {}",
        c.total_requests(),
        c.throttled,
        c.dropped,
        count(&c, &scan_gets),
        count(&c, &report_gets),
        count(&c, &report_puts),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_or_refused_service_fails_the_run_in_bounded_time_naming_the_call() {
    let world = World::start().await;
    let topic = seeded(&world).await;
    let proxy = FidelityProxy::start(&world.moto, Fidelity::default());
    let bucket = world.bucket.clone();
    let run = |config: Fidelity, attempts: Option<&str>| {
        proxy.set(config);
        proxy.reset_counters();
        let mut cmd = world.reporter_through(&proxy);
        cmd.env("TOPIC_ARN", &topic).args(["report", "--date", DAY]);
        if let Some(n) = attempts {
            cmd.env("AWS_MAX_ATTEMPTS", n);
        }
        let started = Instant::now();
        let out = cmd.output().expect("run the reporter");
        let elapsed = started.elapsed();
        assert!(!out.status.success(), "the run succeeded: {}", stderr(&out));
        // Four backoffs of at most 0.2, 0.4, 0.8 and 1.6 s, plus the run itself.
        assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
        (stderr(&out), proxy.counters(), elapsed)
    };

    // S3 always throttling: the listing fails after MAX_ATTEMPTS, and nothing is written.
    let (err, c, elapsed) = run(throttling(1, 1.0, 0.0, 0.0), None);
    assert!(
        err.contains(&format!("list s3://{bucket}/scans/2024/05/02/")) && err.contains("SlowDown"),
        "{err}"
    );
    assert_eq!(
        count(&c, &format!("s3:GET /{bucket}")),
        u64::from(MAX_ATTEMPTS),
        "{c:?}"
    );
    assert!(!world.exists(REPORT_JSON).await);
    eprintln!("s3 at 1.0: failed in {elapsed:?}; {c:?}");

    // The bucket refused (AccessDenied): an error too, tried once (not retryable).
    let (err, c, _) = run(
        Fidelity {
            foreign_buckets: [bucket.clone()].into(),
            ..Fidelity::default()
        },
        None,
    );
    assert!(
        err.contains(&format!("list s3://{bucket}/scans/2024/05/02/"))
            && err.contains("AccessDenied"),
        "{err}"
    );
    assert_eq!(count(&c, &format!("s3:GET /{bucket}")), 1, "{c:?}");
    assert!(!world.exists(REPORT_JSON).await);

    // SNS always throttling: the three files are stored, then the publish fails the run.
    let (err, c, elapsed) = run(throttling(2, 0.0, 1.0, 0.0), None);
    assert!(
        err.contains("publish the daily summary") && err.contains("Throttling"),
        "{err}"
    );
    assert_eq!(count(&c, "sns:Publish"), u64::from(MAX_ATTEMPTS), "{c:?}");
    assert_whole_report(&world).await;
    eprintln!("sns at 1.0: failed in {elapsed:?}; {c:?}");

    // AWS_MAX_ATTEMPTS sets the attempts.
    let (_, c, _) = run(throttling(3, 0.0, 1.0, 0.0), Some("2"));
    assert_eq!(count(&c, "sns:Publish"), 2, "{c:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_s3_did_not_serve_fails_the_run_and_never_leaves_a_scan_or_the_trend_out() {
    let world = World::start().await;
    seeded(&world).await;
    let proxy = FidelityProxy::start(&world.moto, Fidelity::default());
    let bucket = world.bucket.clone();
    let scan_read = format!("get s3://{bucket}/scans/2024/05/02/");
    let previous_read = format!(
        "read the previous day's report for the trend: get s3://{bucket}/reports/2024/05/01/report.json"
    );
    // With one attempt per call, each throttled S3 request is final. The reporter's S3 calls are
    // sequential, so a seed decides which call meets the throttling first: try seeds until both
    // reads that used to be forgiven (a listed scan, the previous day's report) have met it.
    let (mut whole, mut scan_failures, mut previous_failures, mut other_failures) = (0, 0, 0, 0);
    for seed in 0..300 {
        if scan_failures > 0 && previous_failures > 0 {
            break;
        }
        proxy.set(throttling(seed, 0.25, 0.0, 0.0));
        let out = world
            .reporter_through(&proxy)
            .env("AWS_MAX_ATTEMPTS", "1")
            .args(["report", "--date", DAY])
            .output()
            .expect("run the reporter");
        let err = stderr(&out);
        if out.status.success() {
            // Succeeding means nothing was throttled on the way: the whole day, with its trend.
            assert_whole_report(&world).await;
            whole += 1;
            continue;
        }
        assert!(err.contains("SlowDown"), "seed {seed}: {err}");
        if err.contains(&previous_read) {
            previous_failures += 1;
        } else if err.contains(&scan_read) {
            scan_failures += 1;
        } else {
            assert!(
                err.contains(&format!("list s3://{bucket}/"))
                    || err.contains(&format!("put s3://{bucket}/reports/2024/05/02/")),
                "seed {seed}: the failure names no call: {err}"
            );
            other_failures += 1;
        }
    }
    eprintln!(
        "{whole} whole reports; failed at a scan's read {scan_failures}, at the previous \
         report's read {previous_failures}, elsewhere {other_failures}; {:?}",
        proxy.counters().throttled
    );
    assert!(scan_failures > 0 && previous_failures > 0);
}
