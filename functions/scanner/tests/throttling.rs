//! The real scanner through the fidelity proxy, which answers a share of requests with each
//! service's own throttling error (EC2 `RequestLimitExceeded`, S3 `SlowDown`, `Throttling` for STS,
//! CloudWatch and SNS) and drops some answers after moto has served them. A run retries its way
//! through, or fails in bounded time naming the call; a throttled call is never taken as "absent".

mod common;

use std::time::{Duration, Instant};

use common::*;
use compliance_scanner::run::MAX_ATTEMPTS;
use test_support::fidelity::{Counters, Fidelity, FidelityProxy};
use test_support::Moto;

const BUCKET: &str = "compliance-results-throttled";
const STACK: &str = "throttled";

/// Every service a scan calls, by SigV4 signing name.
const SERVICES: [&str; 5] = ["ec2", "sts", "s3", "monitoring", "sns"];

/// `rate` of throttling on every service a scan calls, and `drop` of answers lost.
fn throttling(seed: u64, rate: f64, drop: f64) -> Fidelity {
    Fidelity {
        seed,
        throttle: SERVICES.iter().map(|s| (s.to_string(), rate)).collect(),
        drop_answers: drop,
        ..Fidelity::default()
    }
}

/// The bucket, the topic and four instances, built straight on moto (not through the proxy): two
/// compliant, two missing tags in a group open to SSH from anywhere. Returns the topic ARN.
async fn fleet(aws: &Aws) -> String {
    let topic = aws.stack(BUCKET, "compliance-alerts-throttled").await;
    let ec2 = &aws.ec2;
    let image = image_id(ec2).await;
    let (vpc, subnet) = vpc_subnet(ec2, "10.1.0.0/16", "10.1.1.0/24").await;
    let open = group(
        ec2,
        &vpc,
        "ssh-open",
        vec![rule("tcp", Some(22), Some(22), &["0.0.0.0/0"])],
    )
    .await;
    let internal = group(
        ec2,
        &vpc,
        "internal",
        vec![rule("tcp", Some(443), Some(443), &["10.0.0.0/8"])],
    )
    .await;
    let tags = [
        ("Environment", "prod"),
        ("Owner", "ana"),
        ("CostCenter", "cc-1"),
    ];
    launch(ec2, &image, Some(&subnet), &[&internal], &tags, 2).await;
    launch(
        ec2,
        &image,
        Some(&subnet),
        &[&open],
        &[("Environment", "prod")],
        2,
    )
    .await;
    topic
}

fn throttled(c: &Counters, service: &str) -> u64 {
    c.throttled.get(service).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn scans_get_through_heavy_throttling_and_lost_answers_storing_one_result_each() {
    let moto = Moto::start();
    let aws = Aws::new(&moto).await;
    let topic = fleet(&aws).await;
    let proxy = FidelityProxy::start(&moto, throttling(7, 0.3, 0.05));
    let env = [
        ("BUCKET_NAME", BUCKET),
        ("TOPIC_ARN", topic.as_str()),
        ("STACK_NAME", STACK),
        // At 30 % throttling plus lost answers, five attempts lose about one call in 240: ten
        // keep this test about retrying rather than those odds. The default of five is checked
        // in the next test, and this also shows AWS_MAX_ATTEMPTS is honoured (some calls here
        // take more than five attempts).
        ("AWS_MAX_ATTEMPTS", "10"),
    ];
    // Scan until every service has throttled at least once and an answer was lost, so the test
    // cannot pass by never meeting them.
    let met_everything =
        |c: &Counters| SERVICES.iter().all(|s| throttled(c, s) > 0) && c.dropped > 0;
    let mut runs = 0;
    let mut slowest = Duration::ZERO;
    while !met_everything(&proxy.counters()) {
        assert!(
            runs < 30,
            "30 scans did not meet every service's throttling: {:?}",
            proxy.counters()
        );
        runs += 1;
        let before = aws.scan_keys(BUCKET).await;
        let started = Instant::now();
        let out = run_scan_with(&proxy.aws_env(), &env);
        slowest = slowest.max(started.elapsed());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "scan {runs} failed:\n{stderr}");
        let report = stdout_json(&out);
        assert_eq!(report["errors"], serde_json::json!([]), "{stderr}");
        assert_eq!(report["scanned"], 4);
        assert_eq!(report["non_compliant"], 2);
        assert_eq!(report["alert_sent"], true);

        // Exactly one new result, under the key the run reported (a PutObject whose answer was
        // lost is sent again under the same key).
        let key = report["result_key"].as_str().expect("result_key");
        let after = aws.scan_keys(BUCKET).await;
        assert_eq!(after.len(), before.len() + 1, "{before:?} -> {after:?}");
        assert!(after.iter().any(|k| k == key) && !before.iter().any(|k| k == key));
        let result = aws.read_result(BUCKET, key).await;
        assert_eq!(result.account_id.as_deref(), Some("123456789012"));
        assert_eq!(result.summary.compliant, 2);
        assert_eq!(result.summary.non_compliant, 2);
    }

    // Every run's metrics and alert reached moto. A Publish whose answer was lost is sent again
    // (standard topics have no idempotency key), so there may be more messages than runs.
    let sent = sent_notifications(&moto, &topic);
    assert!(
        sent.len() >= runs,
        "{} messages for {runs} runs",
        sent.len()
    );
    assert!(sent
        .iter()
        .all(|(subject, _)| subject.contains("2 of 4 instances non-compliant")));
    assert_eq!(
        aws.metric_value("ComplianceMonitoring", "CompliancePercentage", STACK)
            .await,
        Some(50.0)
    );
    let c = proxy.counters();
    eprintln!(
        "{runs} scans, slowest {slowest:?}; {} requests, throttled {:?}, dropped {}",
        c.total_requests(),
        c.throttled,
        c.dropped
    );
}

/// One service that answers every request with its throttling error.
struct Case<'a> {
    service: &'a str,
    /// What the failure may name: (the request kind the proxy counts, text in the error).
    calls: Vec<(&'a str, &'a str)>,
    /// The service's throttling code, which the error carries.
    code: &'a str,
    /// Whether the result is stored all the same (metrics and alert come after it).
    stored: bool,
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_that_always_throttles_fails_the_run_in_bounded_time_naming_the_call() {
    let moto = Moto::start();
    let aws = Aws::new(&moto).await;
    let topic = fleet(&aws).await;
    let proxy = FidelityProxy::start(&moto, Fidelity::default());
    let put = format!("s3:PUT /{BUCKET}/scans/*");
    let publish = format!("Publish to {topic}");
    let cases = [
        Case {
            service: "ec2",
            calls: vec![
                ("ec2:DescribeInstances", "DescribeInstances in us-east-1"),
                (
                    "ec2:DescribeSecurityGroups",
                    "DescribeSecurityGroups in us-east-1",
                ),
            ],
            code: "RequestLimitExceeded",
            stored: false,
        },
        Case {
            service: "sts",
            calls: vec![("sts:GetCallerIdentity", "STS GetCallerIdentity")],
            code: "Throttling",
            stored: false,
        },
        Case {
            service: "s3",
            calls: vec![(
                put.as_str(),
                "PutObject s3://compliance-results-throttled/scans/",
            )],
            code: "SlowDown",
            stored: false,
        },
        Case {
            service: "monitoring",
            calls: vec![(
                "monitoring:PutMetricData",
                "PutMetricData in namespace ComplianceMonitoring",
            )],
            code: "Throttling",
            stored: true,
        },
        Case {
            service: "sns",
            calls: vec![("sns:Publish", publish.as_str())],
            code: "Throttling",
            stored: true,
        },
    ];
    let env = [
        ("BUCKET_NAME", BUCKET),
        ("TOPIC_ARN", topic.as_str()),
        ("STACK_NAME", STACK),
    ];
    for case in &cases {
        proxy.set(Fidelity {
            throttle: [(case.service.to_string(), 1.0)].into(),
            ..Fidelity::default()
        });
        proxy.reset_counters();
        let before = aws.scan_keys(BUCKET).await;
        let started = Instant::now();
        let out = run_scan_with(&proxy.aws_env(), &env);
        let elapsed = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let service = case.service;
        assert!(
            !out.status.success(),
            "{service}: the run succeeded\n{stderr}"
        );
        // Four backoffs of at most 0.2, 0.4, 0.8 and 1.6 s, plus the run itself.
        assert!(elapsed < Duration::from_secs(30), "{service}: {elapsed:?}");
        let (kind, _) = case
            .calls
            .iter()
            .find(|(_, named)| stderr.contains(named))
            .unwrap_or_else(|| panic!("{service}: the failure names no call:\n{stderr}"));
        assert!(stderr.contains(case.code), "{service}: {stderr}");
        let c = proxy.counters();
        // The call that failed was tried exactly MAX_ATTEMPTS times, and none more than that.
        assert_eq!(
            c.requests.get(*kind).copied(),
            Some(u64::from(MAX_ATTEMPTS)),
            "{service}: {:?}",
            c.requests
        );
        for (other, _) in &case.calls {
            assert!(c.requests.get(*other).copied().unwrap_or(0) <= u64::from(MAX_ATTEMPTS));
        }
        let after = aws.scan_keys(BUCKET).await;
        if case.stored {
            assert_eq!(after.len(), before.len() + 1, "{service}: {stderr}");
            let report = stdout_json(&out);
            let errors = report["errors"].as_array().expect("errors");
            assert_eq!(errors.len(), 1, "{service}: {errors:?}");
        } else {
            assert_eq!(after, before, "{service}: something was stored");
            assert!(stderr.contains("nothing stored"), "{service}: {stderr}");
        }
        eprintln!(
            "{service} at 1.0: failed in {elapsed:?} after {} requests, {} throttled",
            c.total_requests(),
            c.total_throttled()
        );
    }

    // AWS_MAX_ATTEMPTS sets the attempts.
    proxy.set(Fidelity {
        throttle: [("sns".to_string(), 1.0)].into(),
        ..Fidelity::default()
    });
    proxy.reset_counters();
    let out = run_scan_with(
        &proxy.aws_env(),
        &[
            ("BUCKET_NAME", BUCKET),
            ("TOPIC_ARN", topic.as_str()),
            ("AWS_MAX_ATTEMPTS", "2"),
        ],
    );
    assert!(!out.status.success());
    assert_eq!(proxy.counters().requests.get("sns:Publish"), Some(&2));

    // A value the SDK would refuse is refused before any call.
    proxy.reset_counters();
    let out = run_scan_with(
        &proxy.aws_env(),
        &[("BUCKET_NAME", BUCKET), ("AWS_MAX_ATTEMPTS", "0")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("AWS_MAX_ATTEMPTS"), "{stderr}");
    assert_eq!(proxy.counters().total_requests(), 0);
}
