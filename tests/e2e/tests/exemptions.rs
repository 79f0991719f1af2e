//! `exemption` blocks end to end: applied into the scanner's settings, changed in place without
//! touching any other piece, read back by import.

mod common;

use std::collections::BTreeMap;

use common::{sdk, stack_config, stack_workdir};
use compliance_rules::contract::{decode_exemptions, EXEMPTIONS};
use compliance_rules::exemptions::{Check, Exemption};
use e2e::Aws;
use test_support::fidelity::Fidelity;

/// `plan -detailed-exitcode`: 0 no changes, 2 changes.
fn plan_code(w: &e2e::Workdir) -> (i32, String) {
    let out = w.run(&["plan", "-no-color", "-input=false", "-detailed-exitcode"]);
    (out.status.code().unwrap_or(-1), e2e::text(&out))
}

/// A date `days` from today (UTC), as `expires` takes it.
fn in_days(days: i64) -> String {
    let d = time::OffsetDateTime::now_utc().date() + time::Duration::days(days);
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

fn block(id: &str, cover: &str, checks: &str, reason: &str, expires: &str) -> String {
    format!(
        "  exemption {{\n    id = \"{id}\"\n    {cover}\n{checks}    reason = \"{reason}\"\n    \
         owner = \"secops@example.com\"\n    expires = \"{expires}\"\n  }}\n"
    )
}

async fn deployed(aws: &Aws, suffix: &str) -> Vec<Exemption> {
    let cfg = sdk(&aws.moto).await;
    let conf = aws_sdk_lambda::Client::new(&cfg)
        .get_function_configuration()
        .function_name(format!("compliance-scanner-{suffix}"))
        .send()
        .await
        .expect("scanner");
    let env = conf
        .environment()
        .and_then(|e| e.variables())
        .cloned()
        .unwrap_or_default();
    decode_exemptions(env.get(EXEMPTIONS).map_or("", String::as_str)).expect("EXEMPTIONS")
}

/// Requests that change something, by kind, between two counter snapshots.
fn writes(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    let is_read = |kind: &str| {
        let action = kind.split(':').nth(1).unwrap_or("");
        ["Get", "List", "Describe", "Head", "GET ", "HEAD "]
            .iter()
            .any(|p| action.starts_with(p))
    };
    after
        .iter()
        .filter(|(k, _)| !is_read(k))
        .map(|(k, n)| (k.clone(), n - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exemptions_reach_the_scanner_change_in_place_and_import_back() {
    let aws = Aws::behind(Fidelity::default());
    let s = "exm";
    let soon = in_days(10);
    let later = in_days(90);
    let two = format!(
        "{}{}",
        block(
            "legacy-db",
            "resources = [\"i-0123456789abcdef0\", \"sg-0123456789abcdef0\"]",
            "    checks = [\"ingress\"]\n",
            "vendor appliance",
            &soon
        ),
        block(
            "sandbox",
            "tag = { Environment = \"sandbox\" }",
            "",
            "short-lived",
            &later
        ),
    );
    let w = stack_workdir(&aws, "exemptions", &stack_config(&aws, s, &two));
    w.ok(&["apply", "-auto-approve", "-no-color", "-input=false"]);
    let got = deployed(&aws, s).await;
    assert_eq!(
        got,
        vec![
            Exemption {
                id: "legacy-db".into(),
                instances: vec!["i-0123456789abcdef0".into()],
                groups: vec!["sg-0123456789abcdef0".into()],
                tags: BTreeMap::new(),
                checks: vec![Check::Ingress],
                reason: "vendor appliance".into(),
                owner: "secops@example.com".into(),
                expires: soon.clone(),
            },
            Exemption {
                id: "sandbox".into(),
                instances: Vec::new(),
                groups: Vec::new(),
                tags: BTreeMap::from([("Environment".into(), "sandbox".into())]),
                checks: vec![Check::Tags, Check::Ingress],
                reason: "short-lived".into(),
                owner: "secops@example.com".into(),
                expires: later.clone(),
            },
        ]
    );
    let (code, out) = plan_code(&w);
    assert_eq!(code, 0, "no change after the apply:\n{out}");

    // A renewed reason and a dropped block: an in-place update whose only write is the
    // scanner's configuration.
    let one = block(
        "legacy-db",
        "resources = [\"i-0123456789abcdef0\", \"sg-0123456789abcdef0\"]",
        "    checks = [\"ingress\"]\n",
        "vendor appliance, renewed",
        &soon,
    );
    w.write(&stack_config(&aws, s, &one));
    let (code, out) = plan_code(&w);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("update in-place") && out.contains("0 to destroy"),
        "{out}"
    );
    let before = aws.counters().requests;
    w.ok(&["apply", "-auto-approve", "-no-color", "-input=false"]);
    let wrote = writes(&before, &aws.counters().requests);
    assert_eq!(
        wrote.keys().collect::<Vec<_>>(),
        ["lambda:PUT /2015-03-31/functions/*"],
        "only the scanner's configuration is written (UpdateFunctionConfiguration): {wrote:?}"
    );
    assert_eq!(wrote.values().sum::<u64>(), 1, "{wrote:?}");
    let got = deployed(&aws, s).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].reason, "vendor appliance, renewed");

    // Import reads the blocks back from the scanner's settings: no change planned after it.
    w.ok(&["state", "rm", "compliance_monitor.this"]);
    w.ok(&[
        "import",
        "-no-color",
        "-input=false",
        "compliance_monitor.this",
        s,
    ]);
    let (code, out) = plan_code(&w);
    assert_eq!(code, 0, "after import the blocks match:\n{out}");

    w.ok(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
    assert_eq!(common::pieces(&aws.moto, s).await, Vec::<String>::new());
}
