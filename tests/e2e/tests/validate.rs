//! `terraform validate` against invalid configurations: each fails, with an error whose summary
//! names the attribute and whose source range is the attribute's own line.

use e2e::{text, Workdir, OFFLINE_PROVIDER, REQUIRED_PROVIDERS};

/// (case, attribute lines of the resource block, extra provider lines, attribute named, summary)
struct Case {
    name: &'static str,
    resource: &'static str,
    provider: &'static str,
    attribute: &'static str,
    summary: &'static str,
}

const fn case(
    name: &'static str,
    resource: &'static str,
    attribute: &'static str,
    summary: &'static str,
) -> Case {
    Case {
        name,
        resource,
        provider: "",
        attribute,
        summary,
    }
}

const fn provider_case(
    name: &'static str,
    provider: &'static str,
    attribute: &'static str,
    summary: &'static str,
) -> Case {
    Case {
        name,
        resource: "",
        provider,
        attribute,
        summary,
    }
}

const CASES: &[Case] = &[
    case(
        "suffix-uppercase",
        r#"environment_suffix = "Dev""#,
        "environment_suffix",
        "Invalid environment_suffix",
    ),
    case(
        "suffix-underscore",
        r#"environment_suffix = "dev_1""#,
        "environment_suffix",
        "Invalid environment_suffix",
    ),
    case(
        "suffix-too-long",
        r#"environment_suffix = "abcdefghijabcdefghijabcdefghijabcdefghijabcde""#,
        "environment_suffix",
        "Invalid environment_suffix",
    ),
    case(
        "suffix-trailing-hyphen",
        r#"environment_suffix = "dev-""#,
        "environment_suffix",
        "Invalid environment_suffix",
    ),
    case(
        "suffix-empty",
        r#"environment_suffix = """#,
        "environment_suffix",
        "Invalid environment_suffix",
    ),
    case(
        "bucket-name-uppercase",
        r#"bucket_name = "Compliance-Results""#,
        "bucket_name",
        "Invalid bucket_name",
    ),
    case(
        "tags-own-key",
        r#"tags = { ComplianceStack = "other" }"#,
        "tags",
        "Invalid tags",
    ),
    case(
        "tags-bad-character",
        r#"tags = { Team = "a;b" }"#,
        "tags",
        "Invalid tags",
    ),
    case(
        "exemption-expired",
        "exemption {\n    id = \"old\"\n    resources = [\"i-0abc\"]\n    reason = \"r\"\n    owner = \"o\"\n    expires = \"2020-01-31\"\n  }",
        "expires",
        "Invalid exemption",
    ),
    case(
        "exemption-too-long",
        "exemption {\n    id = \"forever\"\n    tag = { Team = \"x\" }\n    reason = \"r\"\n    owner = \"o\"\n    expires = \"2999-01-01\"\n  }",
        "expires",
        "Invalid exemption",
    ),
    case(
        "exemption-no-reason",
        "exemption {\n    id = \"why\"\n    resources = [\"sg-0abc\"]\n    reason = \"\"\n    owner = \"o\"\n    expires = \"2027-01-31\"\n  }",
        "reason",
        "Invalid exemption",
    ),
    case(
        "email-no-at",
        r#"alert_email = "compliance-team""#,
        "alert_email",
        "Invalid alert_email",
    ),
    case(
        "email-no-domain-dot",
        r#"alert_email = "team@localhost""#,
        "alert_email",
        "Invalid alert_email",
    ),
    case(
        "scan-schedule-words",
        r#"scan_schedule = "every 6 hours""#,
        "scan_schedule",
        "Invalid scan_schedule",
    ),
    case(
        "scan-schedule-plural",
        r#"scan_schedule = "rate(1 hours)""#,
        "scan_schedule",
        "Invalid scan_schedule",
    ),
    case(
        "report-cron-5-fields",
        r#"report_schedule = "cron(0 0 * * *)""#,
        "report_schedule",
        "Invalid report_schedule",
    ),
    case(
        "report-cron-no-question-mark",
        r#"report_schedule = "cron(0 0 * * * *)""#,
        "report_schedule",
        "Invalid report_schedule",
    ),
    case(
        "retention-31",
        "log_retention_days = 31",
        "log_retention_days",
        "Invalid log_retention_days",
    ),
    case(
        "retention-0",
        "log_retention_days = 0",
        "log_retention_days",
        "Invalid log_retention_days",
    ),
    case(
        "required-tags-empty",
        "required_tags = []",
        "required_tags",
        "Invalid required_tags",
    ),
    case(
        "required-tags-duplicate",
        r#"required_tags = ["Owner", "Owner"]"#,
        "required_tags",
        "Invalid required_tags",
    ),
    case(
        "required-tags-blank",
        r#"required_tags = ["Owner", " "]"#,
        "required_tags",
        "Invalid required_tags",
    ),
    case(
        "port-too-high",
        "restricted_ports = [22, 70000]",
        "restricted_ports",
        "Invalid restricted_ports",
    ),
    case(
        "port-negative",
        "restricted_ports = [-1]",
        "restricted_ports",
        "Invalid restricted_ports",
    ),
    case(
        "port-duplicate",
        "restricted_ports = [22, 22]",
        "restricted_ports",
        "Invalid restricted_ports",
    ),
    case(
        "memory-too-low",
        "lambda_memory_mb = 64",
        "lambda_memory_mb",
        "Invalid lambda_memory_mb",
    ),
    case(
        "memory-too-high",
        "lambda_memory_mb = 20000",
        "lambda_memory_mb",
        "Invalid lambda_memory_mb",
    ),
    case(
        "memory-fraction",
        "lambda_memory_mb = 256.5",
        "lambda_memory_mb",
        "Invalid lambda_memory_mb",
    ),
    case(
        "timeout-zero",
        "lambda_timeout_seconds = 0",
        "lambda_timeout_seconds",
        "Invalid lambda_timeout_seconds",
    ),
    case(
        "timeout-over-900",
        "lambda_timeout_seconds = 901",
        "lambda_timeout_seconds",
        "Invalid lambda_timeout_seconds",
    ),
    case(
        "glacier-negative",
        "glacier_transition_days = -1",
        "glacier_transition_days",
        "Invalid glacier_transition_days",
    ),
    case(
        "glacier-before-the-reporter-reads",
        "glacier_transition_days = 1",
        "glacier_transition_days",
        "Invalid glacier_transition_days",
    ),
    case(
        "rate-over-a-year",
        r#"scan_schedule = "rate(18446744073709551615 days)""#,
        "scan_schedule",
        "Invalid scan_schedule",
    ),
    case(
        "environment-over-4kb",
        r#"required_tags = [for i in range(40) : format("%s-%d", "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk", i)]"#,
        "required_tags",
        "Invalid required_tags",
    ),
    case(
        "exempt-key-reserved",
        r#"exempt_tag_key = "aws:exempt""#,
        "exempt_tag_key",
        "Invalid exempt_tag_key",
    ),
    case(
        "tags-reserved-key",
        r#"tags = { "aws:team" = "x" }"#,
        "tags",
        "Invalid tags",
    ),
    provider_case(
        "provider-region",
        r#"region = "useast1""#,
        "region",
        "Invalid region",
    ),
    provider_case(
        "provider-endpoint",
        r#"endpoint_url = "localhost:5000""#,
        "endpoint_url",
        "Invalid endpoint_url",
    ),
    provider_case(
        "provider-max-retries",
        "max_retries = 100",
        "max_retries",
        "Invalid max_retries",
    ),
    provider_case(
        "provider-role-arn",
        "assume_role {\n    role_arn = \"not-an-arn\"\n  }",
        "role_arn",
        "Invalid assume_role.role_arn",
    ),
];

fn config(resource: &str, provider: &str) -> String {
    let mut resource_lines = String::new();
    if !resource.contains("environment_suffix") {
        resource_lines.push_str("  environment_suffix = \"dev\"\n");
    }
    if !resource.is_empty() {
        resource_lines.push_str(&format!("  {resource}\n"));
    }
    format!(
        "{REQUIRED_PROVIDERS}\nprovider \"compliance\" {{\n  {provider}\n}}\n\nresource \"compliance_monitor\" \"this\" {{\n{resource_lines}}}\n"
    )
}

/// The 1-based line of the first `attribute =` (or `attribute {`) in the text.
fn line_of(text: &str, attribute: &str) -> i64 {
    let pos = text
        .lines()
        .position(|l| {
            let t = l.trim_start();
            t.starts_with(&format!("{attribute} =")) || t.starts_with(&format!("{attribute} {{"))
        })
        .expect("attribute in config");
    pos as i64 + 1
}

#[test]
fn invalid_configurations_fail_naming_the_attribute() {
    assert!(CASES.len() >= 20);
    let base = Workdir::new(
        "validate-base",
        &format!("{REQUIRED_PROVIDERS}\n{OFFLINE_PROVIDER}"),
    );
    base.init();
    let mut failures = Vec::new();
    // Two at a time: the machine has two cores and each run starts Terraform and the provider.
    for pair in CASES.chunks(2) {
        let handles: Vec<_> = pair
            .iter()
            .map(|c| {
                let main_tf = config(c.resource, c.provider);
                let w = Workdir::sharing(&base, &format!("validate-{}", c.name), &main_tf);
                std::thread::spawn(move || (w.run(&["validate", "-json", "-no-color"]), main_tf))
            })
            .collect();
        for (c, h) in pair.iter().zip(handles) {
            let (out, main_tf) = h.join().expect("validate thread");
            if let Err(why) = check_case(c, &out, &main_tf) {
                failures.push(format!("{}: {why}\n{}", c.name, text(&out)));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

fn check_case(c: &Case, out: &std::process::Output, main_tf: &str) -> Result<(), String> {
    if out.status.success() {
        return Err("validate succeeded".into());
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("validate -json output is not JSON: {e}"))?;
    if report["valid"] != serde_json::Value::Bool(false) {
        return Err("validate -json does not say valid: false".into());
    }
    let want_line = line_of(main_tf, c.attribute);
    let diags = report["diagnostics"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let found = diags.iter().any(|d| {
        d["severity"] == "error"
            && d["summary"] == c.summary
            && d["range"]["start"]["line"].as_i64() == Some(want_line)
            && d["detail"].as_str().is_some_and(|s| !s.is_empty())
    });
    if found {
        Ok(())
    } else {
        Err(format!(
            "no error {:?} at line {want_line} ({}); diagnostics: {}",
            c.summary,
            c.attribute,
            serde_json::to_string_pretty(&diags).unwrap_or_default()
        ))
    }
}

#[test]
fn values_from_variables_are_not_errors_at_validate_time() {
    // validate evaluates variables as unknown: the provider must not reject unknowns.
    let main_tf = format!(
        "{REQUIRED_PROVIDERS}\n{OFFLINE_PROVIDER}\nvariable \"suffix\" {{\n  type = string\n}}\n\
         variable \"memory\" {{\n  type = number\n}}\n\
         resource \"compliance_monitor\" \"this\" {{\n  environment_suffix = var.suffix\n  lambda_memory_mb = var.memory\n  \
         required_tags = [var.suffix]\n  restricted_ports = [var.memory]\n}}\n"
    );
    let w = Workdir::new("validate-unknowns", &main_tf);
    w.init();
    let out = w.ok(&["validate", "-no-color"]);
    assert!(out.contains("The configuration is valid"), "{out}");
}
