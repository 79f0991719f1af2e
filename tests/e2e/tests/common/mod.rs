//! AWS SDK clients for the end-to-end tests, pointed at the test's emulator, and what the tests
//! that build their own stacks share: a configuration, an initialised folder, the pieces listed.

use aws_config::BehaviorVersion;
use test_support::Moto;

/// SDK configuration for the emulator. The test process trusts its certificate through
/// `SSL_CERT_FILE`.
pub async fn sdk(moto: &Moto) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(moto.endpoint())
        .region(aws_config::Region::new(test_support::REGION))
        .credentials_provider(aws_sdk_lambda::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await
}

/// An S3 client with path-style addressing, which every endpoint accepts.
pub fn s3(cfg: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(cfg)
            .force_path_style(true)
            .build(),
    )
}

// What follows is shared by the stack tests that build their own configurations (foreign.rs,
// scan.rs); not every test binary that includes this module uses all of it.

/// A configuration of one `compliance_monitor` with suffix `suffix` against `aws`, with `body`
/// (attribute lines) inside the resource block.
#[allow(dead_code)]
pub fn stack_config(aws: &e2e::Aws, suffix: &str, body: &str) -> String {
    format!(
        "{}\nprovider \"compliance\" {{\n  region = \"us-east-1\"\n  endpoint_url = \"{}\"\n  \
         default_tags = {{ Project = \"e2e\" }}\n}}\n\nresource \"compliance_monitor\" \"this\" {{\n  \
         environment_suffix = \"{suffix}\"\n{body}\n}}\n",
        e2e::REQUIRED_PROVIDERS,
        aws.endpoint()
    )
}

/// A working folder named `name`, initialised, that runs Terraform against `aws`.
#[allow(dead_code)]
pub fn stack_workdir(aws: &e2e::Aws, name: &str, main_tf: &str) -> e2e::Workdir {
    let mut w = e2e::Workdir::new(name, main_tf);
    w.env = aws.aws_env();
    w.init();
    w
}

/// Terraform's output with the diagnostics' frame (`│`) removed and every run of white space one
/// space: a long diagnostic is wrapped at Terraform's width, so a phrase may span lines.
#[allow(dead_code)]
pub fn flat(text: &str) -> String {
    text.replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every piece named for the stack `suffix` in the emulator's account, whoever made it, by listing
/// each service: `bucket <name>`, `topic <arn>`, `role <name>`, `function <name>`,
/// `log group <name>`, `rule <name>`, `alarm <name>`, `dashboard <name>`, `queue <name>`,
/// `mapping <queue> -> <function>`.
#[allow(dead_code)]
pub async fn pieces(moto: &Moto, suffix: &str) -> Vec<String> {
    let cfg = sdk(moto).await;
    let mine = |name: &str| name.ends_with(&format!("-{suffix}"));
    let mut found = Vec::new();
    let buckets = s3(&cfg).list_buckets().send().await.expect("list buckets");
    for b in buckets.buckets() {
        found.extend(b.name().filter(|n| mine(n)).map(|n| format!("bucket {n}")));
    }
    let topics = aws_sdk_sns::Client::new(&cfg)
        .list_topics()
        .send()
        .await
        .expect("list topics");
    for t in topics.topics() {
        found.extend(
            t.topic_arn()
                .filter(|n| mine(n))
                .map(|n| format!("topic {n}")),
        );
    }
    let roles = aws_sdk_iam::Client::new(&cfg)
        .list_roles()
        .send()
        .await
        .expect("list roles");
    for r in roles.roles() {
        if mine(r.role_name()) {
            found.push(format!("role {}", r.role_name()));
        }
    }
    let functions = aws_sdk_lambda::Client::new(&cfg)
        .list_functions()
        .send()
        .await
        .expect("list functions");
    for f in functions.functions() {
        found.extend(
            f.function_name()
                .filter(|n| mine(n))
                .map(|n| format!("function {n}")),
        );
    }
    let groups = aws_sdk_cloudwatchlogs::Client::new(&cfg)
        .describe_log_groups()
        .send()
        .await
        .expect("log groups");
    for g in groups.log_groups() {
        found.extend(
            g.log_group_name()
                .filter(|n| mine(n))
                .map(|n| format!("log group {n}")),
        );
    }
    let rules = aws_sdk_eventbridge::Client::new(&cfg)
        .list_rules()
        .send()
        .await
        .expect("rules");
    for r in rules.rules() {
        found.extend(r.name().filter(|n| mine(n)).map(|n| format!("rule {n}")));
    }
    let cw = aws_sdk_cloudwatch::Client::new(&cfg);
    let alarms = cw.describe_alarms().send().await.expect("alarms");
    for a in alarms.metric_alarms() {
        found.extend(
            a.alarm_name()
                .filter(|n| mine(n))
                .map(|n| format!("alarm {n}")),
        );
    }
    let dashboards = cw.list_dashboards().send().await.expect("dashboards");
    for d in dashboards.dashboard_entries() {
        found.extend(
            d.dashboard_name()
                .filter(|n| mine(n))
                .map(|n| format!("dashboard {n}")),
        );
    }
    let sqs = aws_sdk_sqs::Client::new(&cfg);
    let queues = sqs.list_queues().send().await.expect("queues");
    for url in queues.queue_urls() {
        let name = url.rsplit('/').next().unwrap_or_default();
        if mine(name) {
            found.push(format!("queue {name}"));
        }
    }
    let mappings = aws_sdk_lambda::Client::new(&cfg)
        .list_event_source_mappings()
        .send()
        .await
        .expect("event source mappings");
    for m in mappings.event_source_mappings() {
        let queue = m
            .event_source_arn()
            .unwrap_or_default()
            .rsplit(':')
            .next()
            .unwrap_or_default();
        let function = m
            .function_arn()
            .unwrap_or_default()
            .rsplit(':')
            .next()
            .unwrap_or_default();
        if mine(queue) || mine(function) {
            found.push(format!("mapping {queue} -> {function}"));
        }
    }
    found.sort();
    found
}

/// The scanner function's environment as Lambda holds it.
#[allow(dead_code)]
pub async fn deployed_environment(
    cfg: &aws_config::SdkConfig,
    suffix: &str,
) -> std::collections::HashMap<String, String> {
    aws_sdk_lambda::Client::new(cfg)
        .get_function_configuration()
        .function_name(format!("compliance-scanner-{suffix}"))
        .send()
        .await
        .expect("scanner configuration")
        .environment()
        .and_then(|e| e.variables())
        .expect("the scanner has an environment")
        .clone()
}

/// Runs the real scanner binary in CLI mode with exactly `env` (the deployed environment) plus
/// the emulator's endpoint and test credentials, and returns the stored result.
#[allow(dead_code)]
pub async fn scan(
    aws: &e2e::Aws,
    cfg: &aws_config::SdkConfig,
    env: &std::collections::HashMap<String, String>,
) -> serde_json::Value {
    let bin = test_support::target_dir()
        .join("debug")
        .join("compliance-scanner");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --workspace --all-targets`",
        bin.display()
    );
    let out = std::process::Command::new(&bin)
        .arg("scan")
        .env_clear()
        .envs(env)
        .envs(aws.aws_env())
        .output()
        .expect("run compliance-scanner");
    let said = e2e::text(&out);
    assert!(out.status.success(), "the scan failed:\n{said}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("the summary is not JSON ({e}):\n{said}"));
    let bucket = env.get("BUCKET_NAME").expect("BUCKET_NAME is set");
    assert_eq!(report["bucket"], serde_json::json!(bucket), "{said}");
    let s3 = s3(cfg);
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix("scans/")
        .send()
        .await
        .expect("list scans");
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(
        keys,
        [report["result_key"].as_str().expect("result_key")],
        "one result, where the summary says:\n{said}"
    );
    let body = s3
        .get_object()
        .bucket(bucket)
        .key(keys[0])
        .send()
        .await
        .expect("get result")
        .body
        .collect()
        .await
        .expect("read result")
        .into_bytes();
    serde_json::from_slice(&body).expect("the result is JSON")
}
