//! A stack as `Desired` wants it (for tests here and in `analyse`), the table, and what drift
//! says of every setting.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::aws::{Hcl, EXTRA_TAGS, MISSING, TAGS};
use crate::desired::names::StackNames;

impl Observed {
    /// A stack exactly as `d` wants it, as a read would find it.
    pub(crate) fn wanted(d: &Desired) -> Observed {
        Observed {
            bucket: Found::Present(bucket::Observed {
                versioning: true,
                glacier_days: Some(d.glacier_transition_days),
                abort_incomplete_days: Some(bucket::ABORT_INCOMPLETE_DAYS),
                public_access_blocked: true,
                encrypted: true,
                tls_only: true,
                tags: d.tags.clone(),
            }),
            topic: Found::Present(topic::Observed {
                emails: vec![(d.alert_email.clone(), format!("{}:abc", d.topic_arn()))],
                tags: d.tags.clone(),
            }),
            roles: ScannerReporter::new(|f| {
                Found::Present(roles::Observed {
                    trust: roles::trust_policy(),
                    policies: BTreeMap::from([(
                        roles::POLICY_NAME.to_string(),
                        Role::of(f).policy(d),
                    )]),
                    attached: Vec::new(),
                    created: Some(0),
                    tags: d.tags.clone(),
                })
            }),
            log_groups: ScannerReporter::new(|_| {
                Found::Present(log_groups::Observed {
                    retention_days: Some(d.log_retention_days),
                    tags: d.tags.clone(),
                })
            }),
            functions: ScannerReporter::new(|f| {
                Found::Present(functions::Observed {
                    arn: d.function_arn(f.name(d)),
                    runtime: "provided.al2023".into(),
                    handler: "bootstrap".into(),
                    role: d.role_arn(f.name(d)),
                    timeout: d.timeout_seconds,
                    memory: d.memory_mb,
                    environment: f.environment(d),
                    code_sha256: String::new(),
                    architectures: vec!["x86_64".into()],
                    tags: d.tags.clone(),
                    state: "Active".into(),
                    last_update: "Successful".into(),
                    async_invoke: Some(functions::ASYNC_INVOKE),
                })
            }),
            schedules: ScannerReporter::new(|f| {
                Found::Present(schedules::Observed {
                    expression: match f {
                        Scanner => d.scan_schedule.clone(),
                        Reporter => d.report_schedule.clone(),
                    },
                    enabled: true,
                    targets: vec![d.function_arn(f.name(d))],
                    permitted: true,
                    tags: d.tags.clone(),
                })
            }),
            alarms: ScannerReporter::new(|f| {
                FailureDuration::new(|k| Found::Present(Alarm::new(f, k).wanted(d)))
            }),
            dashboard: Found::Present(dashboard::Observed::new(dashboard::body(d))),
            events_queue: Found::Present(queues::Observed {
                url: format!("https://sqs/{}", d.names.events_queue),
                attributes: Queue::Events.attributes(d),
                messages: 0,
                tags: d.tags.clone(),
            }),
            dead_letter_queue: Found::Present(queues::Observed {
                url: format!("https://sqs/{}", d.names.dead_letter_queue),
                attributes: Queue::DeadLetter.attributes(d),
                messages: 0,
                tags: d.tags.clone(),
            }),
            change_rule: Found::Present(changes::Observed {
                pattern: changes::pattern(),
                enabled: true,
                targets: vec![d.queue_arn(&d.names.events_queue)],
                tags: d.tags.clone(),
            }),
            event_source: Found::Present(event_source::Observed {
                uuid: "esm-1".into(),
                batch_size: Some(event_source::BATCH_SIZE),
                batching_window: Some(event_source::BATCHING_WINDOW_SECONDS),
                state: "Enabled".into(),
                reports_failures: true,
                stack: d.names.suffix.clone(),
            }),
        }
    }
}

/// The resource's defaults for the suffix `dev`, written out so the test reads alone.
fn desired() -> Desired {
    Desired {
        names: StackNames::new("dev"),
        account_id: "123456789012".into(),
        partition: "aws".into(),
        region: "us-east-1".into(),
        alert_email: "secops@example.com".into(),
        required_tags: vec!["Environment".into(), "Owner".into()],
        restricted_ports: vec![22, 3389],
        exempt_tag_key: "SkipCompliance".into(),
        scan_schedule: "rate(6 hours)".into(),
        report_schedule: "cron(0 0 * * ? *)".into(),
        log_retention_days: 30,
        glacier_transition_days: 90,
        memory_mb: 256,
        timeout_seconds: 300,
        tags: BTreeMap::from([
            ("ComplianceStack".into(), "dev".into()),
            ("ManagedBy".into(), "terraform-provider-compliance".into()),
        ]),
        force_destroy: false,
        exemptions: Vec::new(),
        scope: crate::desired::Scope::here("us-east-1"),
        event_driven: true,
    }
}

fn present<T>(found: &mut Found<T>) -> &mut T {
    match found {
        Found::Present(o) => o,
        Found::Missing => panic!("the wanted stack has every piece"),
    }
}

#[test]
fn a_stack_as_wanted_has_no_drift_and_every_piece_is_in_the_table() {
    let d = desired();
    let o = Observed::wanted(&d);
    assert_eq!(o.drift(&d), Vec::<String>::new());
    let labels: BTreeSet<String> = parts().map(|p| p.label(&d)).collect();
    assert_eq!(labels.len(), 19, "{labels:?}");
    assert!(parts().all(|p| p.exists(&o) && !p.foreign(&d, &o)));
    assert!(!o.nothing_exists());
}

#[test]
fn the_dashboard_marker_names_the_stack_and_nothing_else_does() {
    let d = desired();
    let owner = |body| dashboard::Observed::new(body).owner;
    assert_eq!(owner(dashboard::body(&d)).as_deref(), Some("dev"));
    let mut unmarked = dashboard::body(&d);
    unmarked["widgets"]
        .as_array_mut()
        .expect("widgets")
        .retain(|w| w["type"] != "text");
    assert_eq!(owner(unmarked), None);
    let loose =
        serde_json::json!({"widgets": [{"type": "text", "properties": {"markdown": "dev"}}]});
    assert_eq!(owner(loose), None);
    assert_eq!(owner(serde_json::Value::Null), None);
}

#[test]
fn a_piece_is_foreign_only_when_its_tags_name_another_stack() {
    let d = desired();
    let mut o = Observed::wanted(&d);
    present(&mut o.bucket).tags.clear();
    present(&mut o.roles.reporter)
        .tags
        .insert("ComplianceStack".into(), "prod".into());
    let foreign: Vec<String> = parts()
        .filter(|p| p.foreign(&d, &o))
        .map(|p| p.label(&d))
        .collect();
    assert_eq!(
        foreign,
        [
            "bucket compliance-results-dev",
            "IAM role compliance-reporter-dev"
        ]
    );
    // Alarms are claimed by their tags too, the dashboard by the marker in its body.
    o.alarms.scanner.failure = Found::Present(alarms::Observed::default());
    assert!(Part::foreign(&Alarm::new(Scanner, Kind::Failure), &d, &o));
    o.dashboard = Found::Present(dashboard::Observed::new(serde_json::json!({"widgets": []})));
    assert!(Part::foreign(&Dashboard, &d, &o));
    let taken = name_taken(
        &Part::label(&Dashboard, &d),
        &<Dashboard as Piece>::unmarked("dev"),
    );
    assert!(
        taken.to_string().contains("the name is taken") && taken.to_string().contains("delete it"),
        "{taken}"
    );
}

/// Every kind of drift message, its values written as a user writes them in HCL (`1`,
/// `"rate(6 hours)"`, `(none)`), never as Rust's debug output (`Some(1)`, `300.0`).
#[test]
fn every_drift_message_writes_values_as_hcl() {
    let d = desired();
    let mut o = Observed::wanted(&d);
    let b = present(&mut o.bucket);
    b.versioning = false;
    b.glacier_days = None;
    b.public_access_blocked = false;
    b.encrypted = false;
    b.tls_only = false;
    b.tags.insert("Team".into(), "sec".into());
    let t = present(&mut o.topic);
    t.emails.clear();
    t.tags.remove("ComplianceStack");
    let r = present(&mut o.roles.scanner);
    r.trust = serde_json::json!({});
    r.policies.insert("extra".into(), serde_json::json!({}));
    r.attached = vec!["arn:aws:iam::aws:policy/ReadOnlyAccess".into()];
    o.roles.reporter = Found::Missing;
    present(&mut o.log_groups.scanner).retention_days = None;
    present(&mut o.log_groups.reporter).retention_days = Some(1);
    let f = present(&mut o.functions.scanner);
    f.runtime = "python3.12".into();
    f.handler = "main".into();
    f.role = d.role_arn("other");
    f.timeout = 60;
    f.memory = 128;
    f.environment = BTreeMap::from([("BUCKET_NAME".into(), "other".into())]);
    f.async_invoke = None;
    o.functions.reporter = Found::Missing;
    let s = present(&mut o.schedules.scanner);
    s.expression = "rate(1 day)".into();
    s.enabled = false;
    s.targets.clear();
    s.permitted = false;
    let a = present(&mut o.alarms.scanner.failure);
    a.metric = Some("Invocations".into());
    a.namespace = None;
    a.threshold = Some(1.0);
    a.queries.clear();
    let a = present(&mut o.alarms.scanner.duration);
    a.threshold = Some(120_000.0);
    a.comparison = Some("GreaterThanThreshold".into());
    a.dimensions = vec![("FunctionName".into(), "x".into())];
    a.actions.clear();
    a.actions_enabled = false;
    o.alarms.reporter.failure = Found::Missing;
    present(&mut o.dashboard).body = serde_json::json!({});

    let tags = r#"{ ComplianceStack = "dev", ManagedBy = "terraform-provider-compliance" }"#;
    let want = [
        "bucket compliance-results-dev: versioning enabled is false, want true".to_string(),
        "bucket compliance-results-dev: Glacier transition days is (none), want 90".into(),
        "bucket compliance-results-dev: public access blocked is false, want true".into(),
        "bucket compliance-results-dev: default encryption is false, want true".into(),
        "bucket compliance-results-dev: TLS-only policy is false, want true".into(),
        format!("bucket compliance-results-dev: tags {{ Team = \"sec\" }} are there beyond the wanted {tags}"),
        "topic compliance-alerts-dev: secops@example.com is not subscribed".into(),
        format!("topic compliance-alerts-dev: tags is {{ ManagedBy = \"terraform-provider-compliance\" }}, want {tags}"),
        "IAM role compliance-scanner-dev: trust policy differs (want Lambda only)".into(),
        "IAM role compliance-scanner-dev: inline policies differ (have [\"compliance-monitor\", \"extra\"], want only \"compliance-monitor\" with the stack's permissions)".into(),
        "IAM role compliance-scanner-dev: managed policies attached: [\"arn:aws:iam::aws:policy/ReadOnlyAccess\"], want none".into(),
        "IAM role compliance-reporter-dev: missing".into(),
        "log group /aws/lambda/compliance-scanner-dev: retention days is (none), want 30".into(),
        "log group /aws/lambda/compliance-reporter-dev: retention days is 1, want 30".into(),
        "Lambda function compliance-scanner-dev: runtime is \"python3.12\", want \"provided.al2023\"".into(),
        "Lambda function compliance-scanner-dev: handler is \"main\", want \"bootstrap\"".into(),
        "Lambda function compliance-scanner-dev: role is \"arn:aws:iam::123456789012:role/other\", want \"arn:aws:iam::123456789012:role/compliance-scanner-dev\"".into(),
        "Lambda function compliance-scanner-dev: timeout is 60, want 300".into(),
        "Lambda function compliance-scanner-dev: memory is 128, want 256".into(),
        format!(
            "Lambda function compliance-scanner-dev: environment is {{ BUCKET_NAME = \"other\" }}, want {}",
            Scanner.environment(&d).hcl()
        ),
        "Lambda function compliance-scanner-dev: asynchronous invoke is (none), want { retries = 0, max_event_age = 3600 }".into(),
        "Lambda function compliance-reporter-dev: missing".into(),
        "schedule compliance-scanner-dev: expression is \"rate(1 day)\", want \"rate(6 hours)\"".into(),
        "schedule compliance-scanner-dev: enabled is false, want true".into(),
        "schedule compliance-scanner-dev: targets is [], want [\"arn:aws:lambda:us-east-1:123456789012:function:compliance-scanner-dev\"]".into(),
        "schedule compliance-scanner-dev: invoke permission is false, want true".into(),
        "alarm scanner-failure-alarm-dev: metric is \"Invocations\" in (none), want (none) in (none)".into(),
        "alarm scanner-failure-alarm-dev: threshold is 1, want 0".into(),
        "alarm scanner-failure-alarm-dev: metrics are [], want [errors = Sum of AWS/Lambda Errors FunctionName=compliance-scanner-dev; unscanned = Sum of ComplianceMonitoring ScanErrors Stack=dev; failures = FILL(errors, 0) + FILL(unscanned, 0)]".into(),
        "alarm scanner-duration-alarm-dev: threshold is 120000, want 300000; comparison is \"GreaterThanThreshold\", want \"GreaterThanOrEqualToThreshold\"".into(),
        "alarm scanner-duration-alarm-dev: dimensions is { FunctionName = \"x\" }, want { FunctionName = \"compliance-scanner-dev\" }".into(),
        "alarm scanner-duration-alarm-dev: actions is [], want [\"arn:aws:sns:us-east-1:123456789012:compliance-alerts-dev\"]".into(),
        "alarm scanner-duration-alarm-dev: actions disabled".into(),
        "alarm reporter-failure-alarm-dev: missing".into(),
        "dashboard compliance-dashboard-dev: widgets differ".into(),
    ];
    let drift = o.drift(&d);
    for (have, want) in drift.iter().zip(&want) {
        assert_eq!(have, want);
    }
    assert_eq!(drift.len(), want.len(), "{drift:#?}");
    for line in &drift {
        for debug in ["Some(", "None", ".0,", ".0 ", "\\\""] {
            assert!(!line.contains(debug), "{line}");
        }
    }
    // Every kind of setting the drift knows is among the messages above.
    let kinds: BTreeSet<&str> = o.differences(&d).iter().map(|x| x.setting).collect();
    let every: BTreeSet<&str> = [
        MISSING,
        TAGS,
        EXTRA_TAGS,
        "versioning enabled",
        "Glacier transition days",
        "public access blocked",
        "default encryption",
        "TLS-only policy",
        "subscription",
        "trust policy",
        "inline policies",
        "attached policies",
        "retention days",
        "runtime",
        "handler",
        "role",
        "timeout",
        "memory",
        "environment",
        "asynchronous invoke",
        "expression",
        "enabled",
        "targets",
        "invoke permission",
        "metric",
        "metrics",
        "threshold",
        "dimensions",
        "actions",
        "actions enabled",
        "widgets",
    ]
    .into();
    assert_eq!(kinds, every);
}

#[test]
fn every_s3_grant_of_the_roles_is_limited_to_the_stacks_account() {
    let d = desired();
    for role in [Role::Scanner, Role::Reporter] {
        let policy = role.policy(&d);
        let s3: Vec<&serde_json::Value> = policy["Statement"]
            .as_array()
            .expect("statements")
            .iter()
            .filter(|s| {
                let action = s["Action"].to_string();
                action.contains("\"s3:")
            })
            .collect();
        assert!(!s3.is_empty(), "{policy}");
        for statement in s3 {
            assert_eq!(
                statement["Condition"]["StringEquals"]["s3:ResourceAccount"], "123456789012",
                "{statement}"
            );
        }
    }
}

#[test]
fn the_scanner_may_assume_exactly_the_member_roles_it_scans() {
    let mut d = desired();
    let statements = |d: &Desired| Role::Scanner.policy(d)["Statement"].clone();
    let assume = |d: &Desired| {
        statements(d)
            .as_array()
            .expect("statements")
            .iter()
            .filter(|s| {
                s["Action"] == "sts:AssumeRole" || s["Action"] == "organizations:ListAccounts"
            })
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        assume(&d),
        Vec::<serde_json::Value>::new(),
        "one account: no AssumeRole"
    );

    d.scope.member_accounts = vec!["111111111111".into(), "222222222222".into()];
    d.scope.member_role_name = "Scan".into();
    assert_eq!(
        assume(&d),
        [serde_json::json!({
            "Sid": "AssumeMemberRoles", "Effect": "Allow", "Action": "sts:AssumeRole",
            "Resource": ["arn:aws:iam::111111111111:role/Scan", "arn:aws:iam::222222222222:role/Scan"]
        })]
    );

    d.scope.member_accounts.clear();
    d.scope.organization_accounts = true;
    let org = assume(&d);
    assert_eq!(org.len(), 2, "{org:?}");
    assert_eq!(org[0]["Resource"], "arn:aws:iam::*:role/Scan");
    assert_eq!(
        org[0]["Condition"]["StringEquals"]["aws:ResourceOrgID"], "${aws:PrincipalOrgID}",
        "only roles of the scanner's own organization"
    );
    assert_eq!(org[1]["Action"], "organizations:ListAccounts");
}
