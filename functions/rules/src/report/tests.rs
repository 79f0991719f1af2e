use super::*;
use crate::result::{ScanSettings, Summary, SCAN_SCHEMA_VERSION};

fn instance(id: &str, verdict: Verdict) -> InstanceResult {
    InstanceResult {
        instance_id: id.to_string(),
        region: "us-east-1".into(),
        state: "running".into(),
        name: Some(format!("name of {id}")),
        compliant: verdict == Verdict::Compliant,
        exempt: verdict == Verdict::Exempt,
        missing_tags: if verdict == Verdict::NonCompliant {
            vec!["Owner".into()]
        } else {
            vec![]
        },
        near_misses: vec![],
        security_groups: vec![],
        violations: vec![],
        ..InstanceResult::default()
    }
}

/// A scan at `hh:mm` of 2024-05-02 with the given verdicts; the summary is computed from them.
fn scan(time: &str, verdicts: &[(&str, Verdict)]) -> ScanResult {
    let instances: Vec<InstanceResult> = verdicts.iter().map(|(id, v)| instance(id, *v)).collect();
    let count = |v: Verdict| verdicts.iter().filter(|x| x.1 == v).count() as u64;
    let (compliant, non_compliant, exempt) = (
        count(Verdict::Compliant),
        count(Verdict::NonCompliant),
        count(Verdict::Exempt),
    );
    let judged = compliant + non_compliant;
    ScanResult {
        schema_version: SCAN_SCHEMA_VERSION,
        started_at: format!("2024-05-02T{time}:00Z"),
        finished_at: format!("2024-05-02T{time}:05Z"),
        duration_ms: 5000,
        stack: "test".into(),
        account_id: None,
        regions: vec!["us-east-1".into()],
        settings: ScanSettings {
            required_tags: vec!["Owner".into()],
            restricted_ports: vec![22],
            exempt_tag_key: "ComplianceExempt".into(),
            exemptions: Vec::new(),
        },
        summary: Summary {
            scanned: instances.len() as u64,
            exempt,
            compliant,
            non_compliant,
            compliance_percentage: if judged == 0 {
                100.0
            } else {
                compliant as f64 * 100.0 / judged as f64
            },
            instances_missing_tags: non_compliant,
            open_rules: 0,
            exempted_findings: 0,
        },
        instances,
        security_groups: vec![],
    }
}

use Verdict::{Compliant as C, Exempt as E, NonCompliant as N};

fn day() -> Vec<ScanResult> {
    vec![
        scan("00:00", &[("i-a", N), ("i-b", N), ("i-c", C), ("i-d", E)]),
        scan("06:00", &[("i-a", N), ("i-b", C), ("i-c", C), ("i-d", E)]),
        scan(
            "12:00",
            &[("i-a", N), ("i-b", C), ("i-c", N), ("i-d", E), ("i-e", N)],
        ),
    ]
}

#[test]
fn folds_the_day_figures() {
    let mut acc = DayAccumulator::new("2024-05-02", "2024-05-03T00:00:01Z");
    for (n, s) in day().iter().enumerate() {
        acc.add_scan(&format!("scans/{n}.json"), s);
    }
    let r = acc.finish(None);
    assert_eq!(r.scans_analysed, 3);
    let c = r.compliance.unwrap();
    // 1/3, 2/3, 1/4 compliant.
    let expected_avg = (100.0 / 3.0 + 200.0 / 3.0 + 25.0) / 3.0;
    assert!((c.average - expected_avg).abs() < 1e-9);
    assert_eq!(c.minimum, 25.0);
    assert_eq!(c.latest, 25.0);
    assert_eq!(r.instances_seen, 5);
    assert_eq!(r.persistent_offenders, vec!["i-a"]);
    assert_eq!(r.became_compliant, vec!["i-b"]);
    // i-c: compliant at the start, non-compliant at the end; i-e: appeared non-compliant.
    assert_eq!(r.new_offenders, vec!["i-c", "i-e"]);
    assert_eq!(r.trend, None);
    // Worst first.
    assert_eq!(r.instances[0].instance_id, "i-a");
    assert_eq!(r.instances[0].non_compliant_scans, 3);
    let d = r.instances.iter().find(|i| i.instance_id == "i-d").unwrap();
    assert_eq!((d.scans, d.exempt_scans, d.latest_verdict), (3, 3, E));
    assert!(r.message.contains("3 scans analysed"), "{}", r.message);
}

#[test]
fn order_of_arrival_does_not_matter() {
    let mut forward = DayAccumulator::new("2024-05-02", "x");
    let mut backward = DayAccumulator::new("2024-05-02", "x");
    let scans = day();
    for (n, s) in scans.iter().enumerate() {
        forward.add_scan(&format!("k{n}"), s);
    }
    for (n, s) in scans.iter().enumerate().rev() {
        backward.add_scan(&format!("k{n}"), s);
    }
    assert_eq!(forward.finish(None), backward.finish(None));
}

#[test]
fn previous_day_sets_the_baseline_and_the_trend() {
    let mut before = DayAccumulator::new("2024-05-01", "x");
    let mut p = scan("18:00", &[("i-a", N), ("i-b", N), ("i-c", N), ("i-d", E)]);
    p.started_at = "2024-05-01T18:00:00Z".into();
    before.add_scan("p", &p);
    let previous = before.finish(None);
    assert_eq!(previous.compliance.unwrap().average, 0.0);

    let mut acc = DayAccumulator::new("2024-05-02", "x");
    // All compliant but i-a, all day.
    acc.add_scan(
        "k1",
        &scan("00:00", &[("i-a", N), ("i-b", C), ("i-c", C), ("i-f", N)]),
    );
    acc.add_scan(
        "k2",
        &scan("12:00", &[("i-a", N), ("i-b", C), ("i-c", C), ("i-f", N)]),
    );
    let r = acc.finish(Some(&previous));
    // Compliant since the first scan, but non-compliant at the end of the previous day.
    assert_eq!(r.became_compliant, vec!["i-b", "i-c"]);
    // i-f was absent from the previous day's report.
    assert_eq!(r.new_offenders, vec!["i-f"]);
    assert_eq!(r.persistent_offenders, vec!["i-a", "i-f"]);
    let t = r.trend.unwrap();
    assert_eq!(t.previous_date, "2024-05-01");
    assert_eq!(t.average_change, Some(50.0));
    assert_eq!(t.direction, Direction::Improving);
    assert_eq!(t.previous_persistent_offenders, 3);
    assert_eq!(t.persistent_offenders_change, -1);
}

#[test]
fn a_day_without_scans_says_so() {
    let r = DayAccumulator::new("2024-05-02", "x").finish(None);
    assert_eq!(r.scans_analysed, 0);
    assert_eq!(r.compliance, None);
    assert!(r.persistent_offenders.is_empty());
    assert_eq!(
        r.message,
        "No scans were stored for 2024-05-02: nothing to report."
    );
    let html = html::render(&r);
    assert!(html.contains("No scans were stored for 2024-05-02"));
    assert!(!html.contains("<svg"));
    assert_eq!(csv::render(&r).lines().count(), 1);
}

#[test]
fn skipped_objects_are_named_and_never_counted() {
    let mut acc = DayAccumulator::new("2024-05-02", "x");
    acc.skip("scans/2024/05/02/bad.json", "not JSON (expected value)");
    let mut odd = scan("01:00", &[("i-a", N)]);
    odd.started_at = "yesterday".into();
    acc.add_scan("scans/2024/05/02/odd.json", &odd);
    for (key, started_at, verdict) in [
        // Another day's scan under this day's prefix, and one whose offset puts it on the next day.
        ("misfiled", "2024-05-01T23:00:00Z", N),
        ("late", "2024-05-02T23:30:00-02:00", N),
        // The day's first and last instants are in it, whatever the offset.
        ("first", "2024-05-02T02:00:00+02:00", C),
        ("last", "2024-05-02T23:59:59.999Z", N),
    ] {
        let mut s = scan("00:00", &[("i-a", verdict)]);
        s.started_at = started_at.into();
        acc.add_scan(&format!("scans/2024/05/02/{key}.json"), &s);
    }
    let r = acc.finish(None);
    assert_eq!(r.scans_analysed, 2);
    let skipped: Vec<&str> = r.skipped.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(
        skipped,
        [
            "scans/2024/05/02/bad.json",
            "scans/2024/05/02/odd.json",
            "scans/2024/05/02/misfiled.json",
            "scans/2024/05/02/late.json"
        ]
    );
    assert_eq!(
        r.skipped[2].reason,
        "started_at 2024-05-01T23:00:00Z is not on 2024-05-02 (UTC): a scan of another day"
    );
    assert!(r.message.contains("4 objects skipped"), "{}", r.message);
}

#[test]
fn report_json_round_trips() {
    let mut acc = DayAccumulator::new("2024-05-02", "x");
    for (n, s) in day().iter().enumerate() {
        acc.add_scan(&format!("k{n}"), s);
    }
    let r = acc.finish(None);
    let json = serde_json::to_string(&r).unwrap();
    assert_eq!(serde_json::from_str::<DailyReport>(&json).unwrap(), r);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["instances"][0]["latest_verdict"], "non-compliant");
}

#[test]
fn html_escapes_every_text() {
    let mut s = scan("03:00", &[("i-a", N)]);
    s.instances[0].name = Some("<script>alert('x')</script>".into());
    s.stack = "\"><img src=x>".into();
    let mut acc = DayAccumulator::new("2024-05-02", "x");
    acc.add_scan("scans/<b>.json", &s);
    let html = html::render(&acc.finish(None));
    assert!(!html.contains("<script>"));
    assert!(!html.contains("<img"));
    assert!(!html.contains("<b>"));
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
}

#[test]
fn summary_subject_fits_sns() {
    let mut acc = DayAccumulator::new("2024-05-02", "x");
    acc.add_scan("k", &scan("03:00", &[("i-a", N), ("i-b", C)]));
    let r = acc.finish(None);
    let subject = summary_subject(&r);
    assert_eq!(
        subject,
        "[test] Compliance report 2024-05-02: avg 50.0%, 1 persistent offender"
    );
    let body = summary_body(&r, "s3://b/reports/2024/05/02/report.html");
    assert!(body.contains("- i-a (name of i-a) in us-east-1: 1/1 scans non-compliant"));
    assert!(body.ends_with("Full report: s3://b/reports/2024/05/02/report.html\n"));
}

#[test]
fn the_summary_stays_under_the_sns_cap_however_bad_the_day() {
    // The worst a day can hold: thousands of offenders with the longest Name tags AWS allows
    // (256 characters, here 4 bytes each) and thousands of skipped objects with the longest keys.
    let mut acc = DayAccumulator::new("2024-05-02", "x");
    let ids: Vec<String> = (0..5_000).map(|n| format!("i-{n:017x}")).collect();
    let verdicts: Vec<(&str, Verdict)> = ids.iter().map(|i| (i.as_str(), N)).collect();
    let mut s = scan("03:00", &verdicts);
    for i in &mut s.instances {
        i.name = Some("\u{1F512}".repeat(256));
    }
    acc.add_scan("scans/2024/05/02/a.json", &s);
    for n in 0..3_000 {
        acc.skip(
            &format!("scans/2024/05/02/{n}{}", "k".repeat(1_000)),
            &"why ".repeat(500),
        );
    }
    let r = acc.finish(None);
    let location = "s3://b/reports/2024/05/02/report.html";
    let body = summary_body(&r, location);
    assert!(
        body.len() < crate::sns::MAX_MESSAGE_BYTES / 4,
        "{} bytes",
        body.len()
    );
    assert_eq!(
        body.matches(" scans non-compliant\n").count(),
        SUMMARY_OFFENDERS
    );
    assert!(body.contains("... and 4980 more.\n"));
    assert_eq!(body.matches("\nSkipped ").count(), SUMMARY_SKIPPED);
    assert!(body.contains("... and 2980 more skipped objects, named in report.json.\n"));
    assert!(body.ends_with(&format!("Full report: {location}\n")));
    let subject = summary_subject(&r);
    assert!(subject.len() < crate::sns::MAX_SUBJECT_CHARS);
    assert!(subject.starts_with("[test] Compliance report 2024-05-02: avg 0.0%"));
}

#[test]
fn missing_tags_and_violations_are_the_days_union_sorted_without_repeats() {
    let ssh = |group: &str| Violation {
        group_id: group.into(),
        protocol: "tcp".into(),
        from_port: Some(22),
        to_port: Some(22),
        cidr: "0.0.0.0/0".into(),
        reason: Reason::RestrictedPorts,
        ports: vec![22],
    };
    let mut acc = DayAccumulator::new("2024-05-02", "x");
    for (time, missing, groups) in [
        ("01:00", vec!["Owner", "CostCenter"], vec!["sg-b", "sg-a"]),
        ("07:00", vec!["Owner", "Environment"], vec!["sg-a"]),
        (
            "13:00",
            vec!["CostCenter", "CostCenter"],
            vec!["sg-c", "sg-b"],
        ),
    ] {
        let mut s = scan(time, &[("i-a", N)]);
        s.instances[0].missing_tags = missing.into_iter().map(String::from).collect();
        s.instances[0].violations = groups.into_iter().map(ssh).collect();
        acc.add_scan(time, &s);
    }
    let r = acc.finish(None);
    assert_eq!(
        r.instances[0].missing_tags,
        ["CostCenter", "Environment", "Owner"]
    );
    let groups: Vec<&str> = r.instances[0]
        .violations
        .iter()
        .map(|v| v.split(' ').next().unwrap())
        .collect();
    assert_eq!(groups, ["sg-a", "sg-b", "sg-c"]);
    assert_eq!(r.instances[0].non_compliant_scans, 3);
}

#[test]
fn violations_read_as_one_line() {
    let v = Violation {
        group_id: "sg-1".into(),
        protocol: "tcp".into(),
        from_port: Some(20),
        to_port: Some(23),
        cidr: "0.0.0.0/0".into(),
        reason: Reason::RestrictedPorts,
        ports: vec![20, 21, 22, 23],
    };
    assert_eq!(
        describe_violation(&v),
        "sg-1 tcp ports 20-23 open to 0.0.0.0/0 (restricted port(s) 20,21,22,23)"
    );
    let all = Violation {
        protocol: "all".into(),
        from_port: None,
        to_port: None,
        cidr: "::/0".into(),
        reason: Reason::AllTraffic,
        ports: vec![],
        ..v
    };
    assert_eq!(
        describe_violation(&all),
        "sg-1 all open to ::/0 (all traffic)"
    );
}
