//! The whole lifecycle against the moto emulator with the real Terraform CLI: apply, no-change
//! plan, updates in place, drift repaired, replacement, import, destroy — and after every destroy a
//! sweep of the emulator showing nothing of the stack is left.

mod common;

use common::{s3, sdk};
use e2e::{text, Aws, Workdir, REQUIRED_PROVIDERS};
use serde_json::Value;
use terraform_provider_compliance::code;
use test_support::fidelity::Fidelity;
use test_support::Moto;

/// The proxy's seed: its throttling and lost answers fall the same way run after run (as far as
/// concurrency lets them).
const SEED: u64 = 20261128;

/// A lifecycle test run twice: against moto as it is, and through the proxy that makes moto
/// behave as AWS does (then the proxy's counters must show it met what AWS does).
macro_rules! both_ways {
    ($plain:ident, $like_aws:ident, $body:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $plain() {
            $body(&Aws::plain()).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $like_aws() {
            let aws = Aws::behind(Fidelity::realistic(SEED));
            $body(&aws).await;
            aws.assert_met_aws_behaviour();
        }
    };
}

fn config(aws: &Aws, suffix: &str, body: &str) -> String {
    format!(
        "{REQUIRED_PROVIDERS}\nprovider \"compliance\" {{\n  region = \"us-east-1\"\n  endpoint_url = \"{}\"\n  \
         default_tags = {{ Project = \"e2e\" }}\n}}\n\nresource \"compliance_monitor\" \"this\" {{\n  \
         environment_suffix = \"{suffix}\"\n{body}\n}}\n\noutput \"topic_arn\" {{\n  value = compliance_monitor.this.topic_arn\n}}\n",
        aws.endpoint()
    )
}

fn workdir(aws: &Aws, name: &str, main_tf: &str) -> Workdir {
    // A test runs plain and through the proxy at the same time: each needs its own folder.
    let name = match &aws.proxy {
        Some(_) => format!("{name}-proxied"),
        None => name.to_string(),
    };
    let mut w = Workdir::new(&name, main_tf);
    w.env = aws.aws_env();
    w.init();
    w
}

fn apply(w: &Workdir) -> String {
    w.ok(&["apply", "-auto-approve", "-no-color", "-input=false"])
}

/// `plan -detailed-exitcode`: 0 no changes, 2 changes.
fn plan_code(w: &Workdir) -> (i32, String) {
    let out = w.run(&["plan", "-no-color", "-input=false", "-detailed-exitcode"]);
    (out.status.code().unwrap_or(-1), text(&out))
}

fn assert_no_changes(w: &Workdir, when: &str) {
    let (code, out) = plan_code(w);
    assert_eq!(code, 0, "{when}: expected no changes:\n{out}");
}

fn state_attrs(w: &Workdir) -> Value {
    let shown: Value = serde_json::from_str(&w.ok(&["show", "-json"])).expect("show -json");
    shown["values"]["root_module"]["resources"][0]["values"].clone()
}

/// Every piece of the stack `suffix` found in the emulator's account, by listing each service.
async fn pieces(moto: &Moto, suffix: &str) -> Vec<String> {
    common::pieces(moto, suffix).await
}

/// Asserts the emulator holds no piece of the stack `suffix`.
async fn assert_swept(moto: &Moto, suffix: &str) {
    assert_swept_except(moto, suffix, &[]).await;
}

/// Asserts the emulator holds no piece of the stack `suffix` but those named in `except`.
async fn assert_swept_except(moto: &Moto, suffix: &str, except: &[&str]) {
    let left: Vec<String> = pieces(moto, suffix)
        .await
        .into_iter()
        .filter(|p| !except.contains(&p.as_str()))
        .collect();
    assert!(
        left.is_empty(),
        "left in the emulator after destroy: {left:?}"
    );
}

/// Asserts the emulator holds all 19 pieces (bucket, topic, 2 roles, 2 functions, 2 log groups,
/// 2 schedule rules, 4 alarms, dashboard, and with `event_driven` the change rule, 2 queues and
/// the event source mapping) of the stack (the sweep's counterpart).
async fn assert_present(moto: &Moto, suffix: &str) {
    let found = pieces(moto, suffix).await;
    assert_eq!(found.len(), 19, "pieces of {suffix}: {found:?}");
}

both_ways!(
    apply_update_drift_and_destroy,
    apply_update_drift_and_destroy_like_aws,
    apply_update_drift_and_destroy_on
);

async fn apply_update_drift_and_destroy_on(aws: &Aws) {
    let moto = &aws.moto;
    let s = "e2e";
    let w = workdir(aws, "apply", &config(aws, s, ""));
    let out = apply(&w);
    assert!(out.contains("Apply complete! Resources: 1 added"), "{out}");
    assert_present(moto, s).await;
    let st = state_attrs(&w);
    assert_eq!(
        st["topic_arn"],
        "arn:aws:sns:us-east-1:123456789012:compliance-alerts-e2e"
    );
    assert_eq!(
        st["scanner_function_arn"],
        "arn:aws:lambda:us-east-1:123456789012:function:compliance-scanner-e2e"
    );
    assert_eq!(st["drift"], serde_json::json!([]));
    assert_no_changes(&w, "after create");

    let cfg = sdk(moto).await;
    let lambda = aws_sdk_lambda::Client::new(&cfg);
    let f = lambda
        .get_function()
        .function_name("compliance-scanner-e2e")
        .send()
        .await
        .expect("scanner");
    let conf = f.configuration().expect("configuration");
    assert_eq!(conf.runtime().map(|r| r.as_str()), Some("provided.al2023"));
    assert_eq!(conf.memory_size(), Some(256));
    // A failed scheduled run is not retried: one tick, at most one stored scan and alert.
    for name in ["compliance-scanner-e2e", "compliance-reporter-e2e"] {
        let invoke = lambda
            .get_function_event_invoke_config()
            .function_name(name)
            .send()
            .await
            .expect("asynchronous invoke configuration");
        assert_eq!(invoke.maximum_retry_attempts(), Some(0), "{name}");
        assert_eq!(invoke.maximum_event_age_in_seconds(), Some(3600), "{name}");
    }
    assert_eq!(conf.code_sha256(), st["scanner_code_sha256"].as_str());
    // What was deployed is, byte for byte, the zip whose bootstrap `provider/tests/code.rs`
    // checks (x86_64, glibc <= 2.34). moto's Code.Location points at an AWS host and is never
    // fetched; the digest and size identify the upload.
    for (name, code) in [
        ("compliance-scanner-e2e", code::scanner()),
        ("compliance-reporter-e2e", code::reporter()),
    ] {
        let deployed = lambda
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .expect("function configuration");
        assert_eq!(
            deployed.code_sha256(),
            Some(code.sha256_base64.as_str()),
            "{name}"
        );
        assert_eq!(deployed.code_size(), code.zip.len() as i64, "{name}");
    }
    let env = conf
        .environment()
        .and_then(|e| e.variables())
        .expect("environment");
    assert_eq!(
        env.get("REQUIRED_TAGS").map(String::as_str),
        Some("Environment,Owner,CostCenter")
    );
    assert_eq!(
        env.get("BUCKET_NAME").map(String::as_str),
        Some("compliance-results-e2e")
    );
    assert_eq!(
        f.tags().and_then(|t| t.get("Project")).map(String::as_str),
        Some("e2e")
    );

    // Settings and code change together (a provider upgrade with a memory change): here the
    // scanner runs other code, put there outside Terraform, so the update must replace both.
    // On AWS the code update is refused while the configuration update is in progress.
    lambda
        .update_function_code()
        .function_name("compliance-scanner-e2e")
        .zip_file(aws_sdk_lambda::primitives::Blob::new(code::reporter().zip))
        .send()
        .await
        .expect("other code");
    // Updates in place.
    w.write(&config(
        aws,
        s,
        "  lambda_memory_mb = 512\n  lambda_timeout_seconds = 120\n  log_retention_days = 7\n  \
         scan_schedule = \"rate(12 hours)\"\n  alert_email = \"secops@example.com\"\n  required_tags = [\"Owner\"]",
    ));
    let (code, out) = plan_code(&w);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("update in-place") && out.contains("0 to destroy"),
        "{out}"
    );
    apply(&w);
    assert_no_changes(&w, "after update");
    let conf = lambda
        .get_function()
        .function_name("compliance-scanner-e2e")
        .send()
        .await
        .expect("scanner");
    let conf = conf.configuration().expect("configuration");
    assert_eq!(conf.memory_size(), Some(512));
    assert_eq!(conf.timeout(), Some(120));
    assert_eq!(
        conf.code_sha256(),
        Some(code::scanner().sha256_base64.as_str()),
        "the scanner's own code is back"
    );
    let cw = aws_sdk_cloudwatch::Client::new(&cfg);
    let alarms = cw
        .describe_alarms()
        .alarm_names("scanner-duration-alarm-e2e")
        .send()
        .await
        .expect("alarms");
    assert_eq!(
        alarms.metric_alarms()[0].threshold(),
        Some(120_000.0),
        "duration alarm follows the timeout"
    );
    let logs = aws_sdk_cloudwatchlogs::Client::new(&cfg);
    let groups = logs
        .describe_log_groups()
        .log_group_name_prefix("/aws/lambda/compliance-reporter-e2e")
        .send()
        .await
        .expect("log groups");
    assert_eq!(groups.log_groups()[0].retention_in_days(), Some(7));
    let events = aws_sdk_eventbridge::Client::new(&cfg);
    let rule = events
        .describe_rule()
        .name("compliance-scanner-e2e")
        .send()
        .await
        .expect("rule");
    assert_eq!(rule.schedule_expression(), Some("rate(12 hours)"));

    // Drift of several kinds, made outside Terraform, shows in the plan by piece and is repaired.
    // (Removed rather than rewritten: moto's PutFunctionEventInvokeConfig appends where AWS
    // replaces, and its Get answers the first.)
    lambda
        .delete_function_event_invoke_config()
        .function_name("compliance-reporter-e2e")
        .send()
        .await
        .expect("Lambda's default retries back");
    cw.delete_alarms()
        .alarm_names("reporter-failure-alarm-e2e")
        .send()
        .await
        .expect("delete alarm");
    logs.put_retention_policy()
        .log_group_name("/aws/lambda/compliance-scanner-e2e")
        .retention_in_days(1)
        .send()
        .await
        .expect("retention");
    events
        .disable_rule()
        .name("compliance-reporter-e2e")
        .send()
        .await
        .expect("disable rule");
    let iam = aws_sdk_iam::Client::new(&cfg);
    iam.put_role_policy()
        .role_name("compliance-scanner-e2e")
        .policy_name("compliance-monitor")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#)
        .send()
        .await
        .expect("widen policy");
    cw.delete_dashboards()
        .dashboard_names("compliance-dashboard-e2e")
        .send()
        .await
        .expect("delete dashboard");
    let (code, out) = plan_code(&w);
    assert_eq!(code, 2, "drift must plan a change:\n{out}");
    for piece in [
        "alarm reporter-failure-alarm-e2e: missing",
        "log group /aws/lambda/compliance-scanner-e2e: retention days",
        "schedule compliance-reporter-e2e: enabled",
        "IAM role compliance-scanner-e2e: inline policies differ",
        "dashboard compliance-dashboard-e2e: missing",
        "Lambda function compliance-reporter-e2e: asynchronous invoke",
    ] {
        assert!(out.contains(piece), "plan does not name {piece:?}:\n{out}");
    }
    apply(&w);
    assert_no_changes(&w, "after repairing drift");
    let rule = events
        .describe_rule()
        .name("compliance-reporter-e2e")
        .send()
        .await
        .expect("rule");
    assert_eq!(rule.state().map(|s| s.as_str()), Some("ENABLED"));
    let invoke = lambda
        .get_function_event_invoke_config()
        .function_name("compliance-reporter-e2e")
        .send()
        .await
        .expect("asynchronous invoke configuration");
    assert_eq!(invoke.maximum_retry_attempts(), Some(0), "repaired");

    let out = w.ok(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
    assert!(
        out.contains("Destroy complete! Resources: 1 destroyed"),
        "{out}"
    );
    assert_swept(moto, s).await;
}

both_ways!(
    suffix_change_replaces_and_import_adopts,
    suffix_change_replaces_and_import_adopts_like_aws,
    suffix_change_replaces_and_import_adopts_on
);

async fn suffix_change_replaces_and_import_adopts_on(aws: &Aws) {
    let moto = &aws.moto;
    let w = workdir(
        aws,
        "replace",
        &config(
            aws,
            "one",
            "  log_retention_days = 14\n  tags = { Team = \"platform\" }",
        ),
    );
    apply(&w);
    w.write(&config(
        aws,
        "two",
        "  log_retention_days = 14\n  tags = { Team = \"platform\" }",
    ));
    let plan = w.ok(&["plan", "-no-color", "-input=false"]);
    assert!(
        plan.contains("forces replacement") && plan.contains("1 to add, 0 to change, 1 to destroy"),
        "{plan}"
    );
    assert!(
        plan.contains("Replacing the stack would delete its compliance history")
            && plan.contains("compliance-results-one")
            && plan.contains("force_destroy"),
        "a replacement says what happens to the history:\n{plan}"
    );
    apply(&w);
    assert_swept(moto, "one").await;
    assert_present(moto, "two").await;

    // Import: forget the stack, adopt it by its suffix, and plan nothing.
    w.ok(&["state", "rm", "compliance_monitor.this"]);
    let out = w.ok(&[
        "import",
        "-no-color",
        "-input=false",
        "compliance_monitor.this",
        "two",
    ]);
    assert!(out.contains("Import successful"), "{out}");
    // `state rm` also dropped the root output from the state; Terraform 1.0 plans re-adding that
    // output as a change, so look at the resource: the plan must not touch it.
    let plan = w.ok(&["plan", "-no-color", "-input=false"]);
    assert!(
        !plan.contains("# compliance_monitor.this"),
        "after import the stack must plan no change:\n{plan}"
    );

    w.ok(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
    assert_swept(moto, "two").await;
}

both_ways!(
    a_failed_apply_keeps_what_it_made_and_destroy_removes_it,
    a_failed_apply_keeps_what_it_made_and_destroy_removes_it_like_aws,
    a_failed_apply_keeps_what_it_made_and_destroy_removes_it_on
);

async fn a_failed_apply_keeps_what_it_made_and_destroy_removes_it_on(aws: &Aws) {
    let moto = &aws.moto;
    let cfg = sdk(moto).await;
    let s3 = s3(&cfg);
    // Someone else's bucket holds the name the stack needs.
    s3.create_bucket()
        .bucket("compliance-results-taken")
        .send()
        .await
        .expect("foreign bucket");
    let w = workdir(aws, "taken", &config(aws, "taken", ""));
    let out = w.run(&["apply", "-auto-approve", "-no-color", "-input=false"]);
    let out_text = text(&out);
    assert!(!out.status.success(), "apply must fail:\n{out_text}");
    assert!(
        out_text.contains("bucket compliance-results-taken") && out_text.contains("name is taken"),
        "the error names the piece and the cause:\n{out_text}"
    );
    // What was made is in the state, so Terraform knows about it.
    let list = w.ok(&["state", "list"]);
    assert!(list.contains("compliance_monitor.this"), "{list}");
    let made = pieces(moto, "taken").await;
    assert!(
        made.iter().any(|p| p.starts_with("topic ")),
        "the topic was created concurrently: {made:?}"
    );

    // Destroy removes every piece the stack made and leaves the foreign bucket alone.
    let out = w.ok(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
    assert!(
        out.contains("Left bucket compliance-results-taken in place"),
        "{out}"
    );
    assert_swept_except(moto, "taken", &["bucket compliance-results-taken"]).await;
    s3.head_bucket()
        .bucket("compliance-results-taken")
        .send()
        .await
        .expect("foreign bucket kept");

    // Fail again, then remove the conflict: a later apply finishes the job (the tainted partial
    // stack is replaced), and destroy then leaves nothing.
    let again = w.run(&["apply", "-auto-approve", "-no-color", "-input=false"]);
    assert!(!again.status.success(), "{}", text(&again));
    s3.delete_bucket()
        .bucket("compliance-results-taken")
        .send()
        .await
        .expect("remove foreign bucket");
    let out = apply(&w);
    assert!(
        out.contains("1 added") && out.contains("1 destroyed"),
        "the tainted stack is replaced:\n{out}"
    );
    assert_no_changes(&w, "after the second apply");
    w.ok(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
    assert_swept(moto, "taken").await;
}

/// Tags of every tagged kind of piece, keyed by piece, as the services report them.
async fn tags_by_piece(cfg: &aws_config::SdkConfig, suffix: &str) -> Vec<(String, Vec<String>)> {
    let keys = |pairs: Vec<(String, String)>| {
        let mut v: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        v.sort();
        v
    };
    let s3 = s3(cfg);
    let bucket = s3
        .get_bucket_tagging()
        .bucket(format!("compliance-results-{suffix}"))
        .send()
        .await
        .expect("bucket tags");
    let lambda = aws_sdk_lambda::Client::new(cfg);
    let function = lambda
        .get_function()
        .function_name(format!("compliance-scanner-{suffix}"))
        .send()
        .await
        .expect("scanner");
    let sns = aws_sdk_sns::Client::new(cfg);
    let topic = sns
        .list_tags_for_resource()
        .resource_arn(format!(
            "arn:aws:sns:us-east-1:123456789012:compliance-alerts-{suffix}"
        ))
        .send()
        .await
        .expect("topic tags");
    let iam = aws_sdk_iam::Client::new(cfg);
    let role = iam
        .list_role_tags()
        .role_name(format!("compliance-reporter-{suffix}"))
        .send()
        .await
        .expect("role tags");
    let cw = aws_sdk_cloudwatch::Client::new(cfg);
    let alarm = cw
        .list_tags_for_resource()
        .resource_arn(format!(
            "arn:aws:cloudwatch:us-east-1:123456789012:alarm:scanner-failure-alarm-{suffix}"
        ))
        .send()
        .await
        .expect("alarm tags");
    vec![
        (
            "alarm".into(),
            keys(
                alarm
                    .tags()
                    .iter()
                    .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
                    .collect(),
            ),
        ),
        (
            "bucket".into(),
            keys(
                bucket
                    .tag_set()
                    .iter()
                    .map(|t| (t.key().to_string(), t.value().to_string()))
                    .collect(),
            ),
        ),
        (
            "function".into(),
            keys(
                function
                    .tags()
                    .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default(),
            ),
        ),
        (
            "topic".into(),
            keys(
                topic
                    .tags()
                    .iter()
                    .map(|t| (t.key().to_string(), t.value().to_string()))
                    .collect(),
            ),
        ),
        (
            "role".into(),
            keys(
                role.tags()
                    .iter()
                    .map(|t| (t.key().to_string(), t.value().to_string()))
                    .collect(),
            ),
        ),
    ]
}

both_ways!(
    updates_of_tags_lifecycle_exemption_ports_and_report_schedule_apply_in_place,
    updates_of_tags_lifecycle_exemption_ports_and_report_schedule_apply_in_place_like_aws,
    updates_of_tags_lifecycle_exemption_ports_and_report_schedule_apply_in_place_on
);

async fn updates_of_tags_lifecycle_exemption_ports_and_report_schedule_apply_in_place_on(
    aws: &Aws,
) {
    let moto = &aws.moto;
    let s = "upd";
    let w = workdir(aws, "update", &config(aws, s, ""));
    apply(&w);
    let cfg = sdk(moto).await;
    for (piece, tags) in tags_by_piece(&cfg, s).await {
        assert!(
            tags.contains(&"Project=e2e".to_string())
                && tags.contains(&format!("ComplianceStack={s}"))
                && !tags.iter().any(|t| t.starts_with("Team=")),
            "{piece} tags after create: {tags:?}"
        );
    }

    w.write(&config(
        aws,
        s,
        "  tags = { Team = \"secops\" }\n  glacier_transition_days = 30\n  \
         exempt_tag_key = \"SkipCompliance\"\n  restricted_ports = [22, 3389]\n  \
         report_schedule = \"cron(0 6 * * ? *)\"",
    ));
    let (code, out) = plan_code(&w);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("update in-place") && out.contains("0 to destroy"),
        "{out}"
    );
    apply(&w);
    assert_no_changes(&w, "after the update");

    for (piece, tags) in tags_by_piece(&cfg, s).await {
        assert!(
            tags.contains(&"Team=secops".to_string())
                && tags.contains(&"Project=e2e".to_string())
                && tags.contains(&format!("ComplianceStack={s}")),
            "{piece} tags after the update: {tags:?}"
        );
    }
    let s3 = s3(&cfg);
    let lifecycle = s3
        .get_bucket_lifecycle_configuration()
        .bucket(format!("compliance-results-{s}"))
        .send()
        .await
        .expect("lifecycle");
    let days: Vec<Option<i32>> = lifecycle
        .rules()
        .iter()
        .flat_map(|r| r.transitions())
        .map(|t| t.days())
        .collect();
    assert_eq!(days, vec![Some(30)], "{lifecycle:?}");
    let lambda = aws_sdk_lambda::Client::new(&cfg);
    let conf = lambda
        .get_function_configuration()
        .function_name(format!("compliance-scanner-{s}"))
        .send()
        .await
        .expect("scanner");
    let env = conf
        .environment()
        .and_then(|e| e.variables())
        .expect("environment");
    assert_eq!(
        env.get("EXEMPT_TAG_KEY").map(String::as_str),
        Some("SkipCompliance")
    );
    assert_eq!(
        env.get("RESTRICTED_PORTS").map(String::as_str),
        Some("22,3389")
    );
    let rule = aws_sdk_eventbridge::Client::new(&cfg)
        .describe_rule()
        .name(format!("compliance-reporter-{s}"))
        .send()
        .await
        .expect("reporter rule");
    assert_eq!(rule.schedule_expression(), Some("cron(0 6 * * ? *)"));

    // Removing the user's tag removes it from every piece; the stack's own tags stay.
    w.write(&config(aws, s, "  tags = {}"));
    apply(&w);
    assert_no_changes(&w, "after dropping the tag");
    for (piece, tags) in tags_by_piece(&cfg, s).await {
        assert!(
            !tags.iter().any(|t| t.starts_with("Team="))
                && tags.contains(&format!("ComplianceStack={s}")),
            "{piece} tags after dropping Team: {tags:?}"
        );
    }

    // Destroy empties the versioned bucket: several versions of a result and a delete marker.
    // (moto evaluates the TLS-only Deny policy wrongly and refuses the writes, so the test
    // lifts it first; destroy does not depend on it.)
    let bucket = format!("compliance-results-{s}");
    s3.delete_bucket_policy()
        .bucket(&bucket)
        .send()
        .await
        .expect("lift policy");
    for body in ["first", "second"] {
        s3.put_object()
            .bucket(&bucket)
            .key("scans/2026/11/27/result.json")
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .expect("put result");
    }
    s3.delete_object()
        .bucket(&bucket)
        .key("scans/2026/11/27/result.json")
        .send()
        .await
        .expect("delete marker");
    let versions = s3
        .list_object_versions()
        .bucket(&bucket)
        .send()
        .await
        .expect("versions");
    assert_eq!(
        versions.versions().len() + versions.delete_markers().len(),
        3,
        "{versions:?}"
    );
    // force_destroy is false by default: the destroy refuses before deleting anything, naming
    // the bucket, what it holds and the attribute.
    let out = w.run(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
    let out_text = text(&out);
    assert!(!out.status.success(), "destroy must refuse:\n{out_text}");
    assert!(
        out_text.contains(&format!("bucket {bucket}"))
            && out_text.contains("holds 3 object versions")
            && out_text.contains("force_destroy = true"),
        "{out_text}"
    );
    assert_present(moto, s).await;
    let kept = s3
        .list_object_versions()
        .bucket(&bucket)
        .send()
        .await
        .expect("versions");
    assert_eq!(kept.versions().len() + kept.delete_markers().len(), 3);
    // Setting it is an in-place change of the state only; then the destroy empties the bucket.
    w.write(&config(aws, s, "  tags = {}\n  force_destroy = true"));
    let (code, out) = plan_code(&w);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("~ force_destroy") && out.contains("0 to destroy"),
        "{out}"
    );
    apply(&w);
    // The apply put the TLS-only policy back (it was drift), and moto mis-evaluates it for
    // DeleteObjects too: lift it again.
    s3.delete_bucket_policy()
        .bucket(&bucket)
        .send()
        .await
        .expect("lift policy");
    w.ok(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
    assert_swept(moto, s).await;
}

/// A destroy whose bucket holds a version S3 will not delete (Object Lock, a denying policy):
/// DeleteObjects answers 200 with a per-key error. The destroy fails in bounded time naming the
/// key and the code, before anything else is deleted, and the resource stays in the state; once
/// the version can go, destroy finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destroy_that_cannot_empty_the_bucket_fails_naming_the_key_and_keeps_the_stack() {
    let aws = Aws::behind(Fidelity {
        undeletable_prefixes: vec!["scans/2026/11/27/locked".into()],
        ..Fidelity::default()
    });
    let moto = &aws.moto;
    let s = "locked";
    let w = workdir(&aws, "locked", &config(&aws, s, "  force_destroy = true"));
    apply(&w);
    let cfg = sdk(moto).await;
    let s3 = s3(&cfg);
    let bucket = format!("compliance-results-{s}");
    // moto mis-evaluates the TLS-only Deny policy and refuses the writes: lift it for them.
    s3.delete_bucket_policy()
        .bucket(&bucket)
        .send()
        .await
        .expect("lift policy");
    for key in [
        "scans/2026/11/27/a.json",
        "scans/2026/11/27/locked.json",
        "scans/2026/11/27/b.json",
    ] {
        s3.put_object()
            .bucket(&bucket)
            .key(key)
            .body(b"{}".to_vec().into())
            .send()
            .await
            .expect("put result");
    }
    let start = std::time::Instant::now();
    let out = w.run(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
    let out_text = text(&out);
    assert!(!out.status.success(), "destroy must fail:\n{out_text}");
    assert!(
        start.elapsed() < std::time::Duration::from_secs(120),
        "destroy gave up in {:?}",
        start.elapsed()
    );
    assert!(
        out_text.contains(&format!("bucket {bucket}"))
            && out_text.contains("scans/2026/11/27/locked.json")
            && out_text.contains("AccessDenied"),
        "the error names the bucket, the key and the code:\n{out_text}"
    );
    assert!(aws.counters().undeletable > 0, "{:?}", aws.counters());
    let list = w.ok(&["state", "list"]);
    assert!(list.contains("compliance_monitor.this"), "{list}");
    // Emptying comes first: the stack is whole, not half destroyed.
    assert_present(moto, s).await;

    // Once the version can be deleted, destroy finishes.
    aws.proxy.as_ref().expect("proxy").set(Fidelity::default());
    w.ok(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
    assert_swept(moto, s).await;
}

/// Answers lost on the way back after AWS served the request (a timeout, a dropped connection):
/// the SDK retries and meets "already exists" on a create or "not found" on a delete. Creates
/// and deletes are idempotent, so applies and destroys succeed without a second run by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_answers_are_retried_and_every_step_is_idempotent() {
    let aws = Aws::behind(Fidelity {
        seed: SEED,
        drop_answers: 0.06,
        ..Fidelity::default()
    });
    let moto = &aws.moto;
    let s = "lost";
    let w = workdir(&aws, "lost", &config(&aws, s, ""));
    for round in 0..2 {
        apply(&w);
        assert_present(moto, s).await;
        assert_no_changes(&w, &format!("round {round}, after apply"));
        w.ok(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
        assert_swept(moto, s).await;
    }
    let c = aws.counters();
    assert!(c.dropped > 0, "no answer was dropped: {c:?}");
}

/// Bucket names are global: a name another account holds fails the apply, saying so and naming
/// `bucket_name`; with `bucket_name` set the stack uses that name everywhere (the functions'
/// settings included) and every S3 call names the stack's account as the expected owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_name_held_elsewhere_is_refused_and_bucket_name_overrides_it() {
    let aws = Aws::behind(Fidelity {
        foreign_buckets: ["compliance-results-taken".to_string()].into(),
        ..Fidelity::default()
    });
    let moto = &aws.moto;
    let s = "taken";
    let w = workdir(&aws, "taken", &config(&aws, s, ""));
    let out = w.run(&["apply", "-auto-approve", "-no-color", "-input=false"]);
    let out_text = text(&out);
    assert!(!out.status.success(), "{out_text}");
    assert!(
        out_text.contains("bucket compliance-results-taken")
            && out_text.contains("belongs to another AWS account")
            && out_text.contains("Set bucket_name"),
        "{out_text}"
    );
    assert!(aws.counters().bucket_taken > 0, "{:?}", aws.counters());

    let own = "acme-compliance-taken";
    w.write(&config(&aws, s, &format!("  bucket_name = \"{own}\"")));
    apply(&w);
    assert_no_changes(&w, "after the apply with bucket_name");
    assert_eq!(state_attrs(&w)["bucket_name"], own);
    let cfg = sdk(moto).await;
    let conf = aws_sdk_lambda::Client::new(&cfg)
        .get_function_configuration()
        .function_name(format!("compliance-reporter-{s}"))
        .send()
        .await
        .expect("reporter");
    let env = conf
        .environment()
        .and_then(|e| e.variables())
        .expect("environment");
    assert_eq!(env.get("BUCKET_NAME").map(String::as_str), Some(own));
    let exists = |name: &'static str| {
        let s3 = s3(&cfg);
        async move { s3.head_bucket().bucket(name).send().await.is_ok() }
    };
    assert!(exists(own).await);
    w.ok(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
    assert!(
        !exists(own).await,
        "the stack's bucket is gone after destroy"
    );
    assert_swept(moto, s).await;
    // Every call on the bucket but CreateBucket (which has no such parameter) named the owner.
    let c = aws.counters();
    let with = c.owner_expected.get(own).copied().unwrap_or(0);
    let without = c.owner_not_expected.get(own).copied().unwrap_or(0);
    assert!(
        with >= 10 && without == 1,
        "{with} with, {without} without: {c:?}"
    );
}
