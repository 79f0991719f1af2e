//! `terraform-provider-compliance analyse` against the moto emulator: clean after `terraform
//! apply`; every piece broken outside Terraform in turn gives exit code 1 and a finding naming it;
//! `terraform apply` repairs the stack and the audit is clean again. Settings from a state file,
//! the scanner-result check, and bad input (exit code 2).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{s3, sdk};
use e2e::{text, Workdir, REQUIRED_PROVIDERS};
use serde_json::Value;
use test_support::{provider_bin, Moto};

fn config(moto: &Moto, suffix: &str, body: &str) -> String {
    format!(
        "{REQUIRED_PROVIDERS}\nprovider \"compliance\" {{\n  region = \"us-east-1\"\n  endpoint_url = \"{}\"\n  \
         default_tags = {{ Project = \"e2e\" }}\n}}\n\nresource \"compliance_monitor\" \"this\" {{\n  \
         environment_suffix = \"{suffix}\"\n{body}\n}}\n",
        moto.endpoint()
    )
}

fn applied(moto: &Moto, name: &str, suffix: &str, body: &str) -> Workdir {
    let mut w = Workdir::new(name, &config(moto, suffix, body));
    w.env = moto.aws_env();
    w.init();
    w.ok(&["apply", "-auto-approve", "-no-color", "-input=false"]);
    w
}

/// One run of the command: exit code, the JSON report (Null when none was written), and the
/// terminal output.
struct Run {
    code: i32,
    report: Value,
    out: String,
}

impl Run {
    /// Findings of one area.
    fn findings(&self, area: &str) -> Vec<Value> {
        self.report[area]["findings"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The issue (not a warning) of `area` whose resource contains `piece` and whose check is
    /// `check`; panics with the report when there is none.
    fn issue(&self, area: &str, piece: &str, check: &str) -> Value {
        self.findings(area)
            .into_iter()
            .find(|f| {
                f["resource"].as_str().is_some_and(|r| r.contains(piece))
                    && f["check"] == check
                    && f["severity"] != "warning"
            })
            .unwrap_or_else(|| {
                panic!(
                    "no {area} issue {check:?} on {piece:?} (exit {}):\n{}",
                    self.code, self.out
                )
            })
    }
}

/// Runs the provider binary's `analyse` in the working folder against the emulator.
fn analyse(moto: &Moto, w: &Workdir, args: &[&str]) -> Run {
    let output = w.dir.join("analysis.json");
    let _ = std::fs::remove_file(&output);
    let mut cmd = Command::new(provider_bin());
    moto.configure(&mut cmd);
    let out = cmd
        .current_dir(&w.dir)
        .arg("analyse")
        .args(args)
        .args(["--endpoint-url", &moto.endpoint(), "--region", "us-east-1"])
        .args(["--output", output.to_str().expect("utf-8 path")])
        .output()
        .expect("run the provider binary");
    let report = std::fs::read_to_string(&output)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    Run {
        code: out.status.code().unwrap_or(-1),
        report,
        out: text(&out),
    }
}

fn assert_clean(run: &Run, when: &str) {
    assert_eq!(run.code, 0, "{when}: expected a clean stack:\n{}", run.out);
    assert_eq!(run.report["summary"]["total_issues"], 0, "{when}");
    assert_eq!(run.report["summary"]["status"], "clean", "{when}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_after_apply_then_each_piece_broken_outside_terraform() {
    let moto = Moto::start_tls();
    let s = "an";
    let w = applied(&moto, "analyse-break", s, "");
    let suffix = ["--suffix", s];

    let run = analyse(&moto, &w, &suffix);
    assert_clean(&run, "after apply");
    assert!(run.out.contains("CLEAN: 0 issue(s)"), "{}", run.out);
    // No trail logs management events in the emulator's region: a warning, not an issue.
    let trail_warning = |run: &Run| {
        run.report["events"]["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|f| f["check"] == "management events trail" && f["severity"] == "warning")
    };
    assert!(trail_warning(&run), "{}", run.out);
    let cfg = sdk(&moto).await;
    s3(&cfg)
        .create_bucket()
        .bucket("trail-logs-an")
        .send()
        .await
        .expect("trail bucket");
    let trails = aws_sdk_cloudtrail::Client::new(&cfg);
    trails
        .create_trail()
        .name("management")
        .s3_bucket_name("trail-logs-an")
        .is_multi_region_trail(true)
        .send()
        .await
        .expect("create trail");
    trails
        .start_logging()
        .name("management")
        .send()
        .await
        .expect("start logging");
    let run = analyse(&moto, &w, &suffix);
    assert_clean(&run, "with a logging trail");
    assert!(!trail_warning(&run), "{}", run.out);
    assert_eq!(run.report["summary"]["settings_from"], "resource defaults");
    // The provider's default_tags are invisible without the provider block: warnings only.
    assert!(
        run.findings("bucket")
            .iter()
            .any(|f| f["check"] == "extra tags" && f["severity"] == "warning"),
        "{}",
        run.out
    );
    // Told the provider's default_tags, nothing is beyond the wanted tags any more.
    let told = analyse(&moto, &w, &["--suffix", s, "--default-tags", "Project=e2e"]);
    assert_clean(&told, "with --default-tags");
    let all: Vec<Value> = [
        "functions",
        "log_groups",
        "topic",
        "bucket",
        "schedules",
        "roles",
    ]
    .iter()
    .flat_map(|area| told.findings(area))
    .collect();
    assert!(
        !all.iter().any(|f| f["check"] == "extra tags"),
        "{}",
        told.out
    );
    // A brand-new stack has not scanned yet: a warning, not an issue.
    let results = run.findings("scanner_results");
    assert!(
        results.iter().all(|f| f["severity"] == "warning"),
        "{results:?}"
    );

    let cfg = sdk(&moto).await;
    let lambda = aws_sdk_lambda::Client::new(&cfg);
    let logs = aws_sdk_cloudwatchlogs::Client::new(&cfg);
    let events = aws_sdk_eventbridge::Client::new(&cfg);
    let iam = aws_sdk_iam::Client::new(&cfg);
    let cw = aws_sdk_cloudwatch::Client::new(&cfg);
    let sns = aws_sdk_sns::Client::new(&cfg);
    let s3 = s3(&cfg);
    let scanner = "compliance-scanner-an";
    let reporter = "compliance-reporter-an";

    // Each break adds to the last; each run must name the new one.
    lambda
        .update_function_configuration()
        .function_name(scanner)
        .timeout(60)
        .send()
        .await
        .expect("change timeout");
    let run = analyse(&moto, &w, &suffix);
    assert_eq!(run.code, 1, "{}", run.out);
    let f = run.issue("functions", scanner, "timeout");
    assert_eq!(f["severity"], "medium");
    assert!(f["message"]
        .as_str()
        .unwrap()
        .contains("timeout is 60, want 300"));
    assert!(f["fix"].as_str().unwrap().contains("terraform apply"));
    assert_eq!(run.report["summary"]["total_issues"], 1, "{}", run.out);
    assert_eq!(
        run.report["summary"]["areas_with_issues"],
        serde_json::json!(["functions"])
    );
    assert!(
        run.out
            .contains("Lambda function compliance-scanner-an: timeout is 60"),
        "the table names it:\n{}",
        run.out
    );

    logs.put_retention_policy()
        .log_group_name(format!("/aws/lambda/{reporter}"))
        .retention_in_days(7)
        .send()
        .await
        .expect("retention");
    let run = analyse(&moto, &w, &suffix);
    assert_eq!(run.code, 1);
    run.issue("log_groups", reporter, "retention days");

    logs.delete_log_group()
        .log_group_name(format!("/aws/lambda/{scanner}"))
        .send()
        .await
        .expect("delete log group");
    let run = analyse(&moto, &w, &suffix);
    let f = run.issue("log_groups", scanner, "missing");
    assert_eq!(f["severity"], "critical");

    events
        .disable_rule()
        .name(scanner)
        .send()
        .await
        .expect("disable rule");
    analyse(&moto, &w, &suffix).issue("schedules", scanner, "enabled");

    events
        .remove_targets()
        .rule(reporter)
        .ids("compliance-function")
        .send()
        .await
        .expect("remove target");
    analyse(&moto, &w, &suffix).issue("schedules", reporter, "targets");

    lambda
        .remove_permission()
        .function_name(reporter)
        .statement_id("compliance-schedule")
        .send()
        .await
        .expect("remove permission");
    analyse(&moto, &w, &suffix).issue("schedules", reporter, "invoke permission");

    iam.put_role_policy()
        .role_name(scanner)
        .policy_name("compliance-monitor")
        .policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
        )
        .send()
        .await
        .expect("widen policy");
    let run = analyse(&moto, &w, &suffix);
    let f = run.issue("roles", scanner, "least privilege");
    assert_eq!(f["severity"], "critical");
    assert!(f["message"].as_str().unwrap().contains("* on *"), "{f}");
    run.issue("roles", scanner, "inline policies");

    cw.delete_alarms()
        .alarm_names("reporter-duration-alarm-an")
        .send()
        .await
        .expect("delete alarm");
    analyse(&moto, &w, &suffix).issue("alarms", "reporter-duration-alarm-an", "missing");

    s3.put_bucket_versioning()
        .bucket("compliance-results-an")
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Suspended)
                .build(),
        )
        .send()
        .await
        .expect("suspend versioning");
    analyse(&moto, &w, &suffix).issue("bucket", "compliance-results-an", "versioning enabled");

    s3.delete_public_access_block()
        .bucket("compliance-results-an")
        .send()
        .await
        .expect("delete public access block");
    let run = analyse(&moto, &w, &suffix);
    let f = run.issue("bucket", "compliance-results-an", "public access blocked");
    assert_eq!(f["severity"], "critical");

    let topic = "arn:aws:sns:us-east-1:123456789012:compliance-alerts-an";
    let subs = sns
        .list_subscriptions_by_topic()
        .topic_arn(topic)
        .send()
        .await
        .expect("subscriptions");
    for sub in subs.subscriptions() {
        let arn = sub.subscription_arn().unwrap_or_default();
        if arn.starts_with("arn:") {
            sns.unsubscribe()
                .subscription_arn(arn)
                .send()
                .await
                .expect("unsubscribe");
        }
    }
    analyse(&moto, &w, &suffix).issue("topic", "compliance-alerts-an", "subscription");

    lambda
        .delete_function()
        .function_name(reporter)
        .send()
        .await
        .expect("delete function");
    let run = analyse(&moto, &w, &suffix);
    assert_eq!(run.code, 1);
    let f = run.issue("functions", reporter, "missing");
    assert_eq!(f["severity"], "critical");
    // Everything broken so far is still named.
    let areas = run.report["summary"]["areas_with_issues"].clone();
    for area in [
        "functions",
        "log_groups",
        "alarms",
        "topic",
        "bucket",
        "schedules",
        "roles",
    ] {
        assert!(
            areas.as_array().unwrap().contains(&Value::from(area)),
            "{areas}"
        );
    }

    // Terraform repairs what the audit found, and the two agree the stack is whole again.
    w.ok(&["apply", "-auto-approve", "-no-color", "-input=false"]);
    assert_clean(
        &analyse(&moto, &w, &suffix),
        "after terraform apply repaired it",
    );

    w.ok(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
    let run = analyse(&moto, &w, &suffix);
    assert_eq!(run.code, 1);
    assert_eq!(run.report["summary"]["total_issues"], 19, "{}", run.out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_from_the_state_file_and_the_scanner_result_check() {
    let moto = Moto::start_tls();
    let s = "st";
    let started = Instant::now();
    let w = applied(
        &moto,
        "analyse-state",
        s,
        "  lambda_timeout_seconds = 120\n  scan_schedule = \"rate(1 minute)\"\n  force_destroy = true",
    );
    let state = ["--state", "terraform.tfstate"];

    // With the state, the applied settings are what is wanted: clean.
    let run = analyse(&moto, &w, &state);
    assert_clean(&run, "with --state");
    assert!(
        run.report["summary"]["settings_from"]
            .as_str()
            .unwrap()
            .starts_with("state file"),
        "{}",
        run.out
    );
    // The suffix may be given too and must match.
    assert_clean(
        &analyse(&moto, &w, &["--state", "terraform.tfstate", "--suffix", s]),
        "--state with --suffix",
    );

    // Without it, the resource's defaults: the timeout, the duration alarm's threshold and the
    // scan schedule differ.
    let run = analyse(&moto, &w, &["--suffix", s]);
    assert_eq!(run.code, 1, "{}", run.out);
    let f = run.issue("functions", "compliance-scanner-st", "timeout");
    assert!(f["message"]
        .as_str()
        .unwrap()
        .contains("timeout is 120, want 300"));
    run.issue("schedules", "compliance-scanner-st", "expression");
    run.issue("alarms", "scanner-duration-alarm-st", "threshold");

    // Two intervals (2 minutes) after creation with no result, the scanner check is an issue.
    // The audit reads its clock from --now: set 150 s after the stack was made, instead of
    // waiting that long.
    let later = time::OffsetDateTime::now_utc()
        + Duration::from_secs(150).saturating_sub(started.elapsed());
    let later = later
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format --now");
    let run = analyse(
        &moto,
        &w,
        &["--state", "terraform.tfstate", "--now", &later],
    );
    assert_eq!(run.code, 1, "{}", run.out);
    let f = run.issue(
        "scanner_results",
        "compliance-results-st",
        "recent scan result",
    );
    assert_eq!(f["severity"], "high");
    assert_eq!(
        run.report["summary"]["areas_with_issues"],
        serde_json::json!(["scanner_results"])
    );

    // Store a result where the scanner would. moto mis-evaluates the TLS-only deny policy, so
    // object writes need it lifted first, which is itself a finding.
    let cfg = sdk(&moto).await;
    let s3 = s3(&cfg);
    s3.delete_bucket_policy()
        .bucket("compliance-results-st")
        .send()
        .await
        .expect("lift the policy");
    let now = time::OffsetDateTime::now_utc();
    let key = format!(
        "scans/{:04}/{:02}/{:02}/{:04}{:02}{:02}T000000.000Z.json",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.year(),
        u8::from(now.month()),
        now.day()
    );
    s3.put_object()
        .bucket("compliance-results-st")
        .key(&key)
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"{}"))
        .send()
        .await
        .expect("store a scan result");
    let run = analyse(&moto, &w, &state);
    assert_eq!(run.code, 1, "{}", run.out);
    assert_eq!(
        run.findings("scanner_results"),
        Vec::<Value>::new(),
        "{}",
        run.out
    );
    run.issue("bucket", "compliance-results-st", "TLS-only policy");
    assert_eq!(run.report["summary"]["total_issues"], 1, "{}", run.out);

    w.ok(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
}

#[test]
fn bad_input_exits_2_naming_the_flag_before_any_aws_call() {
    let dir = e2e::scratch("analyse-usage");
    let run = |args: &[&str]| {
        let out = Command::new(provider_bin())
            .current_dir(&dir)
            // Nothing listens there: had the command called AWS, it would fail with code 3.
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .env("AWS_REGION", "us-east-1")
            .arg("analyse")
            .args(args)
            .output()
            .expect("run the provider binary");
        (out.status.code().unwrap_or(-1), text(&out))
    };
    let cases: [(&[&str], &str); 6] = [
        (&["--suffix", "dev", "--colour"], "\"--colour\""),
        (&[], "--suffix is missing"),
        (&["--suffix", "Not_Valid"], "--suffix \"Not_Valid\""),
        (&["--suffix", "dev", "--region", "nowhere"], "--region"),
        (
            &["--suffix", "dev", "--state", "missing.tfstate"],
            "--state missing.tfstate: cannot read it",
        ),
        (&["--suffix"], "--suffix needs a value"),
    ];
    for (args, want) in cases {
        let (code, out) = run(args);
        assert_eq!(code, 2, "{args:?}:\n{out}");
        assert!(out.contains(want), "{args:?} should say {want:?}:\n{out}");
    }
    std::fs::write(dir.join("empty.tfstate"), r#"{"version":4,"resources":[]}"#).unwrap();
    let (code, out) = run(&["--state", "empty.tfstate"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("no compliance_monitor"), "{out}");
    assert!(!dir.join("compliance-monitoring-analysis.json").exists());
    let (code, out) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("exit codes"), "{out}");
}
