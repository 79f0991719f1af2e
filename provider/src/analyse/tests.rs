//! Unit tests of the pure parts: arguments, state files, findings, the report's shape.

use std::time::Duration;

use super::findings::{self, Area, Finding, Results, Severity};
use super::*;
use crate::aws::alarms::FailureDuration;
use crate::aws::dashboard;
use crate::aws::roles::{Role, POLICY_NAME};
use crate::aws::{Account, Desired, Found, ScannerReporter};

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn run_opts(a: &[&str]) -> Options {
    match parse_args(&args(a)) {
        Ok(Command::Run(o)) => o,
        other => panic!("{a:?}: {other:?}"),
    }
}

#[test]
fn flags_with_and_without_equals() {
    let o = run_opts(&[
        "--suffix",
        "dev",
        "--region=eu-west-1",
        "--endpoint-url",
        "http://127.0.0.1:5000",
        "--output",
        "out.json",
    ]);
    assert_eq!(o.suffix.as_deref(), Some("dev"));
    assert_eq!(o.region.as_deref(), Some("eu-west-1"));
    assert_eq!(o.endpoint_url.as_deref(), Some("http://127.0.0.1:5000"));
    assert_eq!(o.output, PathBuf::from("out.json"));
    assert_eq!(
        run_opts(&["--suffix", "dev"]).output,
        PathBuf::from(DEFAULT_OUTPUT)
    );
    assert_eq!(parse_args(&args(&["--help"])), Ok(Command::Help));
    let o = run_opts(&["--suffix", "dev", "--default-tags", "Project=x,Owner=a=b"]);
    assert_eq!(
        o.default_tags.into_iter().collect::<Vec<_>>(),
        vec![
            ("Owner".to_string(), "a=b".to_string()),
            ("Project".to_string(), "x".to_string())
        ]
    );
}

#[test]
fn now_is_an_rfc3339_time_or_refused_naming_the_flag() {
    assert_eq!(run_opts(&["--suffix", "dev"]).now, None);
    let o = run_opts(&["--suffix", "dev", "--now", "2026-11-28T06:00:00Z"]);
    assert_eq!(o.now, Some(1_795_845_600));
    let o = run_opts(&["--suffix", "dev", "--now=2026-11-28T07:00:00+01:00"]);
    assert_eq!(o.now, Some(1_795_845_600));
    let e = parse_args(&args(&["--suffix", "dev", "--now", "yesterday"])).expect_err("bad time");
    assert!(e.contains("--now") && e.contains("RFC 3339"), "{e}");
}

#[test]
fn default_tags_that_are_not_pairs_are_refused() {
    let e = parse_args(&args(&["--suffix", "dev", "--default-tags", "Project"]))
        .expect_err("should fail");
    assert!(
        e.contains("--default-tags") && e.contains("KEY=VALUE") && e.contains("Project=billing"),
        "{e}"
    );
}

#[test]
fn bad_arguments_name_the_flag_and_the_fix() {
    let err = |a: &[&str]| parse_args(&args(a)).expect_err("should fail");
    let e = err(&["--suffix", "dev", "--bogus"]);
    assert!(e.contains("\"--bogus\"") && e.contains("--suffix"), "{e}");
    let e = err(&[]);
    assert!(
        e.contains("--suffix is missing") && e.contains("--suffix dev"),
        "{e}"
    );
    let e = err(&["--suffix"]);
    assert!(e.contains("--suffix needs a value"), "{e}");
    let e = err(&["--suffix", "--region", "us-east-1"]);
    assert!(e.contains("--suffix needs a value"), "{e}");
    let e = err(&["--suffix", "Dev_1"]);
    assert!(
        e.contains("--suffix \"Dev_1\"") && e.contains("lowercase"),
        "{e}"
    );
    let e = err(&["--suffix", "dev", "--region", "mars"]);
    assert!(e.starts_with("--region") && e.contains("us-east-1"), "{e}");
    let e = err(&["--suffix", "dev", "--endpoint-url", "localhost:5000"]);
    assert!(
        e.starts_with("--endpoint-url") && e.contains("http://"),
        "{e}"
    );
    let e = err(&["--suffix="]);
    assert!(e.contains("--suffix is empty"), "{e}");
}

fn state_with(suffixes: &[(&str, i64)]) -> serde_json::Value {
    serde_json::json!({
        "version": 4,
        "resources": [
            {"mode": "managed", "type": "other_thing", "name": "x", "instances": [{"attributes": {"environment_suffix": "dev"}}]},
            {"mode": "managed", "type": "compliance_monitor", "name": "this", "instances":
                suffixes.iter().map(|(s, t)| serde_json::json!({"attributes": {
                    "environment_suffix": s, "lambda_timeout_seconds": t, "tags": {"Team": "sec"}
                }})).collect::<Vec<_>>()
            }
        ]
    })
}

#[test]
fn state_instance_by_suffix_or_the_only_one() {
    let two = state_with(&[("dev", 60), ("prod", 120)]);
    assert_eq!(
        state_attributes(&two, Some("prod")).unwrap()["lambda_timeout_seconds"],
        120
    );
    let e = state_attributes(&two, None).unwrap_err();
    assert!(e.contains("--suffix") && e.contains("prod"), "{e}");
    let e = state_attributes(&two, Some("qa")).unwrap_err();
    assert!(e.contains("\"qa\"") && e.contains("dev"), "{e}");
    let one = state_with(&[("dev", 60)]);
    assert_eq!(
        state_attributes(&one, None).unwrap()["environment_suffix"],
        "dev"
    );
    let e = state_attributes(&serde_json::json!({"version": 4}), None).unwrap_err();
    assert!(e.contains("terraform.tfstate"), "{e}");
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("analyse-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn settings_from_state_fill_defaults_and_validate() {
    let p = temp_file("ok.tfstate", &state_with(&[("dev", 60)]).to_string());
    let mut o = run_opts(&["--state", p.to_str().unwrap()]);
    let (v, from) = wanted_settings(&o).unwrap();
    assert!(from.starts_with("state file"), "{from}");
    let d = desired_from(
        &v,
        &ProviderSettings::default(),
        "us-east-1",
        &Account::new("123456789012", "aws"),
    );
    assert_eq!(d.timeout_seconds, 60);
    // Not in the state: the resource's defaults.
    assert_eq!(d.memory_mb, 256);
    assert_eq!(d.scan_schedule, "rate(6 hours)");
    assert_eq!(d.tags.get("Team").map(String::as_str), Some("sec"));

    o.suffix = Some("prod".into());
    let e = wanted_settings(&o).unwrap_err();
    assert!(e.starts_with("--state") && e.contains("\"prod\""), "{e}");

    let bad = temp_file("bad.tfstate", &state_with(&[("dev", 5000)]).to_string());
    let e = wanted_settings(&run_opts(&["--state", bad.to_str().unwrap()])).unwrap_err();
    assert!(e.contains("lambda_timeout_seconds"), "{e}");
    let junk = temp_file("junk.tfstate", "not json");
    let e = wanted_settings(&run_opts(&["--state", junk.to_str().unwrap()])).unwrap_err();
    assert!(e.contains("--state") && e.contains("not JSON"), "{e}");
    let e = wanted_settings(&run_opts(&["--state", "/nonexistent/terraform.tfstate"])).unwrap_err();
    assert!(e.contains("--state") && e.contains("cannot read"), "{e}");
}

#[test]
fn defaults_without_state() {
    let (v, from) = wanted_settings(&run_opts(&["--suffix", "dev"])).unwrap();
    assert_eq!(from, "resource defaults");
    let d = desired_from(
        &v,
        &ProviderSettings::default(),
        "us-east-1",
        &Account::new("1", "aws"),
    );
    assert_eq!((d.timeout_seconds, d.log_retention_days), (300, 30));
}

fn desired() -> Desired {
    desired_from(
        &MonitorModel::defaults("dev"),
        &ProviderSettings::default(),
        "us-east-1",
        &Account::new("123456789012", "aws"),
    )
}

const FRESH: Results = Results::Newest(Some(Duration::from_secs(60)));

fn issues(d: &Desired, o: &Observed) -> Vec<Finding> {
    findings::all(d, o, &FRESH, Some(Duration::from_secs(1_000_000)))
        .into_iter()
        .filter(|f| f.severity.is_issue())
        .collect()
}

fn only(d: &Desired, o: &Observed) -> Finding {
    let found = issues(d, o);
    assert_eq!(found.len(), 1, "{found:#?}");
    found.into_iter().next().unwrap()
}

#[test]
fn a_clean_stack_has_no_findings() {
    let d = desired();
    let o = Observed::wanted(&d);
    assert!(o.drift(&d).is_empty(), "{:?}", o.drift(&d));
    assert_eq!(findings::all(&d, &o, &FRESH, None), Vec::new());
}

#[test]
fn each_broken_piece_is_one_finding_naming_it() {
    let d = desired();
    let mut o = Observed::wanted(&d);
    o.functions.scanner = Found::Missing;
    let f = only(&d, &o);
    assert_eq!((f.area, f.severity), (Area::Functions, Severity::Critical));
    assert_eq!(f.resource, "Lambda function compliance-scanner-dev");

    let mut o = Observed::wanted(&d);
    if let Found::Present(f) = &mut o.functions.reporter {
        f.timeout = 60;
    }
    let f = only(&d, &o);
    assert_eq!((f.area, f.check.as_str()), (Area::Functions, "timeout"));
    assert!(
        f.message.contains("timeout is 60, want 300"),
        "{}",
        f.message
    );

    let mut o = Observed::wanted(&d);
    if let Found::Present(g) = &mut o.log_groups.scanner {
        g.retention_days = Some(7);
    }
    assert_eq!(only(&d, &o).area, Area::LogGroups);

    let mut o = Observed::wanted(&d);
    o.alarms.reporter.failure = Found::Missing;
    let f = only(&d, &o);
    assert_eq!(f.resource, "alarm reporter-failure-alarm-dev");

    let mut o = Observed::wanted(&d);
    if let Found::Present(s) = &mut o.schedules.scanner {
        s.enabled = false;
    }
    let f = only(&d, &o);
    assert_eq!((f.area, f.severity), (Area::Schedules, Severity::High));

    let mut o = Observed::wanted(&d);
    if let Found::Present(b) = &mut o.bucket {
        b.public_access_blocked = false;
    }
    let f = only(&d, &o);
    assert_eq!((f.area, f.severity), (Area::Bucket, Severity::Critical));

    let mut o = Observed::wanted(&d);
    if let Found::Present(t) = &mut o.topic {
        t.emails.clear();
    }
    assert_eq!(only(&d, &o).area, Area::Topic);

    let mut o = Observed::wanted(&d);
    o.dashboard = Found::Present(dashboard::Observed {
        body: serde_json::json!({}),
        owner: Some("dev".into()),
    });
    assert_eq!(only(&d, &o).severity, Severity::Low);
}

#[test]
fn a_widened_role_is_critical_and_names_the_grant() {
    let d = desired();
    let mut o = Observed::wanted(&d);
    if let Found::Present(r) = &mut o.roles.reporter {
        r.policies.insert(
            "extra".into(),
            serde_json::json!({"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}),
        );
    }
    let found = issues(&d, &o);
    let wide = found
        .iter()
        .find(|f| f.check == "least privilege")
        .expect("least privilege");
    assert_eq!(wide.severity, Severity::Critical);
    assert!(wide.message.contains("* on *"), "{}", wide.message);
    assert!(wide.resource.ends_with("compliance-reporter-dev"));
    assert!(found.iter().any(|f| f.check == "inline policies"));

    // Narrower than wanted: a difference, but not "wider".
    let mut o = Observed::wanted(&d);
    if let Found::Present(r) = &mut o.roles.scanner {
        r.policies
            .insert(POLICY_NAME.into(), serde_json::json!({"Statement": []}));
    }
    let found = issues(&d, &o);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].check, "inline policies");

    // A resource widened from the bucket's scans/ prefix to every bucket.
    let mut o = Observed::wanted(&d);
    if let Found::Present(r) = &mut o.roles.scanner {
        let mut p = Role::Scanner.policy(&d);
        p["Statement"][1]["Resource"] = "arn:aws:s3:::*".into();
        r.policies.insert(POLICY_NAME.into(), p);
        r.attached = vec!["arn:aws:iam::aws:policy/AdministratorAccess".into()];
    }
    let found = issues(&d, &o);
    let wide = found.iter().find(|f| f.check == "least privilege").unwrap();
    assert_eq!(wide.severity, Severity::High);
    assert!(
        wide.message.contains("s3:putobject on arn:aws:s3:::*"),
        "{}",
        wide.message
    );
    assert!(found
        .iter()
        .any(|f| f.check == "attached policies" && f.severity == Severity::Critical));
}

#[test]
fn pending_subscription_and_extra_tags_are_warnings() {
    let d = desired();
    let mut o = Observed::wanted(&d);
    if let Found::Present(t) = &mut o.topic {
        t.emails = vec![(d.alert_email.clone(), "PendingConfirmation".into())];
    }
    if let Found::Present(b) = &mut o.bucket {
        b.tags.insert("Project".into(), "x".into());
    }
    let all = findings::all(&d, &o, &FRESH, None);
    assert_eq!(all.len(), 2, "{all:#?}");
    assert!(all.iter().all(|f| f.severity == Severity::Warning));
    assert!(all.iter().any(|f| f.check == "subscription confirmed"));
    // Drift (what Terraform shows) still sees the extra tag.
    assert_eq!(o.drift(&d).len(), 1);

    // A wanted tag removed is an issue.
    if let Found::Present(b) = &mut o.bucket {
        b.tags.remove("ComplianceStack");
    }
    assert_eq!(only(&d, &o).check, "tags");
}

#[test]
fn scanner_result_age() {
    let d = desired();
    let s = "rate(6 hours)";
    let h = |n: u64| Duration::from_secs(n * 3600);
    let check = |r: Results, age: Option<Duration>| findings::scanner_results(&d, s, &r, age);
    assert_eq!(check(Results::Newest(Some(h(11))), None), None);
    let f = check(Results::Newest(Some(h(13))), Some(h(1))).unwrap();
    assert_eq!(f.severity, Severity::High);
    assert!(
        f.message.contains("13 h old") && f.message.contains("(12 h)"),
        "{}",
        f.message
    );
    let f = check(Results::Newest(None), Some(h(2))).unwrap();
    assert_eq!(f.severity, Severity::Warning);
    let f = check(Results::Newest(None), Some(h(30))).unwrap();
    assert_eq!((f.area, f.severity), (Area::ScannerResults, Severity::High));
    assert_eq!(
        check(Results::Newest(None), None).unwrap().severity,
        Severity::High
    );
    assert_eq!(check(Results::NoBucket, None), None);
    assert_eq!(
        check(Results::Unreadable("AccessDenied".into()), None)
            .unwrap()
            .severity,
        Severity::Warning
    );
    let f = findings::scanner_results(&d, "cron(0 0 L * ? *)", &Results::Newest(None), None);
    assert_eq!(f.unwrap().severity, Severity::Warning);
}

#[test]
fn human_durations() {
    assert_eq!(findings::human(Duration::from_secs(90)), "90 s");
    assert_eq!(findings::human(Duration::from_secs(720)), "12 min");
    assert_eq!(findings::human(Duration::from_secs(43_200)), "12 h");
    assert_eq!(findings::human(Duration::from_secs(2 * 86_400)), "2 d");
    assert_eq!(
        findings::human(Duration::from_secs(2 * 86_400 + 3 * 3600)),
        "2 d 3 h"
    );
}

#[test]
fn every_drift_piece_has_its_area() {
    let d = desired();
    let o = Observed {
        bucket: Found::Missing,
        topic: Found::Missing,
        roles: ScannerReporter::new(|_| Found::Missing),
        log_groups: ScannerReporter::new(|_| Found::Missing),
        functions: ScannerReporter::new(|_| Found::Missing),
        schedules: ScannerReporter::new(|_| Found::Missing),
        alarms: ScannerReporter::new(|_| FailureDuration::new(|_| Found::Missing)),
        dashboard: Found::Missing,
        events_queue: Found::Missing,
        dead_letter_queue: Found::Missing,
        change_rule: Found::Missing,
        event_source: Found::Missing,
    };
    let diffs = o.differences(&d);
    assert_eq!(diffs.len(), 19);
    for diff in &diffs {
        assert!(Area::of_piece(&diff.piece).is_some(), "{}", diff.piece);
    }
    let report = Report::new(
        &d,
        findings::all(&d, &o, &Results::NoBucket, None),
        "resource defaults".into(),
        "t".into(),
    );
    assert_eq!(report.summary.total_issues, 19);
    assert_eq!(report.summary.areas_with_issues.len(), 9);
}

#[test]
fn report_json_shape_and_table() {
    let d = desired();
    let mut o = Observed::wanted(&d);
    if let Found::Present(f) = &mut o.functions.scanner {
        f.memory = 128;
    }
    if let Found::Present(t) = &mut o.topic {
        t.emails = vec![(d.alert_email.clone(), "PendingConfirmation".into())];
    }
    let r = Report::new(
        &d,
        findings::all(&d, &o, &FRESH, None),
        "resource defaults".into(),
        "2024-05-02T00:00:00Z".into(),
    );
    let text = r.to_json();
    // The summary comes first, then the areas in order.
    let at = |k: &str| {
        text.find(&format!("\"{k}\":"))
            .unwrap_or_else(|| panic!("{k}"))
    };
    assert!(at("summary") < at("functions") && at("functions") < at("log_groups"));
    assert!(at("dashboard") < at("scanner_results"));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["summary"]["total_issues"], 1);
    assert_eq!(v["summary"]["warnings"], 1);
    assert_eq!(v["summary"]["status"], "issues found");
    assert_eq!(v["summary"]["issues_by_severity"]["medium"], 1);
    assert_eq!(
        v["summary"]["areas_with_issues"],
        serde_json::json!(["functions"])
    );
    let f = &v["functions"]["findings"][0];
    assert_eq!(f["severity"], "medium");
    assert_eq!(f["check"], "memory");
    assert_eq!(f["resource"], "Lambda function compliance-scanner-dev");
    assert!(f["fix"].as_str().unwrap().contains("terraform apply"));
    assert_eq!(v["functions"]["status"], "issues");
    assert_eq!(v["topic"]["status"], "warnings");
    assert_eq!(v["bucket"]["status"], "ok");
    assert_eq!(v["bucket"]["findings"], serde_json::json!([]));
    let table = r.table();
    assert!(table.contains("Lambda functions  medium"), "{table}");
    assert!(table.contains("Results bucket    ok"), "{table}");
    assert!(table.contains("ISSUES FOUND: 1 issue(s)"), "{table}");
}

#[test]
fn a_region_without_a_management_trail_is_a_warning_only_when_event_driven() {
    use super::trail::{finding, Trails};
    let mut d = desired();
    assert!(d.event_driven, "the default");
    let f = finding(&d, &Trails::None).expect("a warning");
    assert_eq!((f.area, f.severity), (Area::Events, Severity::Warning));
    assert!(f.message.contains("next scheduled scan"), "{}", f.message);
    assert_eq!(finding(&d, &Trails::Logging("org-trail".into())), None);
    assert!(finding(&d, &Trails::Unreadable("AccessDenied".into()))
        .is_some_and(|f| f.message.contains("AccessDenied")));
    d.event_driven = false;
    assert_eq!(finding(&d, &Trails::None), None);
}

#[test]
fn a_member_account_the_scan_could_not_read_names_the_role_to_install() {
    let d = desired();
    let errors = vec![compliance_rules::result::ScanError {
        account_id: "222222222222".into(),
        region: None,
        operation: "AssumeRole".into(),
        code: Some("AccessDenied".into()),
        cause: "AssumeRole of arn:aws:iam::222222222222:role/ComplianceScannerMember: AccessDenied"
            .into(),
    }];
    let found = findings::unscanned(&d, &errors);
    assert_eq!(found.len(), 1);
    let f = &found[0];
    assert_eq!(
        (f.area, f.severity),
        (Area::ScannerResults, Severity::Warning)
    );
    assert_eq!(f.check, "member role");
    assert!(f.message.contains("AccessDenied"), "{}", f.message);
    assert!(
        f.fix.contains("ComplianceScannerMember") && f.fix.contains("compliance-scanner-dev"),
        "{}",
        f.fix
    );
}
