//! `terraform init`, `validate` and `plan` with the provider installed from a filesystem mirror.
#![recursion_limit = "256"]

use e2e::{text, Workdir, OFFLINE_PROVIDER, REQUIRED_PROVIDERS};
use serde_json::{json, Value};

fn monitor(body: &str) -> String {
    format!("{REQUIRED_PROVIDERS}\n{OFFLINE_PROVIDER}\nresource \"compliance_monitor\" \"this\" {{\n{body}\n}}\n")
}

/// The planned change of `compliance_monitor.this` from `terraform show -json <planfile>`.
fn planned_change(w: &Workdir, plan_args: &[&str]) -> Value {
    let mut args = vec!["plan", "-no-color", "-input=false", "-out=tf.plan"];
    args.extend_from_slice(plan_args);
    w.ok(&args);
    let shown = w.ok(&["show", "-json", "tf.plan"]);
    let plan: Value = serde_json::from_str(&shown).expect("show -json output");
    plan["resource_changes"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["address"] == "compliance_monitor.this"))
        .cloned()
        .unwrap_or_else(|| panic!("no change for compliance_monitor.this in {shown}"))
}

#[test]
fn the_example_initialises_validates_and_plans() {
    let example = test_support::workspace_root().join("examples/terraform");
    let w = Workdir::new("example", "");
    for entry in std::fs::read_dir(&example).expect("examples/terraform") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "tf") {
            std::fs::copy(&path, w.dir.join(path.file_name().expect("name")))
                .expect("copy example");
        }
    }
    let init = w.init();
    assert!(init.contains("compliance-monitor/compliance"), "{init}");
    assert!(
        w.dir.join(".terraform.lock.hcl").exists(),
        "init wrote no lock file"
    );
    w.ok(&["validate", "-no-color"]);
    let change = planned_change(&w, &["-var", "endpoint_url=http://127.0.0.1:9"]);
    assert_eq!(change["change"]["actions"], json!(["create"]));
    let after = &change["change"]["after"];
    assert_eq!(after["bucket_name"], "compliance-results-dev");
    assert_eq!(after["scanner_function_name"], "compliance-scanner-dev");
    assert_eq!(
        after["reporter_log_group_name"],
        "/aws/lambda/compliance-reporter-dev"
    );
    assert_eq!(after["dashboard_name"], "compliance-dashboard-dev");
    assert_eq!(after["id"], "dev");
    // Only apply can know ARNs.
    let unknown = &change["change"]["after_unknown"];
    for arn in ["topic_arn", "scanner_function_arn", "reporter_function_arn"] {
        assert_eq!(unknown[arn], true, "{arn} should be unknown at plan");
    }
}

#[test]
fn defaults_are_planned_and_shown() {
    let w = Workdir::new("defaults", &monitor("  environment_suffix = \"qa\""));
    w.init();
    let change = planned_change(&w, &[]);
    let after = &change["change"]["after"];
    assert_eq!(after["alert_email"], "compliance-team@example.com");
    assert_eq!(
        after["required_tags"],
        json!(["Environment", "Owner", "CostCenter"])
    );
    assert_eq!(
        after["restricted_ports"],
        json!([
            20, 21, 22, 23, 25, 445, 1433, 1521, 3306, 3389, 5432, 5900, 6379, 9200, 11211, 27017
        ])
    );
    assert_eq!(after["exempt_tag_key"], "ComplianceExempt");
    assert_eq!(after["scan_schedule"], "rate(6 hours)");
    assert_eq!(after["report_schedule"], "cron(0 0 * * ? *)");
    assert_eq!(after["log_retention_days"], 30);
    assert_eq!(after["glacier_transition_days"], 90);
    assert_eq!(after["lambda_memory_mb"], 256);
    assert_eq!(after["lambda_timeout_seconds"], 300);
    assert_eq!(after["bucket_name"], "compliance-results-qa");
    assert_eq!(after["drift"], json!([]));
    for f in ["scanner", "reporter"] {
        let sha = after[format!("{f}_code_sha256")]
            .as_str()
            .expect("code hash known at plan");
        assert_eq!(sha.len(), 44, "{f}: base64 SHA-256 expected, got {sha:?}");
    }
}

#[test]
fn new_function_code_plans_an_update_of_the_code_only() {
    let w = Workdir::new("new-code", &monitor("  environment_suffix = \"dev\""));
    w.init();
    let mut state = state_for("dev");
    let attrs = &mut state["resources"][0]["instances"][0]["attributes"];
    attrs["scanner_code_sha256"] = json!("c29tZSBvbGRlciBjb2RlIGhhc2ggb2YgdGhlIHNjYW4=");
    std::fs::write(w.dir.join("terraform.tfstate"), state.to_string()).expect("write state");
    let change = planned_change(&w, &["-refresh=false"]);
    assert_eq!(change["change"]["actions"], json!(["update"]));
    let (before, after) = (&change["change"]["before"], &change["change"]["after"]);
    let changed: Vec<&String> = after
        .as_object()
        .expect("object")
        .keys()
        .filter(|k| before[k.as_str()] != after[k.as_str()])
        .collect();
    assert_eq!(changed, ["scanner_code_sha256"], "only the code changes");
}

/// The code hash this provider build plans for a function, read from a plan of a new stack.
fn code_sha256(function: &str) -> String {
    static HASHES: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    let after = HASHES.get_or_init(|| {
        let w = Workdir::new("hashes", &monitor("  environment_suffix = \"hashes\""));
        w.init();
        planned_change(&w, &[])["change"]["after"].clone()
    });
    after[format!("{function}_code_sha256")]
        .as_str()
        .expect("planned hash")
        .to_string()
}

/// A state holding the stack as applied with `suffix` and default settings, written the way
/// Terraform writes state (format version 4), so plans can be checked against existing objects.
fn state_for(suffix: &str) -> Value {
    let arn =
        |service: &str, rest: String| format!("arn:aws:{service}:us-east-1:123456789012:{rest}");
    json!({
        "version": 4,
        "terraform_version": "1.0.0",
        "serial": 1,
        "lineage": "00000000-0000-4000-8000-000000000001",
        "outputs": {},
        "resources": [{
            "mode": "managed",
            "type": "compliance_monitor",
            "name": "this",
            "provider": "provider[\"registry.terraform.io/compliance-monitor/compliance\"]",
            "instances": [{
                "schema_version": 0,
                "attributes": {
                    "id": suffix,
                    "environment_suffix": suffix,
                    "alert_email": "compliance-team@example.com",
                    "required_tags": ["Environment", "Owner", "CostCenter"],
                    "restricted_ports": [20, 21, 22, 23, 25, 445, 1433, 1521, 3306, 3389, 5432, 5900, 6379, 9200, 11211, 27017],
                    "exempt_tag_key": "ComplianceExempt",
                    "scan_schedule": "rate(6 hours)",
                    "report_schedule": "cron(0 0 * * ? *)",
                    "log_retention_days": 30,
                    "glacier_transition_days": 90,
                    "lambda_memory_mb": 256,
                    "lambda_timeout_seconds": 300,
                    "tags": null,
                    "bucket_name": format!("compliance-results-{suffix}"),
                    "topic_arn": arn("sns", format!("compliance-alerts-{suffix}")),
                    "scanner_function_name": format!("compliance-scanner-{suffix}"),
                    "scanner_function_arn": arn("lambda", format!("function:compliance-scanner-{suffix}")),
                    "reporter_function_name": format!("compliance-reporter-{suffix}"),
                    "reporter_function_arn": arn("lambda", format!("function:compliance-reporter-{suffix}")),
                    "dashboard_name": format!("compliance-dashboard-{suffix}"),
                    "scanner_log_group_name": format!("/aws/lambda/compliance-scanner-{suffix}"),
                    "reporter_log_group_name": format!("/aws/lambda/compliance-reporter-{suffix}"),
                    "scanner_code_sha256": code_sha256("scanner"),
                    "reporter_code_sha256": code_sha256("reporter"),
                    "drift": [],
                },
                "sensitive_attributes": []
            }]
        }]
    })
}

#[test]
fn unchanged_config_plans_no_change_and_changes_plan_update_or_replace() {
    let w = Workdir::new("existing", &monitor("  environment_suffix = \"dev\""));
    w.init();
    std::fs::write(
        w.dir.join("terraform.tfstate"),
        state_for("dev").to_string(),
    )
    .expect("write state");

    // Same config: no change (exit code 0 with -detailed-exitcode).
    // -refresh=false: this state was written by the test, not applied; the planning logic is what
    // is checked here (tests/apply.rs covers plans against a real stack).
    let out = w.run(&[
        "plan",
        "-no-color",
        "-input=false",
        "-detailed-exitcode",
        "-refresh=false",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "expected no changes:\n{}",
        text(&out)
    );
    assert!(text(&out).contains("No changes"), "{}", text(&out));

    // Memory change: in-place update that keeps the ARNs known.
    w.write(&monitor(
        "  environment_suffix = \"dev\"\n  lambda_memory_mb = 512",
    ));
    let change = planned_change(&w, &["-refresh=false"]);
    assert_eq!(change["change"]["actions"], json!(["update"]));
    assert_eq!(change["change"]["after"]["lambda_memory_mb"], 512);
    assert_eq!(
        change["change"]["after"]["topic_arn"],
        "arn:aws:sns:us-east-1:123456789012:compliance-alerts-dev"
    );

    // Suffix change: replacement, new names known, ARNs unknown.
    w.write(&monitor("  environment_suffix = \"prod\""));
    let change = planned_change(&w, &["-refresh=false"]);
    assert_eq!(change["change"]["actions"], json!(["delete", "create"]));
    assert_eq!(
        change["change"]["after"]["bucket_name"],
        "compliance-results-prod"
    );
    assert_eq!(change["change"]["after_unknown"]["topic_arn"], true);
    let plan_text = w.ok(&["plan", "-no-color", "-input=false", "-refresh=false"]);
    assert!(plan_text.contains("forces replacement"), "{plan_text}");
}

#[test]
fn unknown_values_from_other_resources_plan_without_errors() {
    let body = "  environment_suffix = \"b\"\n  alert_email = \"${compliance_monitor.a.topic_arn}@example.com\"\n  \
                tags = { Upstream = compliance_monitor.a.topic_arn }";
    let main_tf = format!(
        "{}\nresource \"compliance_monitor\" \"a\" {{\n  environment_suffix = \"a\"\n}}\n",
        monitor(body)
    );
    let w = Workdir::new("unknowns", &main_tf);
    w.init();
    let out = w.ok(&["plan", "-no-color", "-input=false"]);
    assert!(out.contains("Plan: 2 to add"), "{out}");
}

#[test]
fn the_module_consumer_example_plans_two_stacks() {
    let examples = test_support::workspace_root().join("examples/terraform");
    let w = Workdir::new("module-consumer", "");
    // Keep the example's relative module source working: copy both folders side by side.
    for (from, to) in [
        ("module-consumer", "."),
        (
            "modules/compliance-monitor",
            "../modules/compliance-monitor",
        ),
    ] {
        let dest = w.dir.join(to);
        std::fs::create_dir_all(&dest).expect("folder");
        for entry in std::fs::read_dir(examples.join(from)).expect("example folder") {
            let path = entry.expect("entry").path();
            std::fs::copy(&path, dest.join(path.file_name().expect("name"))).expect("copy");
        }
    }
    w.init();
    w.ok(&["validate", "-no-color"]);
    let plan = w.ok(&[
        "plan",
        "-no-color",
        "-input=false",
        "-var",
        "endpoint_url=http://127.0.0.1:9",
    ]);
    assert!(plan.contains("Plan: 2 to add"), "{plan}");
    assert!(
        plan.contains("module.payments.compliance_monitor.this"),
        "{plan}"
    );
    assert!(plan.contains("\"compliance-results-search\""), "{plan}");
}
