//! The event mode through the Lambda runtime API emulator (`cargo lambda watch`), invoked with
//! `cargo lambda invoke` and SQS batches built here from the documented event shapes, against
//! moto: a new untagged instance, a group opened on 22 with its instances, a tag fixed, a deleted
//! instance, a duplicate; and, through the fidelity proxy, throttling that outlasts the retries,
//! and changes in member accounts (each made in its own moto account, the proxy's trust knob on):
//! read through the member role, refused without one, dropped when not a member.

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use compliance_scanner::events::output::EventResult;
use serde_json::{json, Value};
use test_support::fidelity::{Fidelity, FidelityProxy};
use test_support::{free_port, venv_tool, Moto};

const NAMESPACE: &str = "ComplianceMonitoring";
const ALICE: &str = "arn:aws:iam::123456789012:user/alice";

/// A child process killed on drop, so a failing assertion leaves nothing running.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the runtime API emulator on a free port; returns it and the port.
fn emulator() -> (Killed, u16) {
    let port = free_port();
    let log = std::env::temp_dir().join(format!("cargo-lambda-watch-{port}.log"));
    let file = std::fs::File::create(&log).expect("create emulator log");
    let child = Command::new(venv_tool("cargo-lambda"))
        .args([
            "lambda",
            "watch",
            "--only-lambda-apis",
            "--invoke-address",
            "127.0.0.1",
        ])
        .args(["--invoke-port", &port.to_string()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .expect("start cargo lambda watch");
    let guard = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "cargo lambda watch did not listen on {port}; log: {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (guard, port)
}

/// The real scanner binary as the function behind the emulator, with `aws` (an emulator's or a
/// proxy's environment) and `env`; its log (JSON lines) goes to the returned file.
fn function(aws: &[(String, String)], port: u16, env: &[(&str, &str)]) -> (Killed, PathBuf) {
    let log = std::env::temp_dir().join(format!("events-function-{port}-{}.log", now_nanos()));
    let file = std::fs::File::create(&log).expect("create function log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_compliance-scanner"));
    for var in [
        "BUCKET_NAME",
        "BUCKET_OWNER",
        "TOPIC_ARN",
        "REQUIRED_TAGS",
        "RESTRICTED_PORTS",
        "EXEMPT_TAG_KEY",
        "EXEMPTIONS",
        "SCAN_REGIONS",
        "METRIC_NAMESPACE",
        "STACK_NAME",
        "MEMBER_ACCOUNTS",
        "ORGANIZATION_ACCOUNTS",
        "MEMBER_ROLE_NAME",
        "MEMBER_EXTERNAL_ID",
        "SCAN_CONCURRENCY",
        "AWS_PROFILE",
        "AWS_MAX_ATTEMPTS",
        "AWS_RETRY_MODE",
        "AWS_LAMBDA_LOG_LEVEL",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(aws.iter().map(|(k, v)| (k, v)))
        .env(
            "AWS_LAMBDA_RUNTIME_API",
            format!("http://127.0.0.1:{port}/.rt"),
        )
        .env("AWS_LAMBDA_FUNCTION_NAME", "_")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .spawn()
        .expect("start compliance-scanner as a Lambda function");
    (Killed(child), log)
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Invokes the function with `payload`; the response JSON, or the invoke's output on failure.
fn invoke(port: u16, payload: &Value) -> Result<Value, String> {
    let file = std::env::temp_dir().join(format!("events-payload-{port}-{}.json", now_nanos()));
    std::fs::write(&file, payload.to_string()).expect("write payload");
    let out = Command::new(venv_tool("cargo-lambda"))
        .args(["lambda", "invoke", "--invoke-address", "127.0.0.1"])
        .args(["--invoke-port", &port.to_string()])
        .arg("--data-file")
        .arg(&file)
        .args(["--output-format", "json"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo lambda invoke");
    let _ = std::fs::remove_file(&file);
    if !out.status.success() {
        return Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// The `itemIdentifier`s of a partial batch response.
fn failures(response: &Value) -> Vec<String> {
    response["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("no batchItemFailures: {response}"))
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_string())
        .collect()
}

/// An EventBridge event as the rule delivers it to the queue.
fn event(
    id: &str,
    source: &str,
    detail_type: &str,
    resources: Vec<String>,
    detail: Value,
) -> Value {
    json!({
        "version": "0",
        "id": id,
        "detail-type": detail_type,
        "source": source,
        "account": "123456789012",
        "time": "2026-11-28T10:00:00Z",
        "region": test_support::REGION,
        "resources": resources,
        "detail": detail,
    })
}

fn state_change(id: &str, instance: &str) -> Value {
    event(
        id,
        "aws.ec2",
        "EC2 Instance State-change Notification",
        vec![format!(
            "arn:aws:ec2:us-east-1:123456789012:instance/{instance}"
        )],
        json!({"instance-id": instance, "state": "running"}),
    )
}

fn tag_change(id: &str, instance: &str, keys: &[&str]) -> Value {
    event(
        id,
        "aws.tag",
        "Tag Change on Resource",
        vec![format!(
            "arn:aws:ec2:us-east-1:123456789012:instance/{instance}"
        )],
        json!({
            "changed-tag-keys": keys,
            "service": "ec2",
            "resource-type": "instance",
            "version": 2,
            "tags": {}
        }),
    )
}

/// An `AWS API Call via CloudTrail` event for an EC2 call made by alice.
fn api_call(id: &str, name: &str, request: Value, response: Value) -> Value {
    event(
        id,
        "aws.ec2",
        "AWS API Call via CloudTrail",
        vec![],
        json!({
            "eventVersion": "1.08",
            "userIdentity": {
                "type": "IAMUser",
                "principalId": "AIDAEXAMPLE",
                "arn": ALICE,
                "accountId": "123456789012",
                "userName": "alice"
            },
            "eventTime": "2026-11-28T10:00:00Z",
            "eventSource": "ec2.amazonaws.com",
            "eventName": name,
            "awsRegion": test_support::REGION,
            "sourceIPAddress": "192.0.2.10",
            "userAgent": "aws-cli/2.15",
            "requestParameters": request,
            "responseElements": response,
            "requestID": format!("req-{id}"),
            "eventID": format!("ct-{id}"),
            "readOnly": false,
            "eventType": "AwsApiCall",
            "managementEvent": true,
            "recipientAccountId": "123456789012"
        }),
    )
}

/// An SQS batch as the event source mapping sends it: (messageId, body) per record.
fn batch(records: &[(&str, String)]) -> Value {
    json!({
        "Records": records.iter().map(|(id, body)| json!({
            "messageId": id,
            "receiptHandle": format!("AQEB{id}"),
            "body": body,
            "attributes": {
                "ApproximateReceiveCount": "1",
                "SentTimestamp": "1795860000000",
                "SenderId": "AIDAEVENTBRIDGE",
                "ApproximateFirstReceiveTimestamp": "1795860000001"
            },
            "messageAttributes": {},
            "md5OfBody": "0",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:compliance-changes",
            "awsRegion": test_support::REGION
        })).collect::<Vec<_>>()
    })
}

/// Keys under `events/` in the bucket.
async fn event_keys(aws: &Aws, bucket: &str) -> Vec<String> {
    let out = aws
        .s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix("events/")
        .send()
        .await
        .expect("list events");
    let mut keys: Vec<String> = out
        .contents
        .unwrap_or_default()
        .into_iter()
        .filter_map(|o| o.key)
        .collect();
    keys.sort();
    keys
}

async fn read_event(aws: &Aws, bucket: &str, key: &str) -> EventResult {
    let obj = aws
        .s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("get event result");
    let bytes = obj.body.collect().await.expect("read body").into_bytes();
    // A reader of scan results reads it as one too.
    serde_json::from_slice::<compliance_rules::result::ScanResult>(&bytes)
        .expect("an event result parses as a scan result");
    serde_json::from_slice(&bytes).expect("the object parses as an EventResult")
}

/// The one key added since `before`.
async fn new_key(aws: &Aws, bucket: &str, before: &[String]) -> String {
    let now = event_keys(aws, bucket).await;
    let added: Vec<&String> = now.iter().filter(|k| !before.contains(k)).collect();
    assert_eq!(
        added.len(),
        1,
        "one result per batch: {now:?} after {before:?}"
    );
    added[0].clone()
}

fn log_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn event_batches_through_the_runtime_api() {
    let moto = Moto::start();
    let aws = Aws::new(&moto).await;
    let bucket = "compliance-results-events";
    let topic = aws.stack(bucket, "compliance-alerts-events").await;
    let image = image_id(&aws.ec2).await;
    let (vpc, subnet) = vpc_subnet(&aws.ec2, "10.3.0.0/16", "10.3.1.0/24").await;
    let web = group(
        &aws.ec2,
        &vpc,
        "web",
        vec![rule("tcp", Some(443), Some(443), &["10.0.0.0/8"])],
    )
    .await;
    let plain = group(&aws.ec2, &vpc, "plain", vec![]).await;
    let full = [
        ("Environment", "prod"),
        ("Owner", "ana"),
        ("CostCenter", "cc"),
    ];
    let webs = launch(&aws.ec2, &image, Some(&subnet), &[&web], &full, 2).await;
    let other = launch(&aws.ec2, &image, Some(&subnet), &[&plain], &full, 1).await;
    let untagged = launch(
        &aws.ec2,
        &image,
        Some(&subnet),
        &[&plain],
        &[("Environment", "dev")],
        1,
    )
    .await
    .remove(0);

    let (_emulator, port) = emulator();
    let (_f, log) = function(
        &moto.aws_env(),
        port,
        &[
            ("BUCKET_NAME", bucket),
            ("TOPIC_ARN", topic.as_str()),
            ("STACK_NAME", "ev"),
            ("METRIC_NAMESPACE", NAMESPACE),
        ],
    );

    // 1. A new untagged instance (RunInstances), delivered twice, beside a state change of a
    //    compliant instance and a record that is not an event.
    let run = api_call(
        "e-run",
        "RunInstances",
        json!({"instancesSet": {"items": [{"imageId": image, "minCount": 1, "maxCount": 1}]}}),
        json!({"reservationId": "r-1", "instancesSet": {"items": [{"instanceId": untagged}]}}),
    )
    .to_string();
    let first = batch(&[
        ("m-1", run.clone()),
        ("m-2", state_change("e-state", &other[0]).to_string()),
        ("m-3", "{\"not\": \"an event\"".into()),
        ("m-4", run),
    ]);
    let response = invoke(port, &first).expect("invoke");
    assert_eq!(failures(&response), Vec::<String>::new(), "{response}");
    let key1 = new_key(&aws, bucket, &[]).await;
    assert!(
        key1.starts_with("events/2026/11/28/20261128T100000Z-e-run-and-1-"),
        "{key1}"
    );
    let r = read_event(&aws, bucket, &key1).await;
    assert_eq!(r.trigger, "event");
    let names: Vec<(&str, &str)> = r
        .events
        .iter()
        .map(|e| (e.change.id.as_str(), e.change.name.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("e-run", "RunInstances"),
            ("e-state", "EC2 Instance State-change Notification")
        ],
        "the duplicate is one change"
    );
    assert_eq!(r.events[0].change.actor.as_deref(), Some(ALICE));
    assert_eq!(r.events[0].judged, std::slice::from_ref(&untagged));
    assert_eq!(r.scan.summary.scanned, 2);
    assert_eq!(r.scan.summary.non_compliant, 1);
    assert_eq!(r.findings, 1);
    let judged = r
        .scan
        .instances
        .iter()
        .find(|i| i.instance_id == untagged)
        .unwrap();
    assert_eq!(judged.missing_tags, ["Owner", "CostCenter"]);
    assert_eq!(judged.account_id, "123456789012");
    assert_eq!(r.dropped.len(), 1);
    assert_eq!(r.dropped[0].message_id, "m-3");
    let sent = sent_notifications(&moto, &topic);
    assert_eq!(sent.len(), 1, "one alert for the batch");
    let (subject, body) = &sent[0];
    assert_eq!(subject, "[ev] 2 EC2 changes: 1 instance(s) non-compliant");
    assert!(
        body.contains(&format!("RunInstances by {ALICE} (event e-run)")),
        "{body}"
    );
    assert!(
        body.contains(&format!("-> non-compliant: {untagged}")),
        "{body}"
    );
    assert!(body.contains("missing tags: Owner, CostCenter"), "{body}");
    assert!(body.contains(&format!("s3://{bucket}/{key1}")), "{body}");
    assert_eq!(
        aws.metric_value(NAMESPACE, "EventFindings", "ev").await,
        Some(1.0)
    );
    let metrics = aws.metric_names(NAMESPACE).await;
    assert!(
        metrics.contains(&(
            "NonCompliantInstances".to_string(),
            vec!["Stack=ev".to_string(), "Trigger=Event".to_string()]
        )),
        "{metrics:?}"
    );
    let stack_only = vec!["Stack=ev".to_string()];
    assert!(
        metrics.contains(&("EventFindings".to_string(), stack_only.clone())),
        "{metrics:?}"
    );
    assert!(
        !metrics.contains(&("CompliancePercentage".to_string(), stack_only)),
        "the fleet-wide series stays the scheduled scan's: {metrics:?}"
    );

    // 2. A group opened to the world on 22: every instance using it is judged, the group listed.
    aws.ec2
        .authorize_security_group_ingress()
        .group_id(&web)
        .ip_permissions(rule("tcp", Some(22), Some(22), &["0.0.0.0/0"]))
        .send()
        .await
        .expect("open 22");
    let opened = api_call(
        "e-open",
        "AuthorizeSecurityGroupIngress",
        json!({
            "groupId": web,
            "ipPermissions": {"items": [{
                "ipProtocol": "tcp", "fromPort": 22, "toPort": 22,
                "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}
            }]}
        }),
        json!({"_return": true, "securityGroupRuleSet": {"items": [{"groupId": web, "isEgress": false}]}}),
    );
    let before = event_keys(&aws, bucket).await;
    let response = invoke(port, &batch(&[("m-5", opened.to_string())])).expect("invoke");
    assert_eq!(failures(&response), Vec::<String>::new());
    let key2 = new_key(&aws, bucket, &before).await;
    assert_eq!(key2, "events/2026/11/28/20261128T100000Z-e-open.json");
    let r = read_event(&aws, bucket, &key2).await;
    // Kept for a person to read (docs/events.md shows one).
    let _ = std::fs::write(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("event-result-example.json"),
        serde_json::to_string_pretty(&r).unwrap_or_default(),
    );
    let mut expected = webs.clone();
    expected.sort();
    assert_eq!(r.events[0].judged, expected, "the group's instances");
    assert_eq!(r.scan.summary.non_compliant, 2);
    assert_eq!(r.scan.security_groups.len(), 1);
    assert_eq!(r.scan.security_groups[0].group_id, web);
    assert_eq!(r.scan.security_groups[0].attached_instances, 2);
    assert_eq!(r.findings, 3, "two instances and the group");
    let sent = sent_notifications(&moto, &topic);
    assert_eq!(sent.len(), 2);
    let (subject, body) = &sent[1];
    assert_eq!(
        subject,
        "[ev] AuthorizeSecurityGroupIngress by user/alice: 2 instance(s) non-compliant, \
         1 group(s) open"
    );
    for id in &webs {
        assert!(body.contains(id.as_str()), "{body}");
    }
    assert!(
        body.contains(&format!("{web} tcp port 22 open to 0.0.0.0/0")),
        "{body}"
    );
    assert!(
        body.contains("changed by: AuthorizeSecurityGroupIngress by user/alice"),
        "{body}"
    );

    // 3. The untagged instance's tags fixed: judged compliant, stored, no alert.
    aws.ec2
        .create_tags()
        .resources(&untagged)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("Owner")
                .value("bo")
                .build(),
        )
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("CostCenter")
                .value("cc-2")
                .build(),
        )
        .send()
        .await
        .expect("tag");
    let before = event_keys(&aws, bucket).await;
    let fixed = tag_change("e-fixed", &untagged, &["Owner", "CostCenter"]);
    let response = invoke(port, &batch(&[("m-6", fixed.to_string())])).expect("invoke");
    assert_eq!(failures(&response), Vec::<String>::new());
    let key3 = new_key(&aws, bucket, &before).await;
    let r = read_event(&aws, bucket, &key3).await;
    assert_eq!(r.scan.summary.scanned, 1);
    assert_eq!(r.scan.summary.compliant, 1);
    assert_eq!(r.findings, 0);
    assert_eq!(r.events[0].change.actor, None);
    assert_eq!(
        sent_notifications(&moto, &topic).len(),
        2,
        "nothing non-compliant: no alert"
    );

    // 3b. An interface's groups changed: the instance it is attached to is judged, alone.
    let described = aws
        .ec2
        .describe_instances()
        .instance_ids(&webs[0])
        .send()
        .await
        .expect("describe");
    let eni = described.reservations()[0].instances()[0].network_interfaces()[0]
        .network_interface_id()
        .expect("primary interface")
        .to_string();
    let changed = api_call(
        "e-eni",
        "ModifyNetworkInterfaceAttribute",
        json!({"networkInterfaceId": eni, "groupSet": {"items": [{"groupId": web}]}}),
        json!({"_return": true}),
    );
    let before = event_keys(&aws, bucket).await;
    let response = invoke(port, &batch(&[("m-8", changed.to_string())])).expect("invoke");
    assert_eq!(failures(&response), Vec::<String>::new());
    let r = read_event(&aws, bucket, &new_key(&aws, bucket, &before).await).await;
    assert_eq!(r.events[0].judged, std::slice::from_ref(&webs[0]));
    assert_eq!(r.scan.summary.non_compliant, 1);
    assert_eq!(sent_notifications(&moto, &topic).len(), 3);

    // 3c. A group carried only by an instance's second interface: that instance is its user.
    let db = group(&aws.ec2, &vpc, "db", vec![]).await;
    let dual = launch(&aws.ec2, &image, Some(&subnet), &[&plain], &full, 1)
        .await
        .remove(0);
    let second = aws
        .ec2
        .create_network_interface()
        .subnet_id(&subnet)
        .groups(&db)
        .send()
        .await
        .expect("create interface")
        .network_interface
        .and_then(|n| n.network_interface_id)
        .expect("interface id");
    aws.ec2
        .attach_network_interface()
        .network_interface_id(&second)
        .instance_id(&dual)
        .device_index(1)
        .send()
        .await
        .expect("attach interface");
    aws.ec2
        .authorize_security_group_ingress()
        .group_id(&db)
        .ip_permissions(rule("tcp", Some(3306), Some(3306), &["0.0.0.0/0"]))
        .send()
        .await
        .expect("open 3306");
    let opened = api_call(
        "e-db",
        "AuthorizeSecurityGroupIngress",
        json!({"groupId": db}),
        json!({"_return": true}),
    );
    let before = event_keys(&aws, bucket).await;
    let response = invoke(port, &batch(&[("m-9", opened.to_string())])).expect("invoke");
    assert_eq!(failures(&response), Vec::<String>::new());
    let r = read_event(&aws, bucket, &new_key(&aws, bucket, &before).await).await;
    assert_eq!(r.events[0].judged, std::slice::from_ref(&dual));
    let judged = &r.scan.instances[0];
    assert!(judged.security_groups.contains(&db), "{judged:?}");
    assert_eq!(judged.violations[0].ports, [3306]);
    assert_eq!(sent_notifications(&moto, &topic).len(), 4);

    // 4. A deleted instance and one that never existed: logged, dropped, not a failure.
    terminate(&aws.ec2, &other[0]).await;
    let never = "i-0123456789abcdef0";
    let gone = api_call(
        "e-gone",
        "CreateTags",
        json!({
            "resourcesSet": {"items": [{"resourceId": other[0]}, {"resourceId": never}]},
            "tagSet": {"items": [{"key": "Owner", "value": "x"}]}
        }),
        json!({"_return": true}),
    );
    let before = event_keys(&aws, bucket).await;
    let response = invoke(port, &batch(&[("m-7", gone.to_string())])).expect("invoke");
    assert_eq!(
        failures(&response),
        Vec::<String>::new(),
        "gone is not a failure"
    );
    let key4 = new_key(&aws, bucket, &before).await;
    let r = read_event(&aws, bucket, &key4).await;
    assert_eq!(r.scan.summary.scanned, 0);
    let skipped: Vec<(&str, &str)> = r
        .skipped
        .iter()
        .map(|s| (s.id.as_str(), s.reason.as_str()))
        .collect();
    let mut expected = vec![(other[0].as_str(), "terminated"), (never, "does not exist")];
    expected.sort();
    assert_eq!(skipped, expected);
    let text = log_text(&log);
    for id in [other[0].as_str(), never] {
        assert!(
            text.lines()
                .any(|l| l.contains("named resource not judged") && l.contains(id)),
            "the log names {id}:\n{text}"
        );
    }
    assert!(
        text.lines()
            .any(|l| l.contains("record dropped") && l.contains("m-3")),
        "{text}"
    );
    assert_eq!(sent_notifications(&moto, &topic).len(), 4);

    // 4b. The same for an instance named by a change made just now: EC2 may not describe a new
    //     instance at once, so its record goes back to the queue (until the change is 5 minutes
    //     old), and nothing is stored.
    let mut young = api_call(
        "e-young",
        "RunInstances",
        json!({}),
        json!({"instancesSet": {"items": [{"instanceId": "i-0fedcba9876543210"}]}}),
    );
    young["time"] = json!(time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap());
    let before = event_keys(&aws, bucket).await;
    let response = invoke(port, &batch(&[("m-10", young.to_string())])).expect("invoke");
    assert_eq!(failures(&response), ["m-10"]);
    assert_eq!(event_keys(&aws, bucket).await, before);

    // 5. The first batch delivered again: the same key, overwritten, no second object.
    let before = event_keys(&aws, bucket).await;
    let response = invoke(port, &first).expect("invoke");
    assert_eq!(failures(&response), Vec::<String>::new());
    assert_eq!(
        event_keys(&aws, bucket).await,
        before,
        "a redelivery is one result"
    );

    // 6. Anything that is not an SQS batch is still a scheduled scan.
    let scan = invoke(
        port,
        &json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}),
    )
    .expect("scan");
    assert_eq!(scan["scanned"], 4, "{scan}");
    assert_eq!(aws.scan_keys(bucket).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn only_throttled_records_go_back_to_the_queue() {
    let moto = Moto::start();
    let aws = Aws::new(&moto).await;
    let bucket = "compliance-results-events-throttled";
    let topic = aws
        .stack(bucket, "compliance-alerts-events-throttled")
        .await;
    let image = image_id(&aws.ec2).await;
    let bad = launch(&aws.ec2, &image, None, &[], &[("Environment", "dev")], 1)
        .await
        .remove(0);
    let proxy = FidelityProxy::start(
        &moto,
        Fidelity {
            seed: 7,
            throttle: [("ec2".to_string(), 1.0)].into_iter().collect(),
            ..Fidelity::default()
        },
    );

    let (_emulator, port) = emulator();
    let (_f, log) = function(
        &proxy.aws_env(),
        port,
        &[
            ("BUCKET_NAME", bucket),
            ("TOPIC_ARN", topic.as_str()),
            ("STACK_NAME", "evt"),
            ("AWS_MAX_ATTEMPTS", "2"),
        ],
    );
    let state = state_change("e-1", &bad).to_string();
    let payload = batch(&[
        ("m-1", state.clone()),
        ("m-2", "[]".into()),
        ("m-3", state),
        (
            "m-4",
            api_call("e-2", "DescribeInstances", json!({}), Value::Null).to_string(),
        ),
    ]);
    let response = invoke(port, &payload).expect("invoke");
    assert_eq!(
        failures(&response),
        ["m-1", "m-3"],
        "both deliveries of the throttled change, never the malformed or irrelevant records"
    );
    assert!(
        event_keys(&aws, bucket).await.is_empty(),
        "nothing judged, nothing stored"
    );
    assert!(sent_notifications(&moto, &topic).is_empty());
    assert!(proxy.counters().total_throttled() >= 2);
    let text = log_text(&log);
    assert!(
        text.contains("RequestLimitExceeded") || text.contains("Throttl"),
        "{text}"
    );

    // The redelivery, once EC2 answers again, is judged and alerted.
    proxy.set(Fidelity::default());
    let response = invoke(
        port,
        &batch(&[("m-1", state_change("e-1", &bad).to_string())]),
    )
    .expect("invoke");
    assert_eq!(failures(&response), Vec::<String>::new());
    let keys = event_keys(&aws, bucket).await;
    assert_eq!(keys, ["events/2026/11/28/20261128T100000Z-e-1.json"]);
    assert_eq!(sent_notifications(&moto, &topic).len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Member accounts: their changes, forwarded to the stack's bus, are read through the member role.

const OWN: &str = "123456789012";
const EXTERNAL_ID: &str = "ev-org-51c2";
const MEMBER_ROLE: &str = "ComplianceScannerMember";

/// `event` as it arrives from `account`'s bus: the account, resource ARNs and actor there.
fn from_account(event: &Value, account: &str) -> String {
    event.to_string().replace(OWN, account)
}

/// Configuration on `endpoint` (the proxy) with the test keys (the own account) or `creds`.
async fn sdk_as(
    endpoint: &str,
    creds: Option<&aws_sdk_sts::types::Credentials>,
) -> aws_config::SdkConfig {
    let loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(test_support::REGION));
    let loader = match creds {
        Some(c) => loader.credentials_provider(aws_sdk_sts::config::Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            None,
            "member",
        )),
        None => loader.test_credentials(),
    };
    loader.load().await
}

/// Keys of `account`, issued through the proxy while its trust knob is off (moto issues them for
/// any role ARN), so that the proxy learns which account they are of.
async fn keys_of(sts: &aws_sdk_sts::Client, account: &str) -> aws_sdk_sts::types::Credentials {
    sts.assume_role()
        .role_arn(format!(
            "arn:aws:iam::{account}:role/OrganizationAccountAccessRole"
        ))
        .role_session_name("setup")
        .send()
        .await
        .expect("AssumeRole into the member for setup")
        .credentials
        .expect("credentials")
}

/// The member role in the account of `iam`: trusts the stack's account with the external id.
async fn member_role(iam: &aws_sdk_iam::Client) {
    let trust = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{OWN}:root")},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}}
        }]
    });
    iam.create_role()
        .role_name(MEMBER_ROLE)
        .assume_role_policy_document(trust.to_string())
        .send()
        .await
        .expect("CreateRole in the member account");
}

#[tokio::test(flavor = "multi_thread")]
async fn member_account_changes_are_read_through_the_member_role() {
    let moto = Moto::start();
    let proxy = FidelityProxy::start(&moto, Fidelity::default());
    let aws = Aws::new(&moto).await;
    let bucket = "compliance-results-member-events";
    let topic = aws.stack(bucket, "compliance-alerts-member-events").await;
    let own = sdk_as(&proxy.endpoint(), None).await;
    let sts = aws_sdk_sts::Client::new(&own);
    // A has the role, B does not, C is no member at all.
    let (a, b, c) = ("222222222222", "333333333333", "444444444444");
    let partial = [("Environment", "dev")];

    let a_sdk = sdk_as(&proxy.endpoint(), Some(&keys_of(&sts, a).await)).await;
    member_role(&aws_sdk_iam::Client::new(&a_sdk)).await;
    let a_ec2 = aws_sdk_ec2::Client::new(&a_sdk);
    let image = image_id(&a_ec2).await;
    let a_bad = launch(&a_ec2, &image, None, &[], &partial, 1)
        .await
        .remove(0);
    let b_ec2 =
        aws_sdk_ec2::Client::new(&sdk_as(&proxy.endpoint(), Some(&keys_of(&sts, b).await)).await);
    let b_bad = launch(&b_ec2, &image, None, &[], &partial, 1)
        .await
        .remove(0);
    let own_bad = launch(&aws.ec2, &image, None, &[], &partial, 1)
        .await
        .remove(0);
    // Each instance lives in its own account only.
    let visible = aws
        .ec2
        .describe_instances()
        .send()
        .await
        .expect("describe own");
    let own_ids: Vec<&str> = visible
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| i.instance_id())
        .collect();
    assert_eq!(own_ids, [own_bad.as_str()]);

    // From here the member role is assumed only as its trust allows.
    proxy.set(Fidelity {
        trust_policies: true,
        ..Fidelity::default()
    });
    proxy.reset_counters();
    let (emulator_guard, port) = emulator();
    let members = format!("{a},{b}");
    let (function_guard, log) = function(
        &proxy.aws_env(),
        port,
        &[
            ("BUCKET_NAME", bucket),
            ("TOPIC_ARN", topic.as_str()),
            ("STACK_NAME", "mev"),
            ("METRIC_NAMESPACE", NAMESPACE),
            ("SCAN_REGIONS", "us-east-1"),
            ("MEMBER_ACCOUNTS", members.as_str()),
            ("MEMBER_EXTERNAL_ID", EXTERNAL_ID),
        ],
    );

    // 1. One batch: a new untagged instance in A, one in the own account, a tag change in B (no
    //    role), a change in C (no member) and one in A in a region that is not scanned.
    let run = api_call(
        "e-a",
        "RunInstances",
        json!({"instancesSet": {"items": [{"imageId": image, "minCount": 1, "maxCount": 1}]}}),
        json!({"instancesSet": {"items": [{"instanceId": a_bad}]}}),
    );
    let mut elsewhere = state_change("e-a-eu", &a_bad);
    elsewhere["region"] = json!("eu-west-1");
    let payload = batch(&[
        ("m-1", from_account(&run, a)),
        ("m-2", state_change("e-own", &own_bad).to_string()),
        (
            "m-3",
            from_account(&tag_change("e-b", &b_bad, &["Owner"]), b),
        ),
        (
            "m-4",
            from_account(&state_change("e-c", "i-0123456789abcdef0"), c),
        ),
        ("m-5", from_account(&elsewhere, a)),
    ]);
    let response = invoke(port, &payload).expect("invoke");
    assert_eq!(
        failures(&response),
        Vec::<String>::new(),
        "a member without the role is recorded, not retried: {response}"
    );
    let key = new_key(&aws, bucket, &[]).await;
    let r = read_event(&aws, bucket, &key).await;
    let judged: Vec<(&str, &str, bool)> = r
        .scan
        .instances
        .iter()
        .map(|i| (i.instance_id.as_str(), i.account_id.as_str(), i.compliant))
        .collect();
    let mut expected = vec![(own_bad.as_str(), OWN, false), (a_bad.as_str(), a, false)];
    expected.sort_by_key(|(_, account, _)| *account);
    assert_eq!(judged, expected, "each instance with its own account");
    let in_a = r
        .scan
        .instances
        .iter()
        .find(|i| i.instance_id == a_bad)
        .unwrap();
    assert_eq!(in_a.missing_tags, ["Owner", "CostCenter"]);
    assert_eq!(
        r.scan.account_id.as_deref(),
        Some(OWN),
        "the stack's account"
    );
    let events: Vec<(&str, &str, Vec<String>)> = r
        .events
        .iter()
        .map(|e| {
            (
                e.change.id.as_str(),
                e.change.account.as_str(),
                e.judged.clone(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            ("e-a", a, vec![a_bad.clone()]),
            ("e-b", b, vec![]),
            ("e-own", OWN, vec![own_bad.clone()]),
        ]
    );
    // B: one error for the whole account, naming the role, in errors[] as a scan records it.
    assert_eq!(r.scan.errors.len(), 1, "{:#?}", r.scan.errors);
    let e = &r.scan.errors[0];
    assert_eq!(
        (
            e.account_id.as_str(),
            e.region.as_deref(),
            e.operation.as_str()
        ),
        (b, None, "AssumeRole")
    );
    assert_eq!(e.code.as_deref(), Some("AccessDenied"));
    assert!(
        e.cause
            .contains(&format!("arn:aws:iam::{b}:role/{MEMBER_ROLE}"))
            && e.cause
                .contains("not authorized to perform: sts:AssumeRole"),
        "{}",
        e.cause
    );
    // C and the unscanned region: dropped, each with its reason.
    let dropped: Vec<(&str, &str)> = r
        .dropped
        .iter()
        .map(|d| (d.message_id.as_str(), d.reason.as_str()))
        .collect();
    assert_eq!(
        dropped,
        [
            (
                "m-4",
                "not judged: account 444444444444 is neither the function's own (123456789012) nor a member account"
            ),
            ("m-5", "not judged: region eu-west-1 is not scanned"),
        ]
    );
    // Per account: the own, A (judged) and B (not read).
    let accounts: Vec<(&str, u64, u64, u64)> = r
        .scan
        .summary
        .accounts
        .iter()
        .map(|s| {
            (
                s.account_id.as_str(),
                s.counts.scanned,
                s.counts.non_compliant,
                s.errors,
            )
        })
        .collect();
    assert_eq!(accounts, [(OWN, 1, 1, 0), (a, 1, 1, 0), (b, 0, 0, 1)]);
    assert_eq!((r.scan.summary.scanned, r.findings), (2, 2));

    // The alert names the member account on the change and the instance, and what was not read.
    let sent = sent_notifications(&moto, &topic);
    assert_eq!(sent.len(), 1);
    let (subject, body) = &sent[0];
    assert_eq!(
        subject,
        "[mev] 3 EC2 changes in 3 accounts: 2 instance(s) non-compliant"
    );
    for needle in [
        format!("Changes in member account(s): {a}, {b}."),
        format!("RunInstances in account {a} by arn:aws:iam::{a}:user/alice (event e-a)"),
        format!("{a_bad} (account {a}, us-east-1, running)"),
        format!("{own_bad} (us-east-1, running)"),
        format!("-> not judged: account {b} could not be read there (below)"),
        format!("- account {b} (every region): AssumeRole arn:aws:iam::{b}:role/{MEMBER_ROLE}"),
    ] {
        assert!(body.contains(&needle), "{needle} in:\n{body}");
    }

    // What the proxy saw: one AssumeRole per member, B's refused by its (missing) trust.
    let counters = proxy.counters();
    assert_eq!(
        counters.requests.get("sts:AssumeRole"),
        Some(&2),
        "{:?}",
        counters.requests
    );
    assert_eq!(
        counters.assume_role_denied.keys().collect::<Vec<_>>(),
        [&format!("arn:aws:iam::{b}:role/{MEMBER_ROLE}")]
    );
    let text = log_text(&log);
    assert!(
        text.lines()
            .any(|l| l.contains("member account not read") && l.contains(b)),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("record dropped") && l.contains("m-4")),
        "{text}"
    );
    // ScanErrors joins the event series, not the Stack-only one the failure alarm watches.
    let metrics = aws.metric_names(NAMESPACE).await;
    assert!(
        metrics.contains(&(
            "ScanErrors".to_string(),
            vec!["Stack=mev".to_string(), "Trigger=Event".to_string()]
        )),
        "{metrics:?}"
    );
    assert!(
        !metrics.contains(&("ScanErrors".to_string(), vec!["Stack=mev".to_string()])),
        "{metrics:?}"
    );

    // 2. A fixed in A: judged compliant with the cached credentials (no new AssumeRole), no
    //    alert. B alone: stored with its error, not a failure, asked again (a role may appear).
    let tag = |key: &str, value: &str| {
        aws_sdk_ec2::types::Tag::builder()
            .key(key)
            .value(value)
            .build()
    };
    a_ec2
        .create_tags()
        .resources(&a_bad)
        .tags(tag("Owner", "bo"))
        .tags(tag("CostCenter", "cc"))
        .send()
        .await
        .expect("tag in A");
    let before = event_keys(&aws, bucket).await;
    let fixed = from_account(
        &tag_change("e-a-fixed", &a_bad, &["Owner", "CostCenter"]),
        a,
    );
    let response = invoke(port, &batch(&[("m-6", fixed)])).expect("invoke");
    assert_eq!(failures(&response), Vec::<String>::new());
    let r = read_event(&aws, bucket, &new_key(&aws, bucket, &before).await).await;
    assert_eq!(r.scan.instances.len(), 1);
    assert_eq!(r.scan.instances[0].account_id, a);
    assert!(r.scan.instances[0].compliant);
    assert_eq!(
        proxy.counters().requests.get("sts:AssumeRole"),
        Some(&2),
        "A's credentials are cached across invocations"
    );
    assert_eq!(sent_notifications(&moto, &topic).len(), 1);

    let before = event_keys(&aws, bucket).await;
    let again = from_account(&tag_change("e-b-2", &b_bad, &["Owner"]), b);
    let response = invoke(port, &batch(&[("m-7", again)])).expect("invoke");
    assert_eq!(failures(&response), Vec::<String>::new());
    let r = read_event(&aws, bucket, &new_key(&aws, bucket, &before).await).await;
    assert_eq!(r.scan.summary.scanned, 0);
    assert_eq!(r.scan.errors.len(), 1);
    assert_eq!(r.events[0].judged, Vec::<String>::new());
    assert_eq!(proxy.counters().requests.get("sts:AssumeRole"), Some(&3));
    assert_eq!(
        sent_notifications(&moto, &topic).len(),
        1,
        "nothing found: no alert"
    );
    drop(function_guard);
    drop(emulator_guard);

    // 3. ORGANIZATION_ACCOUNTS: any other account is taken, and AssumeRole decides. C has no
    //    role: recorded like B, not dropped; A is judged.
    let (_emulator, port) = emulator();
    let (_f, _log) = function(
        &proxy.aws_env(),
        port,
        &[
            ("BUCKET_NAME", bucket),
            ("STACK_NAME", "mev-org"),
            ("METRIC_NAMESPACE", NAMESPACE),
            ("SCAN_REGIONS", "us-east-1"),
            ("ORGANIZATION_ACCOUNTS", "true"),
            ("MEMBER_EXTERNAL_ID", EXTERNAL_ID),
        ],
    );
    let before = event_keys(&aws, bucket).await;
    let payload = batch(&[
        ("m-8", from_account(&state_change("e-a-org", &a_bad), a)),
        (
            "m-9",
            from_account(&state_change("e-c-org", "i-0123456789abcdef0"), c),
        ),
    ]);
    let response = invoke(port, &payload).expect("invoke");
    assert_eq!(failures(&response), Vec::<String>::new());
    let r = read_event(&aws, bucket, &new_key(&aws, bucket, &before).await).await;
    assert_eq!(r.dropped, []);
    assert_eq!(r.scan.instances.len(), 1);
    assert_eq!(r.scan.instances[0].account_id, a);
    let errors: Vec<(&str, &str)> = r
        .scan
        .errors
        .iter()
        .map(|e| (e.account_id.as_str(), e.operation.as_str()))
        .collect();
    assert_eq!(errors, [(c, "AssumeRole")]);
}

/// The JSON of the heredoc `<<-PATTERN ... PATTERN` in `text` (`what` names the file).
fn heredoc_pattern(text: &str, what: &str) -> Value {
    let start = text
        .find("<<-PATTERN\n")
        .unwrap_or_else(|| panic!("no <<-PATTERN in {what}"))
        + "<<-PATTERN\n".len();
    let end = start
        + text[start..]
            .find("PATTERN")
            .unwrap_or_else(|| panic!("no closing PATTERN in {what}"));
    serde_json::from_str(&text[start..end]).unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Double-quoted literals of `text`, in order.
fn quoted(text: &str) -> Vec<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The stack's change rule's pattern, read from the provider's source (`pattern()` and the
/// `CLOUDTRAIL_CALLS` it names): the function's `json!` body is JSON but for that name.
fn provider_pattern() -> Value {
    let path = test_support::workspace_root().join("provider/src/aws/changes.rs");
    let source = std::fs::read_to_string(&path).expect("read changes.rs");
    let calls_at = source
        .find("pub const CLOUDTRAIL_CALLS")
        .expect("CLOUDTRAIL_CALLS in changes.rs");
    let calls = &source[calls_at..];
    let calls = &calls[calls.find('=').unwrap()..calls.find("];").unwrap()];
    let calls = serde_json::to_string(&quoted(calls)).unwrap();
    let body_at = source
        .find("pub fn pattern() -> Value {")
        .expect("pattern() in changes.rs");
    let body = &source[body_at..];
    let body = &body[body.find("json!(").unwrap() + "json!(".len()..body.find("\n}\n").unwrap()];
    let body = body.trim_end().strip_suffix(')').expect("json!( ... )");
    serde_json::from_str(&body.replace("CLOUDTRAIL_CALLS", &calls))
        .unwrap_or_else(|e| panic!("pattern() is no longer JSON but for CLOUDTRAIL_CALLS: {e}"))
}

/// What a member account forwards (the member-role module, and the rule docs/events.md shows)
/// is the stack's change rule's pattern, and the event mode reads every call it names.
#[test]
fn the_forwarding_rule_matches_the_change_rule() {
    let root = test_support::workspace_root();
    let expected = provider_pattern();
    for file in [
        "examples/terraform/member-role/forward_events.tf",
        "docs/events.md",
    ] {
        let text = std::fs::read_to_string(root.join(file)).expect(file);
        assert_eq!(heredoc_pattern(&text, file), expected, "{file}");
    }
    let names: Vec<&str> = expected["$or"][2]["detail"]["eventName"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(names, compliance_scanner::events::parse::API_CALLS);
    assert_eq!(
        expected["detail-type"],
        json!([
            compliance_scanner::events::parse::STATE_CHANGE,
            compliance_scanner::events::parse::TAG_CHANGE,
            compliance_scanner::events::parse::API_CALL
        ])
    );
    // The module forwards with a role, and only when asked.
    let module =
        std::fs::read_to_string(root.join("examples/terraform/member-role/forward_events.tf"))
            .expect("forward_events.tf");
    for needle in [
        "identifiers = [\"events.amazonaws.com\"]",
        "actions   = [\"events:PutEvents\"]",
        "resources = [var.monitor_event_bus_arn]",
        "role_arn       = aws_iam_role.forward_events[0].arn",
        "event_pattern  = local.change_pattern",
    ] {
        assert_eq!(module.matches(needle).count(), 1, "{needle}");
    }
    let resources = module.matches("\nresource \"").count();
    assert_eq!(
        module.matches("count = var.forward_events ? 1 : 0").count(),
        resources + module.matches("\ndata \"").count(),
        "every piece is made only with forward_events"
    );
    let variables =
        std::fs::read_to_string(root.join("examples/terraform/member-role/variables.tf"))
            .expect("variables.tf");
    let forward = &variables[variables
        .find("variable \"forward_events\"")
        .expect("forward_events")..];
    assert!(forward.contains("default     = false"), "{forward}");
}
