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
            accounts: Vec::new(),
        },
        instances,
        security_groups: vec![],
        errors: Vec::new(),
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

// ---- exemptions ----

/// Two scans of an organisation: two accounts read, one not at all, a region failing in one.
fn org_scan(time: &str, a_bad: usize) -> ScanResult {
    let mut instances = Vec::new();
    for (n, (account, region)) in [
        ("111111111111", "us-east-1"),
        ("111111111111", "eu-west-1"),
        ("222222222222", "us-east-1"),
    ]
    .iter()
    .enumerate()
    {
        for k in 0..4 {
            let bad = (*account == "111111111111" && k < a_bad) || (n == 2 && k == 0);
            let mut i = instance(&format!("i-{n}{k}"), if bad { N } else { C });
            i.account_id = account.to_string();
            i.region = region.to_string();
            instances.push(i);
        }
    }
    let mut scan = scan(time, &[]);
    scan.account_id = Some("111111111111".into());
    scan.summary = crate::verdict::summarize(&instances, &[]);
    scan.instances = instances;
    scan.errors = vec![
        crate::result::ScanError {
            account_id: "333333333333".into(),
            region: None,
            operation: "AssumeRole".into(),
            code: Some("AccessDenied".into()),
            cause: "AssumeRole ...: AccessDenied: not authorized".into(),
        },
        crate::result::ScanError {
            account_id: "222222222222".into(),
            region: Some("eu-west-1".into()),
            operation: "DescribeSecurityGroups".into(),
            code: Some("AuthFailure".into()),
            cause: "DescribeSecurityGroups in eu-west-1: AuthFailure: AWS was not able to validate the provided access credentials".into(),
        },
    ];
    scan
}

#[test]
fn the_day_by_account_and_region_worst_first() {
    let mut acc = DayAccumulator::new("2024-05-02", "x");
    acc.add_scan("k1", &org_scan("01:00", 1));
    acc.add_scan("k2", &org_scan("02:00", 3));
    let r = acc.finish(None);
    let ids: Vec<&str> = r.accounts.iter().map(|a| a.account_id.as_str()).collect();
    assert_eq!(ids, ["111111111111", "222222222222", "333333333333"]);
    let a = &r.accounts[0];
    // Latest scan: 3 bad of 4 in each of its two regions.
    assert_eq!((a.latest.scanned, a.latest.non_compliant), (8, 6));
    assert!((a.latest.compliance_percentage - 25.0).abs() < 1e-9);
    assert_eq!(a.scans, 2);
    // 75 % in the first scan, 25 % in the second.
    assert!((a.average.unwrap() - 50.0).abs() < 1e-9, "{:?}", a.average);
    assert_eq!(a.persistent_offenders, 2, "i-00 and i-10 were bad in both");
    let regions: Vec<(&str, u64)> = a
        .regions
        .iter()
        .map(|g| (g.region.as_str(), g.non_compliant))
        .collect();
    assert_eq!(regions, [("eu-west-1", 3), ("us-east-1", 3)]);
    let b = &r.accounts[1];
    assert_eq!(b.not_scanned.len(), 1);
    assert!(
        b.not_scanned[0].starts_with("eu-west-1: DescribeSecurityGroups"),
        "{:?}",
        b.not_scanned
    );
    let c = &r.accounts[2];
    assert_eq!((c.scans, c.average, c.latest.scanned), (0, None, 0));
    assert!(
        c.not_scanned[0].starts_with("every region: AssumeRole"),
        "{:?}",
        c.not_scanned
    );
    assert!(
        r.message.contains("; 3 accounts, the worst 111111111111 at 25.00% (6 non-compliant); 2 accounts not wholly scanned"),
        "{}",
        r.message
    );
    let i = r
        .instances
        .iter()
        .find(|i| i.instance_id == "i-20")
        .unwrap();
    assert_eq!(i.account_id, "222222222222");

    let body = summary_body(&r, "s3://b/reports/2024/05/02/");
    let section = body
        .split("Compliance by account, worst first (latest scan):\n")
        .nth(1)
        .expect("an accounts section");
    assert!(section.starts_with(
        "- 111111111111: 25.00% (6 of 8 non-compliant), average 50.00%, 2 persistent offenders\n"
    ), "{body}");
    assert!(
        body.contains("  not scanned: every region: AssumeRole"),
        "{body}"
    );
    assert!(
        body.contains("- i-00 (name of i-00) in 111111111111/us-east-1: 2/2 scans non-compliant"),
        "{body}"
    );

    let csv = csv::render(&r);
    assert!(csv.starts_with("instance_id,name,region,"), "{csv}");
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .ends_with(",exemptions,account_id"),
        "{csv}"
    );
    let row = csv.lines().find(|l| l.starts_with("i-20,")).unwrap();
    assert!(
        row.starts_with("i-20,name of i-20,us-east-1,") && row.ends_with(",222222222222"),
        "{row}"
    );
    let page = html::render(&r);
    let table = page
        .split("<table id=\"accounts\">")
        .nth(1)
        .expect("the accounts table");
    let first = table.find("111111111111").unwrap();
    let last = table.find("333333333333").unwrap();
    assert!(
        first < last && table.contains("<td>eu-west-1</td><td>25.00%</td>"),
        "{table}"
    );

    // One account read whole: no accounts section, no account in the offender lines.
    let mut one = DayAccumulator::new("2024-05-02", "x");
    one.add_scan("k", &scan("01:00", &[("i-a", N)]));
    let r = one.finish(None);
    assert_eq!(r.accounts.len(), 1);
    assert_eq!(
        r.accounts[0].account_id, "unknown",
        "a scan of no known account"
    );
    let body = summary_body(&r, "s3://b/");
    assert!(
        !body.contains("Compliance by account")
            && body.contains("- i-a (name of i-a) in us-east-1:")
    );
    assert!(!html::render(&r).contains("id=\"accounts\""));
}

mod exemptions {
    use super::*;
    use crate::exemptions::{Check, Day, Exemption};
    use crate::input::{Instance, IpPermission, SecurityGroup};
    use crate::verdict::evaluate;

    const DAY: &str = "2024-05-02";

    fn later(days: i64) -> String {
        Day::parse(DAY).unwrap().plus(days).to_string()
    }

    fn exemption(id: &str, checks: &[Check], days: i64) -> Exemption {
        Exemption {
            id: id.into(),
            instances: vec![],
            groups: vec![],
            tags: Default::default(),
            checks: checks.to_vec(),
            reason: format!("reason of {id}"),
            owner: format!("{id}@example.com"),
            expires: later(days),
        }
    }

    fn host(id: &str, tags: &[(&str, &str)], groups: &[&str]) -> Instance {
        Instance {
            id: id.into(),
            region: "us-east-1".into(),
            state: "running".into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            group_ids: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    /// A scan at `time` of the day, judged by the rules with `exemptions`.
    fn judged(time: &str, exemptions: Vec<Exemption>) -> ScanResult {
        let ssh = SecurityGroup {
            id: "sg-ssh".into(),
            name: "ssh".into(),
            region: "us-east-1".into(),
            ingress: vec![IpPermission {
                protocol: "tcp".into(),
                from_port: Some(22),
                to_port: Some(22),
                ipv4_cidrs: vec!["0.0.0.0/0".into()],
                ..IpPermission::default()
            }],
            ..SecurityGroup::default()
        };
        let fleet = vec![
            host("i-bastion", &[("Owner", "ana")], &["sg-ssh"]),
            host("i-legacy", &[("Team", "legacy")], &[]),
            host("i-old", &[], &[]),
            host("i-last", &[], &[]),
            host(
                "i-tag-soon",
                &[("ComplianceExempt", &format!("until {}: vendor", later(3)))],
                &[],
            ),
            host(
                "i-tag-gone",
                &[("ComplianceExempt", &format!("until {}: vendor", later(-2)))],
                &[],
            ),
            host("i-forever", &[("ComplianceExempt", "true")], &[]),
        ];
        let settings = ScanSettings {
            required_tags: vec!["Owner".into()],
            exemptions,
            ..ScanSettings::default()
        };
        let e = evaluate(fleet, &[ssh], &settings, Day::parse(DAY).unwrap());
        let mut s = scan(time, &[]);
        s.settings = settings;
        s.summary = e.summary;
        s.instances = e.instances;
        s.security_groups = e.security_groups;
        s
    }

    fn configured() -> Vec<Exemption> {
        let mut bastion = exemption("bastion", &[Check::Ingress], 100);
        bastion.groups = vec!["sg-ssh".into()];
        let mut legacy = exemption("legacy", &[Check::Tags], 5);
        legacy.tags = [("Team".to_string(), "legacy".to_string())].into();
        let mut old = exemption("old", &Check::ALL, -1);
        old.instances = vec!["i-old".into()];
        let mut last = exemption("last", &[Check::Tags, Check::Tags], 0);
        last.instances = vec!["i-last".into()];
        let mut edge = exemption("edge", &[Check::Tags], EXPIRING_WITHIN_DAYS);
        edge.instances = vec!["i-nowhere".into()];
        let mut beyond = exemption("beyond", &[Check::Tags], EXPIRING_WITHIN_DAYS + 1);
        beyond.instances = vec!["i-nowhere".into()];
        vec![bastion, legacy, old, last, edge, beyond]
    }

    fn report() -> DailyReport {
        let mut acc = DayAccumulator::new(DAY, "x");
        // The latest scan's configuration counts: `removed` was configured only earlier.
        let mut earlier = configured();
        earlier.push({
            let mut e = exemption("removed", &[Check::Tags], 10);
            e.instances = vec!["i-old".into()];
            e
        });
        acc.add_scan("k2", &judged("12:00", configured()));
        acc.add_scan("k1", &judged("06:00", earlier));
        acc.finish(None)
    }

    #[test]
    fn the_latest_scans_exemptions_are_listed_with_days_left_and_matches() {
        let r = report();
        let active: Vec<(&str, Option<i64>, bool)> = r
            .active_exemptions
            .iter()
            .map(|e| (e.id.as_str(), e.days_left, e.expiring_soon))
            .collect();
        assert_eq!(
            active,
            [
                ("last", Some(0), true),
                ("tag:ComplianceExempt", Some(3), true),
                ("legacy", Some(5), true),
                ("edge", Some(EXPIRING_WITHIN_DAYS), true),
                ("beyond", Some(EXPIRING_WITHIN_DAYS + 1), false),
                ("bastion", Some(100), false),
            ]
        );
        let get = |id: &str| r.active_exemptions.iter().find(|e| e.id == id).unwrap();
        let bastion = get("bastion");
        assert_eq!(bastion.source, ExemptionSource::Configuration);
        assert_eq!(bastion.groups, ["sg-ssh"]);
        assert_eq!(bastion.matched_instances, ["i-bastion"]);
        assert_eq!(bastion.matched_groups, ["sg-ssh"]);
        assert_eq!(bastion.owner.as_deref(), Some("bastion@example.com"));
        assert_eq!(get("last").checks, [Check::Tags], "listed once");
        assert_eq!(get("legacy").matched_instances, ["i-legacy"]);
        assert!(get("edge").matched_instances.is_empty());
        let tag = get("tag:ComplianceExempt");
        assert_eq!(tag.source, ExemptionSource::Tag);
        assert_eq!(
            (tag.owner.as_deref(), tag.reason.as_deref()),
            (None, Some("vendor"))
        );
        assert_eq!(tag.instances, ["i-tag-soon"]);
        assert_eq!(tag.checks, Check::ALL);

        let expired: Vec<(&str, Option<i64>, Vec<&str>)> = r
            .expired_exemptions
            .iter()
            .map(|e| {
                (
                    e.id.as_str(),
                    e.days_left,
                    e.matched_instances.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            expired,
            [
                ("tag:ComplianceExempt", Some(-2), vec!["i-tag-gone"]),
                ("old", Some(-1), vec!["i-old"]),
            ]
        );
        assert!(r.expired_exemptions.iter().all(|e| !e.expiring_soon));
        assert!(
            r.message.ends_with(
                "; 6 exemptions active, 4 expiring within 14 days, 2 expired still configured."
            ),
            "{}",
            r.message
        );
        let row = |id: &str| r.instances.iter().find(|i| i.instance_id == id).unwrap();
        assert_eq!(
            row("i-bastion").exemptions,
            ["bastion (ingress via sg-ssh)"]
        );
        assert_eq!(row("i-last").exemptions, ["last (tags)"]);
        assert!(row("i-old").exemptions.is_empty());
    }

    #[test]
    fn the_summary_names_the_expiring_and_the_expired() {
        let body = summary_body(&report(), "s3://b/r.html");
        assert!(
            body.contains(
                "Exemptions: 6 active, 4 expiring within 14 days, 2 expired but still configured.\n"
            ),
            "{body}"
        );
        assert!(
            body.contains(&format!(
                "- legacy (owner legacy@example.com): last day {}, 5 days left; matched 1 instance and 0 groups in the latest scan\n",
                later(5)
            )),
            "{body}"
        );
        assert!(
            body.contains(&format!(
                "- old (owner old@example.com): last day {}; matched 1 instance and 0 groups in the latest scan\n",
                later(-1)
            )),
            "{body}"
        );
        let expired_part = body.split("Expired but still configured").nth(1).unwrap();
        assert!(!expired_part.contains("- bastion"), "{body}");
        assert!(!body.contains("- beyond"), "not expiring: {body}");
        assert!(body.ends_with("Full report: s3://b/r.html\n"));
    }

    #[test]
    fn the_page_and_the_csv_show_them() {
        let r = report();
        let page = html::render(&r);
        for needle in [
            "data-figure=\"exemptions-active\"><div class=\"value\">6<",
            "data-figure=\"exemptions-expiring\"><div class=\"value warn\">4<",
            "data-figure=\"exemptions-expired\"><div class=\"value bad\">2<",
            "<p id=\"exemptions-expiring\" class=\"warn\">4 exemptions expire within 14 days: last, tag:ComplianceExempt, legacy, edge.</p>",
            "<table id=\"active-exemptions\">",
            "<td>bastion</td><td>groups sg-ssh</td><td>ingress</td><td>bastion@example.com</td>",
            "<tr class=\"warn\"><td>legacy</td><td>tags Team = legacy</td>",
            "<table id=\"expired-exemptions\">",
            "<td>old</td><td>instances i-old</td><td>tags, ingress</td>",
        ] {
            assert!(page.contains(needle), "report.html lacks {needle:?}");
        }
        let text = csv::render(&r);
        let header = text.lines().next().unwrap();
        assert!(
            header.ends_with(",violations,exemptions,account_id"),
            "{header}"
        );
        assert!(
            text.lines().any(
                |l| l.starts_with("i-bastion,") && l.contains(",bastion (ingress via sg-ssh),")
            ),
            "{text}"
        );
    }

    #[test]
    fn a_day_without_exemptions_shows_none() {
        let mut acc = DayAccumulator::new(DAY, "x");
        acc.add_scan("k", &scan("01:00", &[("i-a", N)]));
        let r = acc.finish(None);
        assert!(r.active_exemptions.is_empty() && r.expired_exemptions.is_empty());
        assert!(!r.message.contains("exemption"), "{}", r.message);
        assert!(!summary_body(&r, "x").contains("xemption"));
        assert!(!html::render(&r).contains("xemption"));
    }

    #[test]
    fn exemption_text_is_escaped_and_cannot_forge_summary_lines() {
        let mut e = exemption("<b>x</b>", &[Check::Tags], -3);
        e.owner = "o\nSubject: forged".into();
        e.reason = "<script>alert(1)</script>".into();
        e.instances = vec!["i-old".into()];
        let mut acc = DayAccumulator::new(DAY, "x");
        acc.add_scan("k", &judged("01:00", vec![e]));
        let r = acc.finish(None);
        let page = html::render(&r);
        assert!(
            !page.contains("<script>") && !page.contains("<b>x"),
            "escaped"
        );
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        let body = summary_body(&r, "x");
        assert!(!body.lines().any(|l| l.starts_with("Subject:")), "{body}");
    }

    #[test]
    fn reports_without_exemption_fields_still_parse() {
        let r = acc_day();
        let mut json = serde_json::to_value(&r).unwrap();
        let object = json.as_object_mut().unwrap();
        object.remove("active_exemptions");
        object.remove("expired_exemptions");
        for i in object["instances"].as_array_mut().unwrap() {
            i.as_object_mut().unwrap().remove("exemptions");
        }
        assert_eq!(serde_json::from_value::<DailyReport>(json).unwrap(), r);
    }

    fn acc_day() -> DailyReport {
        let mut acc = DayAccumulator::new(DAY, "x");
        for (n, s) in day().iter().enumerate() {
            acc.add_scan(&format!("k{n}"), s);
        }
        acc.finish(None)
    }
}
