//! The reporter binary against moto: crafted scan objects in, the three report files out.

mod common;

use common::*;
use compliance_rules::report::Verdict::{Compliant as C, NonCompliant as N};

#[tokio::test]
async fn a_day_of_changing_verdicts_is_reported_with_its_trend() {
    let world = World::start().await;
    previous_day(&world).await;
    the_day(&world).await;
    let outcome = world.report("2024-05-02");
    assert_eq!(outcome["scans_analysed"], 4);
    assert_eq!(
        outcome["keys"],
        serde_json::json!([
            "reports/2024/05/02/report.json",
            "reports/2024/05/02/report.csv",
            "reports/2024/05/02/report.html"
        ])
    );

    let r = world.get_json("reports/2024/05/02/report.json").await;
    assert_eq!(r["schema_version"], 1);
    assert_eq!(r["date"], "2024-05-02");
    assert_eq!(r["scans_analysed"], 4);
    let avg = r["compliance"]["average"].as_f64().unwrap();
    assert!(close(avg, (50.0 + 75.0 + 40.0 + 40.0) / 4.0), "{avg}");
    assert_eq!(r["compliance"]["minimum"], 40.0);
    assert_eq!(r["compliance"]["latest"], 40.0);
    assert_eq!(r["instances_seen"], 6);
    assert_eq!(r["persistent_offenders"], serde_json::json!(["i-a"]));
    assert_eq!(r["became_compliant"], serde_json::json!(["i-b"]));
    assert_eq!(r["new_offenders"], serde_json::json!(["i-c", "i-e"]));
    let started: Vec<&str> = r["scans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["started_at"].as_str().unwrap())
        .collect();
    assert_eq!(
        started,
        [
            "2024-05-02T00:00:00Z",
            "2024-05-02T06:00:00Z",
            "2024-05-02T12:00:00Z",
            "2024-05-02T18:00:00Z"
        ]
    );
    let t = &r["trend"];
    assert_eq!(t["previous_date"], "2024-05-01");
    assert!(close(t["previous_average"].as_f64().unwrap(), 100.0 / 3.0));
    assert!(close(
        t["average_change"].as_f64().unwrap(),
        51.25 - 100.0 / 3.0
    ));
    assert_eq!(t["direction"], "improving");
    assert_eq!(t["previous_persistent_offenders"], 2);
    assert_eq!(t["persistent_offenders_change"], -1);
    assert_eq!(r["skipped"], serde_json::json!([]));
    assert_eq!(
        r["message"],
        "4 scans analysed for 2024-05-02: average compliance 51.25%, minimum 40.00%, latest 40.00%; \
         1 persistent offender, 1 became compliant, 2 new offenders."
    );

    let (header, rows) = parse_csv(&world.get_text("reports/2024/05/02/report.csv").await);
    assert_eq!(
        header,
        [
            "instance_id",
            "name",
            "region",
            "scans",
            "non_compliant_scans",
            "exempt_scans",
            "latest_verdict",
            "persistent_offender",
            "missing_tags",
            "violations",
            "exemptions",
            "account_id"
        ]
    );
    assert_eq!(rows.len(), 6, "one row per instance");
    // Worst first: i-a (4), then i-c and i-e (2 each), then by id.
    let ids: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ids, ["i-a", "i-c", "i-e", "i-b", "i-d", "i-f"]);
    assert_eq!(
        rows[0],
        [
            "i-a",
            "web i-a",
            "us-east-1",
            "4",
            "4",
            "0",
            "non-compliant",
            "yes",
            "Owner",
            "sg-open tcp port 22 open to 0.0.0.0/0 (restricted port(s) 22)",
            "",
            "123456789012"
        ]
    );
    let b = rows.iter().find(|r| r[0] == "i-b").unwrap();
    assert_eq!(
        (b[3].as_str(), b[4].as_str(), b[6].as_str()),
        ("4", "1", "compliant")
    );
    let d = rows.iter().find(|r| r[0] == "i-d").unwrap();
    assert_eq!((d[5].as_str(), d[6].as_str()), ("4", "exempt"));

    let html = world.get_text("reports/2024/05/02/report.html").await;
    assert!(html.starts_with("<!DOCTYPE html>"));
    for needle in [
        "data-figure=\"average\"><div class=\"value\">51.25%",
        "data-figure=\"minimum\"><div class=\"value\">40.00%",
        "data-figure=\"persistent-offenders\"><div class=\"value bad\">1<",
        "<td>i-a</td><td>web i-a</td>",
        "<li>i-b</li>",
        "<polyline",
        "improving",
    ] {
        assert!(html.contains(needle), "report.html lacks {needle:?}");
    }
    // Self-contained: nothing is fetched from anywhere.
    for external in ["src=", "href=", "@import", "url("] {
        assert!(
            !html.contains(external),
            "report.html refers to an external asset: {external}"
        );
    }
}

#[tokio::test]
async fn corrupt_objects_are_skipped_and_named_never_fatal() {
    let world = World::start().await;
    let good = scan("2024-06-01T06:00:00Z", &[("i-a", N), ("i-b", C)]);
    world.put_scan(&good).await;
    let json = serde_json::to_vec(&good).unwrap();
    world
        .put_bytes(
            "scans/2024/06/01/truncated.json",
            json[..json.len() / 2].to_vec(),
        )
        .await;
    world
        .put_bytes(
            "scans/2024/06/01/not-json.json",
            b"<html>502 Bad Gateway</html>".to_vec(),
        )
        .await;
    let mut future = serde_json::to_value(&good).unwrap();
    future["schema_version"] = 99.into();
    world
        .put_bytes(
            "scans/2024/06/01/future.json",
            serde_json::to_vec(&future).unwrap(),
        )
        .await;
    world.put_bytes("scans/2024/06/01/empty.json", vec![]).await;
    // A stray object of a different shape under the prefix.
    world
        .put_bytes(
            "scans/2024/06/01/notes.json",
            br#"{"schema_version": 1, "note": "hi"}"#.to_vec(),
        )
        .await;

    let outcome = world.report("2024-06-01");
    assert_eq!(outcome["scans_analysed"], 1);
    assert_eq!(outcome["skipped"], 5);

    let r = world.get_json("reports/2024/06/01/report.json").await;
    assert_eq!(r["scans_analysed"], 1);
    assert_eq!(r["compliance"]["average"], 50.0);
    let skipped: Vec<(String, String)> = r["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["key"].as_str().unwrap().to_string(),
                s["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let reason = |key: &str| {
        skipped
            .iter()
            .find(|s| s.0 == format!("scans/2024/06/01/{key}"))
            .unwrap_or_else(|| panic!("{key} not named among {skipped:?}"))
            .1
            .clone()
    };
    assert_eq!(reason("empty.json"), "empty object");
    assert!(
        reason("truncated.json").starts_with("truncated JSON"),
        "{}",
        reason("truncated.json")
    );
    assert!(
        reason("not-json.json").starts_with("not JSON"),
        "{}",
        reason("not-json.json")
    );
    assert!(
        reason("future.json").starts_with("unknown schema_version 99"),
        "{}",
        reason("future.json")
    );
    assert!(
        reason("notes.json").starts_with("not a scan result"),
        "{}",
        reason("notes.json")
    );
    assert_eq!(skipped.len(), 5);
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .ends_with("; 5 objects skipped."),
        "{}",
        r["message"]
    );

    let html = world.get_text("reports/2024/06/01/report.html").await;
    assert!(html.contains("<td>scans/2024/06/01/truncated.json</td><td>truncated JSON"));
    assert!(html.contains("<td>scans/2024/06/01/future.json</td><td>unknown schema_version 99"));
    let (_, rows) = parse_csv(&world.get_text("reports/2024/06/01/report.csv").await);
    assert_eq!(rows.len(), 2);
}

#[tokio::test]
async fn a_day_without_scans_writes_a_report_that_says_so() {
    let world = World::start().await;
    // A scan of another day must not leak into this one.
    world
        .put_scan(&scan("2024-07-02T00:00:00Z", &[("i-a", N)]))
        .await;
    // The stack's name comes from STACK_NAME when no scan carries it.
    let out = world
        .reporter()
        .env("STACK_NAME", "prod-eu")
        .args(["report", "--date", "2024-07-01"])
        .output()
        .unwrap();
    assert_success(&out);
    let outcome: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(outcome["scans_analysed"], 0);

    let r = world.get_json("reports/2024/07/01/report.json").await;
    assert_eq!(r["stack"], "prod-eu");
    assert_eq!(r["scans_analysed"], 0);
    assert_eq!(r["compliance"], serde_json::Value::Null);
    assert_eq!(
        r["message"],
        "No scans were stored for 2024-07-01: nothing to report."
    );
    assert_eq!(r["instances"], serde_json::json!([]));
    assert_eq!(r["trend"], serde_json::Value::Null);
    let (header, rows) = parse_csv(&world.get_text("reports/2024/07/01/report.csv").await);
    assert_eq!(header.len(), 12);
    assert!(rows.is_empty());
    let html = world.get_text("reports/2024/07/01/report.html").await;
    assert!(html.contains("No scans were stored for 2024-07-01: nothing to report."));
    assert!(html.contains("Stack prod-eu &middot;"), "{html}");
    assert!(!html.contains("<svg"));

    // The next day compares against the empty day: the trend is there but unknown.
    world
        .put_scan(&scan("2024-07-02T06:00:00Z", &[("i-a", N)]))
        .await;
    world.report("2024-07-02");
    let next = world.get_json("reports/2024/07/02/report.json").await;
    assert_eq!(next["scans_analysed"], 2);
    assert_eq!(next["trend"]["direction"], "unknown");
    // No baseline from an empty day: i-a was non-compliant from the day's first scan.
    assert_eq!(next["new_offenders"], serde_json::json!([]));
}

#[tokio::test]
async fn the_daily_summary_goes_to_the_topic() {
    let world = World::start().await;
    the_day(&world).await;
    let topic = world
        .sns
        .create_topic()
        .name("compliance-alerts-test")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let out = world
        .reporter()
        .env("TOPIC_ARN", &topic)
        .args(["report", "--date", "2024-05-02"])
        .output()
        .unwrap();
    assert_success(&out);
    let outcome: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let message_id = outcome["sns_message_id"].as_str().expect("a message id");

    // moto records what each topic was sent; its data API exposes it.
    let data: serde_json::Value =
        serde_json::from_str(&world.moto.get("/moto-api/data.json").unwrap()).unwrap();
    let topics = data["sns"]["Topic"]
        .as_array()
        .expect("moto lists SNS topics");
    let sent = topics
        .iter()
        .find(|t| t["arn"] == topic.as_str())
        .expect("the topic")["sent_notifications"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(sent.len(), 1, "one message a day");
    assert_eq!(sent[0][0], message_id);
    let body = sent[0][1].as_str().unwrap();
    let subject = sent[0][2].as_str().unwrap();
    assert_eq!(
        subject,
        "[test] Compliance report 2024-05-02: avg 51.2%, 1 persistent offender"
    );
    assert!(body.starts_with("4 scans analysed for 2024-05-02: average compliance 51.25%"));
    assert!(body.contains("- i-a (web i-a) in us-east-1: 4/4 scans non-compliant"));
    assert!(
        body.contains("Full report: s3://compliance-results-test/reports/2024/05/02/report.html")
    );
}

#[test]
fn bad_settings_fail_with_a_reason() {
    let out = std::process::Command::new(reporter_bin())
        .env_remove("BUCKET_NAME")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .args(["report", "--date", "2024-05-02"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--bucket"), "{err}");

    let out = std::process::Command::new(reporter_bin())
        .env("BUCKET_NAME", "b")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .args(["report", "--date", "02/05/2024"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a YYYY-MM-DD date"), "{err}");

    // A day after today is refused before any AWS call: the endpoint here would refuse the
    // connection, and the error is the date's, not the connection's.
    let tomorrow = time::OffsetDateTime::now_utc().date().next_day().unwrap();
    let tomorrow = compliance_reporter::format_date(tomorrow);
    let out = std::process::Command::new(reporter_bin())
        .env("BUCKET_NAME", "b")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .args(["report", "--date", &tomorrow])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{tomorrow} is in the future")),
        "{err}"
    );
}
