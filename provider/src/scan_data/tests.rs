use compliance_rules::result::ScanResult;
use serde_json::json;
use time::macros::{date, datetime};

use super::newest::{is_result_key, parse, windows, Window};
use super::*;
use crate::protocol::value;

// Fixtures are written in the stored JSON form (docs/scan-result.md): fields added to the
// format later take their defaults, as they do for results already stored.

fn instance(
    id: &str,
    region: &str,
    compliant: bool,
    exempt: bool,
    missing: &[&str],
) -> serde_json::Value {
    json!({
        "instance_id": id,
        "region": region,
        "state": "running",
        "name": null,
        "compliant": compliant,
        "exempt": exempt,
        "missing_tags": missing,
        "near_misses": [],
        "security_groups": [],
        "violations": [],
    })
}

fn open_group(id: &str, region: &str, rules: i32) -> serde_json::Value {
    let violations: Vec<serde_json::Value> = (0..rules)
        .map(|i| {
            json!({
                "group_id": id,
                "protocol": "tcp",
                "from_port": 22 + i,
                "to_port": 22 + i,
                "cidr": "0.0.0.0/0",
                "reason": "restricted-ports",
                "ports": [22],
            })
        })
        .collect();
    json!({
        "group_id": id,
        "group_name": id,
        "vpc_id": null,
        "region": region,
        "attached_instances": 1,
        "violations": violations,
    })
}

/// Two regions: us-east-1 holds 2 compliant, 1 missing tags, 1 exempt and one group with two
/// open rules; eu-west-1 holds 1 non-compliant instance and one group with one open rule.
fn two_regions() -> ScanResult {
    let mut scan: ScanResult = serde_json::from_value(json!({
        "schema_version": 1,
        "started_at": "2026-11-28T06:00:00Z",
        "finished_at": "2026-11-28T06:00:05.250Z",
        "duration_ms": 5250,
        "stack": "dev",
        "account_id": "111122223333",
        "regions": ["eu-west-1", "us-east-1"],
        "settings": {
            "required_tags": ["Owner"],
            "restricted_ports": [22],
            "exempt_tag_key": "ComplianceExempt",
        },
        "summary": {
            "scanned": 0, "exempt": 0, "compliant": 0, "non_compliant": 0,
            "compliance_percentage": 100, "instances_missing_tags": 0, "open_rules": 0,
        },
        "instances": [
            instance("i-east-ok1", "us-east-1", true, false, &[]),
            instance("i-east-ok2", "us-east-1", true, false, &[]),
            instance("i-east-bad", "us-east-1", false, false, &["Owner"]),
            instance("i-east-skip", "us-east-1", false, true, &["Owner"]),
            instance("i-west-bad", "eu-west-1", false, false, &[]),
        ],
        "security_groups": [
            open_group("sg-east", "us-east-1", 2),
            open_group("sg-west", "eu-west-1", 1),
        ],
    }))
    .expect("the fixture is a scan result");
    scan.summary = compliance_rules::verdict::summarize(&scan.instances, &scan.security_groups);
    scan
}

fn config(pairs: &[(&str, Value)]) -> Value {
    let mut attrs: std::collections::BTreeMap<String, Value> = schema()
        .block
        .attributes
        .iter()
        .map(|a| (a.name.to_string(), Value::Null))
        .collect();
    for (k, v) in pairs {
        attrs.insert(k.to_string(), v.clone());
    }
    Value::Object(attrs)
}

fn found(scan: ScanResult) -> Found {
    Found {
        key: "scans/2026/11/28/20261128T060000.000Z.json".into(),
        scan,
    }
}

fn ids(v: &Value) -> Vec<&str> {
    v.elements().iter().filter_map(Value::as_str).collect()
}

#[test]
fn windows_list_the_newest_months_first_and_stop_after_the_lookback() {
    let w = windows(date!(2026 - 11 - 28));
    assert_eq!(w[0], Window::After("scans/2026/10/".into()));
    assert_eq!(w[1], Window::Prefix("scans/2026/09/".into()));
    // 400 days before 2026-11-28 is 2025-10-24: its month is the last listed.
    assert_eq!(w.last(), Some(&Window::Prefix("scans/2025/10/".into())));
    assert_eq!(w.len(), 13);
    // Across a year boundary.
    let w = windows(date!(2027 - 01 - 05));
    assert_eq!(w[0], Window::After("scans/2026/12/".into()));
    assert_eq!(w[1], Window::Prefix("scans/2026/11/".into()));
}

#[test]
fn only_keys_the_scanner_writes_are_results() {
    // The form of functions/scanner's result_key.
    assert!(is_result_key("scans/2026/11/28/20261128T060000.123Z.json"));
    for not in [
        "scans/2026/13/01/20261301T000000.000Z.json",
        "scans/2026/02/30/x.json",
        "scans/2026/11/28/",
        "scans/2026/11/28/.json",
        "scans/2026/11/28/a/b.json",
        "scans/2026/11/28/x.txt",
        "scans/26/11/28/x.json",
        "reports/2026/11/28.json",
    ] {
        assert!(!is_result_key(not), "{not}");
    }
}

#[test]
fn the_greatest_key_is_the_newest_scan() {
    let mut keys = [
        "scans/2026/11/27/20261127T235959.999Z.json",
        "scans/2026/11/28/20261128T000000.001Z.json",
        "scans/2026/11/28/20261128T000000.000Z.json",
    ];
    keys.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(keys[0], "scans/2026/11/28/20261128T000000.001Z.json");
}

#[test]
fn parse_reads_version_1_and_names_the_key_otherwise() {
    let scan = two_regions();
    let key = "scans/2026/11/28/k.json";
    let body = serde_json::to_vec(&scan).unwrap();
    assert_eq!(parse(key, &body), Ok(scan));

    match parse(key, b"{not json") {
        Err(Failure::Unparsable { key: k, error }) => {
            assert_eq!(k, key);
            assert!(error.starts_with("not JSON"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    let mut newer = serde_json::to_value(two_regions()).unwrap();
    newer["schema_version"] = 2.into();
    newer.as_object_mut().unwrap().remove("summary");
    assert_eq!(
        parse(key, newer.to_string().as_bytes()),
        Err(Failure::UnknownVersion {
            key: key.into(),
            version: 2
        })
    );
    let mut partial = serde_json::to_value(two_regions()).unwrap();
    partial.as_object_mut().unwrap().remove("summary");
    match parse(key, partial.to_string().as_bytes()) {
        Err(Failure::Unparsable { error, .. }) => assert!(error.contains("summary"), "{error}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(parse(key, b"[]"), Err(Failure::Unparsable { .. })));
}

#[test]
fn filters_select_by_account_and_covered_region() {
    let scan = two_regions();
    let f = |a: Option<&str>, r: Option<&str>| Filters {
        account_id: a.map(str::to_string),
        region: r.map(str::to_string),
    };
    assert!(f(None, None).admit(&scan));
    assert!(f(Some("111122223333"), Some("eu-west-1")).admit(&scan));
    assert!(!f(Some("999988887777"), None).admit(&scan));
    assert!(!f(None, Some("ap-south-1")).admit(&scan));
    let anonymous = ScanResult {
        account_id: None,
        ..two_regions()
    };
    assert!(!f(Some("111122223333"), None).admit(&anonymous));
    assert_eq!(
        f(Some("111122223333"), Some("eu-west-1")).phrase(),
        "of account_id \"111122223333\" and covering region \"eu-west-1\""
    );
}

#[test]
fn the_state_holds_the_summary_ids_key_and_age() {
    let scan = two_regions();
    let now = datetime!(2026-11-28 07:00:05.250 UTC);
    let state = state(
        &config(&[("environment_suffix", Value::string("dev"))]),
        "compliance-results-dev",
        &found(scan.clone()),
        now,
    )
    .unwrap();
    assert_eq!(state.attr("environment_suffix"), &Value::string("dev"));
    assert_eq!(
        state.attr("bucket_name"),
        &Value::string("compliance-results-dev")
    );
    assert_eq!(state.attr("account_id"), &Value::string("111122223333"));
    assert_eq!(state.attr("region"), &Value::Null);
    assert_eq!(
        state.attr("result_key"),
        &Value::string("scans/2026/11/28/20261128T060000.000Z.json")
    );
    assert_eq!(
        state.attr("scanned_at"),
        &Value::string("2026-11-28T06:00:05.250Z")
    );
    assert_eq!(state.attr("age_seconds"), &Value::int(3600));
    assert_eq!(ids(state.attr("regions")), ["eu-west-1", "us-east-1"]);
    assert_eq!(state.attr("scanned"), &Value::int(5));
    assert_eq!(state.attr("compliant"), &Value::int(2));
    assert_eq!(state.attr("non_compliant"), &Value::int(2));
    assert_eq!(state.attr("exempt"), &Value::int(1));
    assert_eq!(state.attr("instances_missing_tags"), &Value::int(1));
    assert_eq!(state.attr("open_rules"), &Value::int(3));
    assert_eq!(
        state.attr("compliance_percentage"),
        &Value::Number(Number::Float(50.0))
    );
    assert_eq!(
        ids(state.attr("non_compliant_instance_ids")),
        ["i-east-bad", "i-west-bad"]
    );
    assert_eq!(
        ids(state.attr("open_security_group_ids")),
        ["sg-east", "sg-west"]
    );
    // Every attribute of the schema, all known, of the schema's types: Terraform takes it.
    let ty = schema().value_type();
    assert!(!state.contains_unknown());
    let bytes = value::to_msgpack(&state, &ty).expect("state encodes with the schema type");
    assert_eq!(value::from_msgpack(&bytes, &ty).unwrap(), state);
}

#[test]
fn a_region_filter_shows_that_regions_share_totalled_like_the_scanner() {
    let scan = two_regions();
    let east = View::of(&scan, Some("us-east-1"));
    assert_eq!(east.summary.scanned, 4);
    assert_eq!(east.summary.compliant, 2);
    assert_eq!(east.summary.non_compliant, 1);
    assert_eq!(east.summary.exempt, 1);
    assert_eq!(east.summary.instances_missing_tags, 1);
    assert_eq!(east.summary.open_rules, 2);
    assert!((east.summary.compliance_percentage - 200.0 / 3.0).abs() < 1e-9);
    assert_eq!(east.non_compliant, ["i-east-bad"]);
    assert_eq!(east.open_groups, ["sg-east"]);

    let west = View::of(&scan, Some("eu-west-1"));
    assert_eq!(west.summary.compliance_percentage, 0.0);
    assert_eq!(west.non_compliant, ["i-west-bad"]);
    // Without a region, the stored summary as it is.
    assert_eq!(View::of(&scan, None).summary, scan.summary);

    let state = state(
        &config(&[
            ("environment_suffix", Value::string("dev")),
            ("region", Value::string("eu-west-1")),
            ("account_id", Value::string("111122223333")),
            ("bucket_name", Value::string("my-results")),
        ]),
        "my-results",
        &found(scan),
        datetime!(2026-11-28 06:00:00 UTC),
    )
    .unwrap();
    assert_eq!(state.attr("region"), &Value::string("eu-west-1"));
    assert_eq!(state.attr("bucket_name"), &Value::string("my-results"));
    assert_eq!(state.attr("scanned"), &Value::int(1));
    assert_eq!(ids(state.attr("open_security_group_ids")), ["sg-west"]);
    // A result stamped after the read (a skewed clock) is not of negative age.
    assert_eq!(state.attr("age_seconds"), &Value::int(0));
}

#[test]
fn a_result_whose_time_does_not_parse_is_an_error_naming_the_key() {
    let scan = ScanResult {
        finished_at: "yesterday".into(),
        ..two_regions()
    };
    let err = state(
        &config(&[("environment_suffix", Value::string("dev"))]),
        "b",
        &found(scan),
        datetime!(2026-11-28 06:00:00 UTC),
    )
    .unwrap_err();
    assert!(
        err.starts_with(
            "s3://b/scans/2026/11/28/20261128T060000.000Z.json: finished_at \"yesterday\""
        ),
        "{err}"
    );
}

#[test]
fn validate_points_at_each_bad_value_and_lets_unknowns_pass() {
    let d = validate_config(&config(&[
        ("environment_suffix", Value::string("Dev")),
        ("bucket_name", Value::string("x")),
        ("account_id", Value::string("12345")),
        ("region", Value::string("useast1")),
    ]));
    let at: Vec<AttrPath> = d.0.iter().filter_map(|d| d.attribute.clone()).collect();
    assert_eq!(
        at,
        ["environment_suffix", "bucket_name", "account_id", "region"].map(AttrPath::attr)
    );
    assert!(d
        .0
        .iter()
        .all(|d| d.severity == crate::protocol::diag::Severity::Error));
    let good = validate_config(&config(&[
        ("environment_suffix", Value::string("dev")),
        ("account_id", Value::string("111122223333")),
        ("region", Value::string("us-gov-west-1")),
    ]));
    assert!(good.0.is_empty(), "{good:?}");
    let unknown = validate_config(&config(&[
        ("environment_suffix", Value::Unknown),
        ("account_id", Value::Unknown),
    ]));
    assert!(unknown.0.is_empty(), "{unknown:?}");
}

#[test]
fn failures_name_the_bucket_and_say_what_to_do() {
    let names = StackNames::new("dev");
    let none = failure_diagnostic(
        &Failure::NoResult,
        &names,
        "111122223333",
        &Filters::default(),
    );
    assert_eq!(none.summary, "No scan result yet");
    assert!(
        none.detail
            .starts_with("No scan has stored a result in bucket compliance-results-dev yet"),
        "{}",
        none.detail
    );
    assert!(
        none.detail.contains("compliance-scanner-dev"),
        "{}",
        none.detail
    );

    let filters = Filters {
        account_id: None,
        region: Some("ap-south-1".into()),
    };
    let unmatched = failure_diagnostic(
        &Failure::NoMatch {
            newest: (
                "scans/2026/11/28/k.json".into(),
                Some("111122223333".into()),
                vec!["us-east-1".into()],
            ),
            examined: 3,
        },
        &names,
        "111122223333",
        &filters,
    );
    assert_eq!(
        unmatched.detail,
        "None of the 3 newest results in bucket compliance-results-dev is a result covering \
         region \"ap-south-1\". The newest, scans/2026/11/28/k.json, is of account 111122223333 and \
         covers us-east-1."
    );
    let broken = failure_diagnostic(
        &Failure::Unparsable {
            key: "scans/2026/11/28/k.json".into(),
            error: "not JSON".into(),
        },
        &names.clone().with_bucket(Some("mine")),
        "111122223333",
        &Filters::default(),
    );
    assert_eq!(broken.summary, "Scan result does not parse");
    assert!(
        broken
            .detail
            .starts_with("s3://mine/scans/2026/11/28/k.json is not a scan result"),
        "{}",
        broken.detail
    );
}
