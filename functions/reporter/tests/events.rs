//! Event-driven checks in the daily report: event results stored under `events/` beside a
//! scheduled scan are counted, their offenders listed with the change and who made it, and the
//! time from change to stored result measured, in report.json and report.html.

mod common;

use common::*;
use compliance_rules::report::Verdict;
use serde_json::json;

/// An event result as the scanner's event mode stores it: a scan result of the judged instances
/// with the batch's changes.
fn event_result(
    finished_at: &str,
    changes: serde_json::Value,
    verdicts: &[(&str, Verdict)],
) -> Vec<u8> {
    let scan = scan(finished_at, verdicts);
    let mut v = serde_json::to_value(&scan).expect("a scan serialises");
    let findings = scan.summary.non_compliant;
    v["trigger"] = json!("event");
    v["events"] = changes;
    v["findings"] = json!(findings);
    serde_json::to_vec(&v).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_results_are_counted_listed_and_timed_beside_the_scans() {
    let world = World::start().await;
    world
        .put_scan(&scan(
            "2024-07-01T06:00:00Z",
            &[
                ("i-aaa", Verdict::Compliant),
                ("i-bbb", Verdict::NonCompliant),
            ],
        ))
        .await;
    world
        .put_bytes(
            "events/2024/07/01/20240701T101500Z-e-1.json",
            event_result(
                "2024-07-01T10:15:20Z",
                json!([{
                    "id": "e-1", "name": "RunInstances", "source": "aws.ec2",
                    "actor": "arn:aws:iam::123456789012:user/alice",
                    "time": "2024-07-01T10:15:00Z", "account": "123456789012",
                    "region": "us-east-1", "change": "RunInstances of i-new",
                    "instances": ["i-new"], "groups": [], "judged": ["i-new"]
                }]),
                &[("i-new", Verdict::NonCompliant)],
            ),
        )
        .await;
    world
        .put_bytes(
            "events/2024/07/01/20240701T120000Z-e-2.json",
            event_result(
                "2024-07-01T12:01:00Z",
                json!([{
                    "id": "e-2", "name": "CreateTags", "source": "aws.ec2",
                    "actor": "arn:aws:iam::123456789012:user/bob",
                    "time": "2024-07-01T12:00:00Z", "account": "123456789012",
                    "region": "us-east-1", "change": "CreateTags on i-bbb",
                    "instances": ["i-bbb"], "groups": [], "judged": ["i-bbb"]
                }]),
                &[("i-bbb", Verdict::Compliant)],
            ),
        )
        .await;
    world.report("2024-07-01");
    let report = world.get_json("reports/2024/07/01/report.json").await;
    let events = &report["events"];
    assert_eq!(events["results"], 2, "{events}");
    assert_eq!(events["changes"], 2);
    assert_eq!(events["findings"], 1);
    assert_eq!(
        events["offenders"],
        json!([{
            "instance_id": "i-new", "account_id": "", "change": "RunInstances of i-new",
            "actor": "arn:aws:iam::123456789012:user/alice", "time": "2024-07-01T10:15:00Z"
        }])
    );
    // 20 s and 60 s from change to stored result.
    assert_eq!(
        events["change_to_result"],
        json!({"changes": 2, "median_seconds": 40.0, "max_seconds": 60.0})
    );
    // The scheduled scan is still the day's figure; the event results are beside it.
    assert_eq!(report["scans_analysed"], 1);
    let html = world.get_text("reports/2024/07/01/report.html").await;
    assert!(
        html.contains("Event-driven checks")
            && html.contains("2 changes judged in 2 batches, 1 findings")
            && html.contains("RunInstances of i-new"),
        "{html}"
    );
}
