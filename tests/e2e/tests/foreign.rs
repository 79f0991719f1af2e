//! Never touch what is not ours. A piece that has one of the stack's names but is not the stack's
//! (not tagged `ComplianceStack = <suffix>`; for the dashboard, no marker in its body) is foreign:
//! a create or an update that meets one fails naming it and saying its name is taken, leaves it
//! exactly as it was, and destroy leaves it in place while removing everything the stack made.
//! Likewise the alert topic's subscriptions: a new `alert_email` replaces only the old address.
//!
//! Every check reads what moto holds through the AWS SDK, before and after each Terraform run.

mod common;

use aws_sdk_s3::error::ProvideErrorMetadata;
use common::{flat, pieces, s3, sdk, stack_config, stack_workdir};
use e2e::{text, Aws, Workdir};
use terraform_provider_compliance::code;

/// The account moto answers as.
const ACCOUNT: &str = "123456789012";

/// A kind of piece of the stack, of which the test makes a foreign one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bucket,
    Topic,
    Role,
    LogGroup,
    Function,
    Rule,
    Alarm,
    Dashboard,
}

/// An error's code, for a snapshot line.
fn code_of<E: ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("no code").to_string()
}

/// `k=v` pairs, sorted, on one line.
fn pairs<'a>(items: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut v: Vec<String> = items.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    v.sort();
    v.join(" ")
}

impl Kind {
    /// The stack `s`'s name the foreign piece takes.
    fn name(self, s: &str) -> String {
        match self {
            Kind::Bucket => format!("compliance-results-{s}"),
            Kind::Topic => format!("compliance-alerts-{s}"),
            Kind::Role => format!("compliance-scanner-{s}"),
            Kind::LogGroup => format!("/aws/lambda/compliance-reporter-{s}"),
            Kind::Function => format!("compliance-reporter-{s}"),
            Kind::Rule => format!("compliance-scanner-{s}"),
            Kind::Alarm => format!("scanner-failure-alarm-{s}"),
            Kind::Dashboard => format!("compliance-dashboard-{s}"),
        }
    }

    /// The piece as the provider names it in its errors (each piece's `fn label`).
    fn label(self, s: &str) -> String {
        let n = self.name(s);
        match self {
            Kind::Bucket => format!("bucket {n}"),
            Kind::Topic => format!("topic {n}"),
            Kind::Role => format!("IAM role {n}"),
            Kind::LogGroup => format!("log group {n}"),
            Kind::Function => format!("Lambda function {n}"),
            Kind::Rule => format!("schedule {n}"),
            Kind::Alarm => format!("alarm {n}"),
            Kind::Dashboard => format!("dashboard {n}"),
        }
    }

    /// The piece as [`pieces`] lists it.
    fn listed(self, s: &str) -> String {
        let n = self.name(s);
        match self {
            Kind::Bucket => format!("bucket {n}"),
            Kind::Topic => format!("topic arn:aws:sns:us-east-1:{ACCOUNT}:{n}"),
            Kind::Role => format!("role {n}"),
            Kind::LogGroup => format!("log group {n}"),
            Kind::Function => format!("function {n}"),
            Kind::Rule => format!("rule {n}"),
            Kind::Alarm => format!("alarm {n}"),
            Kind::Dashboard => format!("dashboard {n}"),
        }
    }

    /// Lines a snapshot of the foreign piece holds right after it is made: its own settings,
    /// which the stack's would overwrite.
    fn recognisable(self) -> &'static [&'static str] {
        match self {
            Kind::Bucket => &["object their-data.txt", "versioning never set"],
            Kind::Topic => &[
                "attribute DisplayName=theirs",
                "subscription email owner@example.org",
            ],
            Kind::Role => &["description Some(\"their role\")", "inline theirs"],
            Kind::LogGroup => &["retention Some(3)", "stream theirs"],
            Kind::Function => &["memory Some(128)", "environment OWNER=them"],
            Kind::Rule => &["schedule Some(\"rate(7 days)\")", "target theirs"],
            Kind::Alarm => &["threshold Some(42.0)", "description Some(\"their alarm\")"],
            Kind::Dashboard => &["their dashboard"],
        }
    }

    /// Makes the foreign piece as someone else would: untagged, or tagged
    /// `ComplianceStack = <tag>` (the dashboard cannot carry tags and never carries a marker).
    async fn make(self, cfg: &aws_config::SdkConfig, s: &str, tag: Option<&str>) {
        let n = self.name(s);
        let tags: Vec<(&str, &str)> = tag
            .map(|t| vec![("ComplianceStack", t), ("Owner", "them")])
            .unwrap_or_default();
        match self {
            Kind::Bucket => {
                let s3 = s3(cfg);
                s3.create_bucket()
                    .bucket(&n)
                    .send()
                    .await
                    .expect("their bucket");
                if !tags.is_empty() {
                    let mut set = aws_sdk_s3::types::Tagging::builder();
                    for (k, v) in &tags {
                        set = set.tag_set(
                            aws_sdk_s3::types::Tag::builder()
                                .key(*k)
                                .value(*v)
                                .build()
                                .expect("tag"),
                        );
                    }
                    s3.put_bucket_tagging()
                        .bucket(&n)
                        .tagging(set.build().expect("tagging"))
                        .send()
                        .await
                        .expect("their bucket's tags");
                }
                s3.put_object()
                    .bucket(&n)
                    .key("their-data.txt")
                    .body(b"theirs".to_vec().into())
                    .send()
                    .await
                    .expect("their object");
            }
            Kind::Topic => {
                let sns = aws_sdk_sns::Client::new(cfg);
                let mut create = sns
                    .create_topic()
                    .name(&n)
                    .attributes("DisplayName", "theirs");
                for (k, v) in &tags {
                    create = create.tags(
                        aws_sdk_sns::types::Tag::builder()
                            .key(*k)
                            .value(*v)
                            .build()
                            .expect("tag"),
                    );
                }
                let arn = create
                    .send()
                    .await
                    .expect("their topic")
                    .topic_arn
                    .expect("topic arn");
                sns.subscribe()
                    .topic_arn(arn)
                    .protocol("email")
                    .endpoint("owner@example.org")
                    .send()
                    .await
                    .expect("their subscription");
            }
            Kind::Role => {
                let iam = aws_sdk_iam::Client::new(cfg);
                let mut create = iam
                    .create_role()
                    .role_name(&n)
                    .description("their role")
                    .assume_role_policy_document(trust("ec2.amazonaws.com"));
                for (k, v) in &tags {
                    create = create.tags(
                        aws_sdk_iam::types::Tag::builder()
                            .key(*k)
                            .value(*v)
                            .build()
                            .expect("tag"),
                    );
                }
                create.send().await.expect("their role");
                iam.put_role_policy()
                    .role_name(&n)
                    .policy_name("theirs")
                    .policy_document(
                        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::their-data/*"}]}"#,
                    )
                    .send()
                    .await
                    .expect("their role's policy");
            }
            Kind::LogGroup => {
                let logs = aws_sdk_cloudwatchlogs::Client::new(cfg);
                let mut create = logs.create_log_group().log_group_name(&n);
                for (k, v) in &tags {
                    create = create.tags(*k, *v);
                }
                create.send().await.expect("their log group");
                logs.put_retention_policy()
                    .log_group_name(&n)
                    .retention_in_days(3)
                    .send()
                    .await
                    .expect("their retention");
                logs.create_log_stream()
                    .log_group_name(&n)
                    .log_stream_name("theirs")
                    .send()
                    .await
                    .expect("their stream");
            }
            Kind::Function => {
                // Their function runs as their own role, untagged and of another name.
                let role = aws_sdk_iam::Client::new(cfg)
                    .create_role()
                    .role_name(format!("their-function-role-of-{s}-stack"))
                    .assume_role_policy_document(trust("lambda.amazonaws.com"))
                    .send()
                    .await
                    .expect("their function's role")
                    .role
                    .expect("role")
                    .arn;
                let mut create = aws_sdk_lambda::Client::new(cfg)
                    .create_function()
                    .function_name(&n)
                    .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
                    .handler("bootstrap")
                    .role(role)
                    .description("their function")
                    .memory_size(128)
                    .timeout(3)
                    .environment(
                        aws_sdk_lambda::types::Environment::builder()
                            .variables("OWNER", "them")
                            .build(),
                    )
                    .code(
                        aws_sdk_lambda::types::FunctionCode::builder()
                            .zip_file(aws_sdk_lambda::primitives::Blob::new(code::reporter().zip))
                            .build(),
                    );
                for (k, v) in &tags {
                    create = create.tags(*k, *v);
                }
                create.send().await.expect("their function");
            }
            Kind::Rule => {
                let topic = aws_sdk_sns::Client::new(cfg)
                    .create_topic()
                    .name(format!("their-events-of-{s}-stack"))
                    .send()
                    .await
                    .expect("their rule's topic")
                    .topic_arn
                    .expect("topic arn");
                let events = aws_sdk_eventbridge::Client::new(cfg);
                let mut put = events
                    .put_rule()
                    .name(&n)
                    .schedule_expression("rate(7 days)")
                    .description("their rule");
                for (k, v) in &tags {
                    put = put.tags(
                        aws_sdk_eventbridge::types::Tag::builder()
                            .key(*k)
                            .value(*v)
                            .build()
                            .expect("tag"),
                    );
                }
                put.send().await.expect("their rule");
                events
                    .put_targets()
                    .rule(&n)
                    .targets(
                        aws_sdk_eventbridge::types::Target::builder()
                            .id("theirs")
                            .arn(topic)
                            .build()
                            .expect("target"),
                    )
                    .send()
                    .await
                    .expect("their target");
            }
            Kind::Alarm => {
                let mut put = aws_sdk_cloudwatch::Client::new(cfg)
                    .put_metric_alarm()
                    .alarm_name(&n)
                    .alarm_description("their alarm")
                    .namespace("Theirs")
                    .metric_name("QueueDepth")
                    .statistic(aws_sdk_cloudwatch::types::Statistic::Average)
                    .period(60)
                    .evaluation_periods(2)
                    .threshold(42.0)
                    .comparison_operator(
                        aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold,
                    );
                for (k, v) in &tags {
                    put = put.tags(
                        aws_sdk_cloudwatch::types::Tag::builder()
                            .key(*k)
                            .value(*v)
                            .build(),
                    );
                }
                put.send().await.expect("their alarm");
            }
            Kind::Dashboard => {
                aws_sdk_cloudwatch::Client::new(cfg)
                    .put_dashboard()
                    .dashboard_name(&n)
                    .dashboard_body(
                        r#"{"widgets":[{"type":"text","x":0,"y":0,"width":6,"height":3,"properties":{"markdown":"their dashboard"}}]}"#,
                    )
                    .send()
                    .await
                    .expect("their dashboard");
            }
        }
    }

    /// Deletes the stack's own piece of this kind, as someone working outside Terraform would
    /// (a rule's targets first, as EventBridge requires).
    async fn delete_the_stacks(self, cfg: &aws_config::SdkConfig, s: &str) {
        let n = self.name(s);
        match self {
            Kind::Alarm => {
                let cw = aws_sdk_cloudwatch::Client::new(cfg);
                let arn = format!("arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:{n}");
                let tags = cw
                    .list_tags_for_resource()
                    .resource_arn(&arn)
                    .send()
                    .await
                    .expect("the stack's alarm's tags");
                cw.delete_alarms()
                    .alarm_names(&n)
                    .send()
                    .await
                    .expect("delete the stack's alarm");
                // AWS deletes an alarm's tags with it; moto keeps them by ARN, and an alarm made
                // again under the name would carry the stack's tags. Drop them as AWS does.
                let keys: Vec<String> = tags
                    .tags()
                    .iter()
                    .filter_map(|t| t.key().map(str::to_string))
                    .collect();
                if !keys.is_empty() {
                    cw.untag_resource()
                        .resource_arn(&arn)
                        .set_tag_keys(Some(keys))
                        .send()
                        .await
                        .expect("drop the deleted alarm's tags");
                }
            }
            Kind::Dashboard => {
                aws_sdk_cloudwatch::Client::new(cfg)
                    .delete_dashboards()
                    .dashboard_names(&n)
                    .send()
                    .await
                    .expect("delete the stack's dashboard");
            }
            Kind::Rule => {
                let events = aws_sdk_eventbridge::Client::new(cfg);
                let targets = events
                    .list_targets_by_rule()
                    .rule(&n)
                    .send()
                    .await
                    .expect("the stack's rule's targets");
                let ids: Vec<String> = targets.targets().iter().map(|t| t.id().into()).collect();
                if !ids.is_empty() {
                    events
                        .remove_targets()
                        .rule(&n)
                        .set_ids(Some(ids))
                        .send()
                        .await
                        .expect("remove the stack's targets");
                }
                events
                    .delete_rule()
                    .name(&n)
                    .send()
                    .await
                    .expect("delete the stack's rule");
            }
            other => {
                panic!("the update tests replace alarms, the dashboard and rules, not {other:?}")
            }
        }
    }

    /// Everything moto holds about the piece that the stack would write, one line per setting.
    async fn snapshot(self, cfg: &aws_config::SdkConfig, s: &str) -> Vec<String> {
        let n = self.name(s);
        let mut out = Vec::new();
        match self {
            Kind::Bucket => {
                let s3 = s3(cfg);
                if let Err(e) = s3.head_bucket().bucket(&n).send().await {
                    return vec![format!("gone: {}", code_of(&e))];
                }
                out.push(match s3.get_bucket_tagging().bucket(&n).send().await {
                    Ok(t) => format!(
                        "tags {}",
                        pairs(t.tag_set().iter().map(|t| (t.key(), t.value())))
                    ),
                    Err(e) => format!("tags: {}", code_of(&e)),
                });
                // moto answers a bucket whose versioning was never set with an empty
                // `GetBucketVersioningResponse` root, which the SDK cannot decode.
                out.push(match s3.get_bucket_versioning().bucket(&n).send().await {
                    Ok(v) => format!("versioning {:?}", v.status()),
                    Err(_) => "versioning never set".to_string(),
                });
                out.push(match s3.get_public_access_block().bucket(&n).send().await {
                    Ok(p) => format!(
                        "public access block {:?}",
                        p.public_access_block_configuration()
                    ),
                    Err(e) => format!("public access block: {}", code_of(&e)),
                });
                out.push(match s3.get_bucket_policy().bucket(&n).send().await {
                    Ok(p) => format!("policy {:?}", p.policy()),
                    Err(e) => format!("policy: {}", code_of(&e)),
                });
                out.push(
                    match s3
                        .get_bucket_lifecycle_configuration()
                        .bucket(&n)
                        .send()
                        .await
                    {
                        Ok(l) => format!("lifecycle {:?}", l.rules()),
                        Err(e) => format!("lifecycle: {}", code_of(&e)),
                    },
                );
                out.push(match s3.get_bucket_encryption().bucket(&n).send().await {
                    Ok(e) => format!("encryption {:?}", e.server_side_encryption_configuration()),
                    Err(e) => format!("encryption: {}", code_of(&e)),
                });
                let versions = s3
                    .list_object_versions()
                    .bucket(&n)
                    .send()
                    .await
                    .expect("versions");
                for v in versions.versions() {
                    out.push(format!(
                        "object {} {:?}",
                        v.key().unwrap_or_default(),
                        v.version_id()
                    ));
                }
                for m in versions.delete_markers() {
                    out.push(format!("delete marker {:?}", m.key()));
                }
            }
            Kind::Topic => {
                let sns = aws_sdk_sns::Client::new(cfg);
                let arn = format!("arn:aws:sns:us-east-1:{ACCOUNT}:{n}");
                let attrs = match sns.get_topic_attributes().topic_arn(&arn).send().await {
                    Ok(a) => a,
                    Err(e) => return vec![format!("gone: {}", code_of(&e))],
                };
                let mut lines: Vec<String> = attrs
                    .attributes()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| format!("attribute {k}={v}"))
                    .collect();
                lines.sort();
                out.extend(lines);
                let tags = sns
                    .list_tags_for_resource()
                    .resource_arn(&arn)
                    .send()
                    .await
                    .expect("topic tags");
                out.push(format!(
                    "tags {}",
                    pairs(tags.tags().iter().map(|t| (t.key(), t.value())))
                ));
                let subs = sns
                    .list_subscriptions_by_topic()
                    .topic_arn(&arn)
                    .send()
                    .await
                    .expect("subscriptions");
                let mut lines: Vec<String> = subs
                    .subscriptions()
                    .iter()
                    .map(|s| {
                        format!(
                            "subscription {} {}",
                            s.protocol().unwrap_or_default(),
                            s.endpoint().unwrap_or_default()
                        )
                    })
                    .collect();
                lines.sort();
                out.extend(lines);
            }
            Kind::Role => {
                let iam = aws_sdk_iam::Client::new(cfg);
                let role = match iam.get_role().role_name(&n).send().await {
                    Ok(r) => r.role.expect("role"),
                    Err(e) => return vec![format!("gone: {}", code_of(&e))],
                };
                out.push(format!("trust {:?}", role.assume_role_policy_document()));
                out.push(format!("description {:?}", role.description()));
                out.push(format!("max session {:?}", role.max_session_duration()));
                let tags = iam
                    .list_role_tags()
                    .role_name(&n)
                    .send()
                    .await
                    .expect("role tags");
                out.push(format!(
                    "tags {}",
                    pairs(tags.tags().iter().map(|t| (t.key(), t.value())))
                ));
                let inline = iam
                    .list_role_policies()
                    .role_name(&n)
                    .send()
                    .await
                    .expect("inline policies");
                for name in inline.policy_names() {
                    let doc = iam
                        .get_role_policy()
                        .role_name(&n)
                        .policy_name(name)
                        .send()
                        .await
                        .expect("inline policy");
                    out.push(format!("inline {name} {}", doc.policy_document()));
                }
                let attached = iam
                    .list_attached_role_policies()
                    .role_name(&n)
                    .send()
                    .await
                    .expect("attached policies");
                for p in attached.attached_policies() {
                    out.push(format!("attached {:?}", p.policy_arn()));
                }
            }
            Kind::LogGroup => {
                let logs = aws_sdk_cloudwatchlogs::Client::new(cfg);
                let groups = logs
                    .describe_log_groups()
                    .log_group_name_prefix(&n)
                    .send()
                    .await
                    .expect("log groups");
                let Some(g) = groups
                    .log_groups()
                    .iter()
                    .find(|g| g.log_group_name() == Some(n.as_str()))
                else {
                    return vec!["gone".into()];
                };
                out.push(format!("retention {:?}", g.retention_in_days()));
                out.push(format!("kms {:?}", g.kms_key_id()));
                let arn = g
                    .log_group_arn()
                    .map(str::to_string)
                    .or_else(|| g.arn().map(|a| a.trim_end_matches(":*").to_string()))
                    .expect("log group arn");
                let tags = logs
                    .list_tags_for_resource()
                    .resource_arn(arn)
                    .send()
                    .await
                    .expect("log group tags");
                out.push(format!(
                    "tags {}",
                    pairs(
                        tags.tags()
                            .into_iter()
                            .flatten()
                            .map(|(k, v)| (k.as_str(), v.as_str()))
                    )
                ));
                let streams = logs
                    .describe_log_streams()
                    .log_group_name(&n)
                    .send()
                    .await
                    .expect("log streams");
                for st in streams.log_streams() {
                    out.push(format!(
                        "stream {}",
                        st.log_stream_name().unwrap_or_default()
                    ));
                }
            }
            Kind::Function => {
                let lambda = aws_sdk_lambda::Client::new(cfg);
                let f = match lambda.get_function().function_name(&n).send().await {
                    Ok(f) => f,
                    Err(e) => return vec![format!("gone: {}", code_of(&e))],
                };
                let c = f.configuration().expect("configuration");
                out.push(format!("role {:?}", c.role()));
                out.push(format!("runtime {:?}", c.runtime()));
                out.push(format!("handler {:?}", c.handler()));
                out.push(format!("description {:?}", c.description()));
                out.push(format!("memory {:?}", c.memory_size()));
                out.push(format!("timeout {:?}", c.timeout()));
                out.push(format!("code {:?}", c.code_sha256()));
                out.push(format!(
                    "environment {}",
                    pairs(
                        c.environment()
                            .and_then(|e| e.variables())
                            .into_iter()
                            .flatten()
                            .map(|(k, v)| (k.as_str(), v.as_str()))
                    )
                ));
                out.push(format!(
                    "tags {}",
                    pairs(
                        f.tags()
                            .into_iter()
                            .flatten()
                            .map(|(k, v)| (k.as_str(), v.as_str()))
                    )
                ));
                out.push(match lambda.get_policy().function_name(&n).send().await {
                    Ok(p) => format!("policy {:?}", p.policy()),
                    Err(e) => format!("policy: {}", code_of(&e)),
                });
                out.push(
                    match lambda
                        .get_function_event_invoke_config()
                        .function_name(&n)
                        .send()
                        .await
                    {
                        Ok(i) => format!(
                            "invoke config {:?} {:?}",
                            i.maximum_retry_attempts(),
                            i.maximum_event_age_in_seconds()
                        ),
                        Err(e) => format!("invoke config: {}", code_of(&e)),
                    },
                );
            }
            Kind::Rule => {
                let events = aws_sdk_eventbridge::Client::new(cfg);
                let rule = match events.describe_rule().name(&n).send().await {
                    Ok(r) => r,
                    Err(e) => return vec![format!("gone: {}", code_of(&e))],
                };
                out.push(format!("schedule {:?}", rule.schedule_expression()));
                out.push(format!("state {:?}", rule.state()));
                out.push(format!("description {:?}", rule.description()));
                let targets = events
                    .list_targets_by_rule()
                    .rule(&n)
                    .send()
                    .await
                    .expect("targets");
                for t in targets.targets() {
                    out.push(format!("target {} {} {:?}", t.id(), t.arn(), t.input()));
                }
                let tags = events
                    .list_tags_for_resource()
                    .resource_arn(rule.arn().expect("rule arn"))
                    .send()
                    .await
                    .expect("rule tags");
                out.push(format!(
                    "tags {}",
                    pairs(tags.tags().iter().map(|t| (t.key(), t.value())))
                ));
            }
            Kind::Alarm => {
                let cw = aws_sdk_cloudwatch::Client::new(cfg);
                let alarms = cw
                    .describe_alarms()
                    .alarm_names(&n)
                    .send()
                    .await
                    .expect("alarms");
                let Some(a) = alarms.metric_alarms().first() else {
                    return vec!["gone".into()];
                };
                out.push(format!("namespace {:?}", a.namespace()));
                out.push(format!("metric {:?}", a.metric_name()));
                out.push(format!("statistic {:?}", a.statistic()));
                out.push(format!("dimensions {:?}", a.dimensions()));
                out.push(format!("period {:?}", a.period()));
                out.push(format!("evaluation periods {:?}", a.evaluation_periods()));
                out.push(format!("threshold {:?}", a.threshold()));
                out.push(format!("comparison {:?}", a.comparison_operator()));
                out.push(format!("description {:?}", a.alarm_description()));
                out.push(format!("actions {:?}", a.alarm_actions()));
                out.push(format!("actions enabled {:?}", a.actions_enabled()));
                out.push(format!("missing data {:?}", a.treat_missing_data()));
                let tags = cw
                    .list_tags_for_resource()
                    .resource_arn(a.alarm_arn().expect("alarm arn"))
                    .send()
                    .await
                    .expect("alarm tags");
                out.push(format!(
                    "tags {}",
                    pairs(
                        tags.tags()
                            .iter()
                            .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()))
                    )
                ));
            }
            Kind::Dashboard => {
                match aws_sdk_cloudwatch::Client::new(cfg)
                    .get_dashboard()
                    .dashboard_name(&n)
                    .send()
                    .await
                {
                    Ok(d) => out.push(format!("body {}", d.dashboard_body().unwrap_or_default())),
                    Err(e) => return vec![format!("gone: {}", code_of(&e))],
                }
            }
        }
        out
    }
}

/// A trust policy letting `service` assume the role.
fn trust(service: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"Service":"{service}"}},"Action":"sts:AssumeRole"}}]}}"#
    )
}

fn apply(w: &Workdir) -> std::process::Output {
    w.run(&["apply", "-auto-approve", "-no-color", "-input=false"])
}

/// Asserts a failed Terraform run that names `label` and says its name is taken.
fn assert_taken(out: &std::process::Output, label: &str, when: &str) {
    let said = text(out);
    assert!(
        !out.status.success(),
        "{when}: apply must fail on {label}:\n{said}"
    );
    let flat = flat(&said);
    assert!(
        flat.contains(label) && flat.contains("name is taken"),
        "{when}: the error must name {label:?} and say `name is taken`:\n{said}"
    );
    let start = flat.find("Error:").unwrap_or(0);
    eprintln!(
        "{when}: {}",
        flat[start..].chars().take(400).collect::<String>()
    );
}

/// Destroys, then checks the foreign piece is as it was and is all that is left of the names of
/// the stack `s`.
async fn destroy_leaves_only(
    aws: &Aws,
    cfg: &aws_config::SdkConfig,
    w: &Workdir,
    kind: Kind,
    s: &str,
    before: &[String],
) {
    let out = w.ok(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
    assert_eq!(
        kind.snapshot(cfg, s).await,
        before,
        "destroy changed the foreign {}:\n{out}",
        kind.label(s)
    );
    assert_eq!(
        pieces(&aws.moto, s).await,
        [kind.listed(s)],
        "after destroy only the foreign piece may be left:\n{out}"
    );
}

/// Someone else's piece holds one of the stack's names before the stack is created.
async fn create_meets_foreign(kind: Kind, s: &str, tag: Option<&str>) {
    let aws = Aws::plain();
    let cfg = sdk(&aws.moto).await;
    kind.make(&cfg, s, tag).await;
    let before = kind.snapshot(&cfg, s).await;
    for line in kind.recognisable() {
        assert!(
            before.iter().any(|l| l.contains(line)),
            "their {kind:?} was not made as meant, no {line:?} in {before:#?}"
        );
    }
    let w = stack_workdir(&aws, &format!("foreign-{s}"), &stack_config(&aws, s, ""));
    let out = apply(&w);
    assert_taken(&out, &kind.label(s), "create");
    assert_eq!(
        kind.snapshot(&cfg, s).await,
        before,
        "the failed create changed the foreign {}:\n{}",
        kind.label(s),
        text(&out)
    );
    let made: Vec<String> = pieces(&aws.moto, s)
        .await
        .into_iter()
        .filter(|p| p != &kind.listed(s))
        .collect();
    eprintln!("{kind:?}: the failed create made {made:?}");
    destroy_leaves_only(&aws, &cfg, &w, kind, s, &before).await;
}

macro_rules! create_meets_foreign {
    ($($test:ident: $kind:expr, $suffix:literal, $tag:expr;)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                create_meets_foreign($kind, $suffix, $tag).await;
            }
        )*
    };
}

create_meets_foreign! {
    create_fails_on_a_bucket_of_another_stack_and_destroy_leaves_it: Kind::Bucket, "cbucket", Some("other");
    create_fails_on_an_untagged_topic_and_destroy_leaves_it: Kind::Topic, "ctopic", None;
    create_fails_on_a_role_of_another_stack_and_destroy_leaves_it: Kind::Role, "crole", Some("other");
    create_fails_on_an_untagged_log_group_and_destroy_leaves_it: Kind::LogGroup, "clog", None;
    create_fails_on_a_function_of_another_stack_and_destroy_leaves_it: Kind::Function, "cfn", Some("other");
    create_fails_on_an_untagged_schedule_rule_and_destroy_leaves_it: Kind::Rule, "crule", None;
    create_fails_on_an_alarm_of_another_stack_and_destroy_leaves_it: Kind::Alarm, "calarm", Some("other");
    create_fails_on_an_unmarked_dashboard_and_destroy_leaves_it: Kind::Dashboard, "cdash", None;
}

/// The stack's piece is deleted outside Terraform and someone else makes one of the same name.
async fn update_meets_foreign(kind: Kind, s: &str) {
    let aws = Aws::plain();
    let cfg = sdk(&aws.moto).await;
    let w = stack_workdir(&aws, &format!("foreign-{s}"), &stack_config(&aws, s, ""));
    let out = apply(&w);
    assert!(out.status.success(), "create:\n{}", text(&out));
    // Fifteen pieces, and the four event-driven ones (event_driven is on by default).
    assert_eq!(pieces(&aws.moto, s).await.len(), 19, "the whole stack");
    kind.delete_the_stacks(&cfg, s).await;
    kind.make(&cfg, s, None).await;
    let before = kind.snapshot(&cfg, s).await;
    assert!(
        !before
            .iter()
            .any(|l| l.contains("ComplianceStack") || l.contains("compliance_monitor")),
        "their {kind:?} carries no mark of a stack: {before:#?}"
    );
    for line in kind.recognisable() {
        assert!(
            before.iter().any(|l| l.contains(line)),
            "their {kind:?} was not made as meant, no {line:?} in {before:#?}"
        );
    }
    // Reading the foreign piece is no error; writing to it is.
    w.ok(&["refresh", "-no-color", "-input=false"]);
    let out = apply(&w);
    assert_taken(&out, &kind.label(s), "update");
    assert_eq!(
        kind.snapshot(&cfg, s).await,
        before,
        "the failed update changed the foreign {}:\n{}",
        kind.label(s),
        text(&out)
    );
    // A second try meets the same, and still changes nothing.
    let again = apply(&w);
    assert_taken(&again, &kind.label(s), "second update");
    assert_eq!(kind.snapshot(&cfg, s).await, before);
    destroy_leaves_only(&aws, &cfg, &w, kind, s, &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_fails_on_an_alarm_remade_by_someone_else_and_destroy_leaves_it() {
    update_meets_foreign(Kind::Alarm, "ualarm").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_fails_on_a_dashboard_remade_by_someone_else_and_destroy_leaves_it() {
    update_meets_foreign(Kind::Dashboard, "udash").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_fails_on_a_schedule_rule_remade_by_someone_else_and_destroy_leaves_it() {
    update_meets_foreign(Kind::Rule, "urule").await;
}

/// The e-mail subscriptions of the stack `s`'s topic, sorted.
async fn emails(cfg: &aws_config::SdkConfig, s: &str) -> Vec<String> {
    let subs = aws_sdk_sns::Client::new(cfg)
        .list_subscriptions_by_topic()
        .topic_arn(format!(
            "arn:aws:sns:us-east-1:{ACCOUNT}:compliance-alerts-{s}"
        ))
        .send()
        .await
        .expect("subscriptions");
    let mut v: Vec<String> = subs
        .subscriptions()
        .iter()
        .filter(|s| s.protocol() == Some("email"))
        .filter_map(|s| s.endpoint().map(str::to_string))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_alert_email_replaces_only_the_previous_address_not_other_subscribers() {
    let aws = Aws::plain();
    let cfg = sdk(&aws.moto).await;
    let s = "subs";
    let w = stack_workdir(
        &aws,
        "foreign-subs",
        &stack_config(&aws, s, "  alert_email = \"first@example.com\""),
    );
    let out = apply(&w);
    assert!(out.status.success(), "create:\n{}", text(&out));
    assert_eq!(emails(&cfg, s).await, ["first@example.com"]);

    // Someone else subscribes to the stack's topic.
    aws_sdk_sns::Client::new(&cfg)
        .subscribe()
        .topic_arn(format!(
            "arn:aws:sns:us-east-1:{ACCOUNT}:compliance-alerts-{s}"
        ))
        .protocol("email")
        .endpoint("other@example.com")
        .send()
        .await
        .expect("their subscription");
    assert_eq!(
        emails(&cfg, s).await,
        ["first@example.com", "other@example.com"]
    );

    w.write(&stack_config(
        &aws,
        s,
        "  alert_email = \"second@example.com\"",
    ));
    let out = apply(&w);
    assert!(out.status.success(), "update:\n{}", text(&out));
    assert_eq!(
        emails(&cfg, s).await,
        ["other@example.com", "second@example.com"],
        "only the previous address is unsubscribed:\n{}",
        text(&out)
    );
    // The other subscriber is not drift: nothing more to do.
    let plan = w.run(&["plan", "-no-color", "-input=false", "-detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    assert_eq!(
        emails(&cfg, s).await,
        ["other@example.com", "second@example.com"]
    );

    w.ok(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
    let left = pieces(&aws.moto, s).await;
    assert!(left.is_empty(), "left after destroy: {left:?}");
}
