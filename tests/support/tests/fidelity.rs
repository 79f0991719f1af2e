//! The fidelity proxy against a real moto server, driven by the AWS SDK for Rust: each knob shows
//! the AWS behaviour it stands for, and the counters report it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_lambda::client::Waiters;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, LastUpdateStatus, Runtime, State};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, Delete, ObjectIdentifier, VersioningConfiguration,
};
use test_support::fidelity::{Counters, Fidelity, FidelityProxy};
use test_support::{Moto, REGION};

const TRUST_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// SDK configuration for the proxy: test credentials, `attempts` tries per call with short
/// back-off so retrying tests stay fast.
async fn sdk(proxy: &FidelityProxy, attempts: u32) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(proxy.endpoint())
        .region(Region::new(REGION))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(attempts)
                .with_initial_backoff(Duration::from_millis(5))
                .with_max_backoff(Duration::from_millis(50)),
        )
        .load()
        .await
}

fn s3(cfg: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(cfg)
            .force_path_style(true)
            .build(),
    )
}

/// A stored (uncompressed) zip holding one executable file `bootstrap`; moto keeps it, never runs it.
fn bootstrap_zip() -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let name = b"bootstrap";
    let data = b"#!/bin/sh\necho ok\n";
    let crc = crc32(data);
    let size = data.len() as u32;
    let mut zip = Vec::new();
    // Local file header: version 2.0, no flags, stored, 1980-01-01.
    zip.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
    zip.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]);
    for v in [crc, size, size] {
        zip.extend_from_slice(&v.to_le_bytes());
    }
    zip.extend_from_slice(&(name.len() as u16).to_le_bytes());
    zip.extend_from_slice(&0u16.to_le_bytes());
    zip.extend_from_slice(name);
    zip.extend_from_slice(data);
    let central = zip.len() as u32;
    // Central directory entry: made on Unix, mode 0755.
    zip.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
    zip.extend_from_slice(&[0x1e, 3, 20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]);
    for v in [crc, size, size] {
        zip.extend_from_slice(&v.to_le_bytes());
    }
    zip.extend_from_slice(&(name.len() as u16).to_le_bytes());
    zip.extend_from_slice(&[0; 8]); // extra, comment, disk, internal attributes
    zip.extend_from_slice(&(0o100_755u32 << 16).to_le_bytes());
    zip.extend_from_slice(&0u32.to_le_bytes()); // local header offset
    zip.extend_from_slice(name);
    let central_size = zip.len() as u32 - central;
    // End of central directory.
    zip.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    zip.extend_from_slice(&[0, 0, 0, 0, 1, 0, 1, 0]);
    zip.extend_from_slice(&central_size.to_le_bytes());
    zip.extend_from_slice(&central.to_le_bytes());
    zip.extend_from_slice(&0u16.to_le_bytes());
    zip
}

async fn create_role(iam: &aws_sdk_iam::Client, name: &str) -> String {
    iam.create_role()
        .role_name(name)
        .assume_role_policy_document(TRUST_POLICY)
        .send()
        .await
        .expect("CreateRole")
        .role()
        .expect("role")
        .arn()
        .to_string()
}

fn create_function(
    lambda: &aws_sdk_lambda::Client,
    name: &str,
    role: &str,
) -> aws_sdk_lambda::operation::create_function::builders::CreateFunctionFluentBuilder {
    lambda
        .create_function()
        .function_name(name)
        .role(role)
        .runtime(Runtime::Providedal2023)
        .handler("bootstrap")
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(bootstrap_zip()))
                .build(),
        )
}

/// One raw request signed for `service` (moto checks no signature), as a client of that protocol
/// sends it; returns the status and the body.
fn raw(
    proxy: &FidelityProxy,
    service: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", proxy.port())).expect("connect proxy");
    let mut request = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: AWS4-HMAC-SHA256 \
         Credential=testing/20250101/{REGION}/{service}/aws4_request, SignedHeaders=host, \
         Signature=00\r\nContent-Length: {}\r\nConnection: close\r\n",
        proxy.port(),
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, head.to_string(), body.to_string())
}

#[tokio::test]
async fn pass_through_counts_requests_by_kind_over_tls() {
    // Tests hold the proxy across awaits on multi-threaded runtimes.
    fn shareable<T: Send + Sync>() {}
    shareable::<FidelityProxy>();
    let moto = Moto::start_tls();
    assert!(moto.ca().is_some());
    let proxy = FidelityProxy::start(&moto, Fidelity::default());
    assert_eq!(
        proxy.endpoint(),
        format!("http://127.0.0.1:{}", proxy.port())
    );
    let env = proxy.aws_env();
    assert!(env.contains(&("AWS_ENDPOINT_URL".to_string(), proxy.endpoint())));
    let cfg = sdk(&proxy, 1).await;
    let s3 = s3(&cfg);
    s3.create_bucket()
        .bucket("counted")
        .send()
        .await
        .expect("CreateBucket");
    s3.put_object()
        .bucket("counted")
        .key("a.txt")
        .body(ByteStream::from_static(b"hello"))
        .send()
        .await
        .expect("PutObject");
    let got = s3
        .get_object()
        .bucket("counted")
        .key("a.txt")
        .send()
        .await
        .expect("GetObject");
    assert_eq!(
        got.body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .as_ref(),
        b"hello"
    );
    // (Not GetBucketVersioning: moto 5.2.5 answers it for a never-versioned bucket with a
    // `GetBucketVersioningResponse` root the SDK cannot read.)
    s3.list_object_versions()
        .bucket("counted")
        .send()
        .await
        .expect("ListObjectVersions");
    let iam = aws_sdk_iam::Client::new(&cfg);
    iam.list_roles().send().await.expect("ListRoles");
    let sts = aws_sdk_sts::Client::new(&cfg);
    let me = sts
        .get_caller_identity()
        .send()
        .await
        .expect("GetCallerIdentity");
    assert!(me.arn().is_some());
    let lambda = aws_sdk_lambda::Client::new(&cfg);
    lambda.list_functions().send().await.expect("ListFunctions");

    let c = proxy.counters();
    let expected: BTreeMap<String, u64> = [
        "s3:PUT /counted",
        "s3:PUT /counted/a.txt",
        "s3:GET /counted/a.txt",
        "s3:GET ?versions",
        "iam:ListRoles",
        "sts:GetCallerIdentity",
        "lambda:GET /2015-03-31/functions",
    ]
    .into_iter()
    .map(|k| (k.to_string(), 1))
    .collect();
    assert_eq!(c.requests, expected);
    assert_eq!(c.total_requests(), 7);
    assert_eq!(
        c.owner_not_expected,
        BTreeMap::from([("counted".to_string(), 4)]),
        "each request on the bucket, none with an expected owner"
    );
    assert_eq!(
        Counters {
            requests: BTreeMap::new(),
            owner_not_expected: BTreeMap::new(),
            ..c.clone()
        },
        Counters::default(),
        "a pass-through does nothing but count"
    );
    proxy.reset_counters();
    assert_eq!(proxy.counters(), Counters::default());
}

#[tokio::test]
async fn new_roles_are_refused_until_propagated() {
    let moto = Moto::start();
    let propagation = Duration::from_millis(1000);
    let proxy = FidelityProxy::start(
        &moto,
        Fidelity {
            iam_propagation: propagation,
            ..Fidelity::default()
        },
    );
    let cfg = sdk(&proxy, 1).await;
    let iam = aws_sdk_iam::Client::new(&cfg);
    let lambda = aws_sdk_lambda::Client::new(&cfg);
    let sts = aws_sdk_sts::Client::new(&cfg);

    let role = create_role(&iam, "young").await;
    let made = Instant::now();
    let err = create_function(&lambda, "f", &role)
        .send()
        .await
        .expect_err("a role made just now is not yet usable by Lambda");
    let service = err.into_service_error();
    assert!(
        service.is_invalid_parameter_value_exception(),
        "{service:?}"
    );
    assert_eq!(
        service.message(),
        Some("The role defined for the function cannot be assumed by Lambda.")
    );
    let err = sts
        .assume_role()
        .role_arn(&role)
        .role_session_name("s")
        .send()
        .await
        .expect_err("AssumeRole on a role still propagating");
    assert_eq!(err.code(), Some("AccessDenied"), "{err:?}");
    // The refusal came from the proxy: moto never saw the function.
    let missing = lambda.get_function().function_name("f").send().await;
    assert!(missing
        .expect_err("not created")
        .into_service_error()
        .is_resource_not_found_exception());

    tokio::time::sleep(
        (made + propagation + Duration::from_millis(50)).saturating_duration_since(Instant::now()),
    )
    .await;
    create_function(&lambda, "f", &role)
        .send()
        .await
        .expect("CreateFunction once the role has propagated");
    sts.assume_role()
        .role_arn(&role)
        .role_session_name("s")
        .send()
        .await
        .expect("AssumeRole once propagated");

    // A configuration update naming a role made just now is refused the same way.
    let other = create_role(&iam, "younger").await;
    let err = lambda
        .update_function_configuration()
        .function_name("f")
        .role(&other)
        .send()
        .await
        .expect_err("update to a young role");
    assert!(err
        .into_service_error()
        .is_invalid_parameter_value_exception());
    let c = proxy.counters();
    assert_eq!(c.role_not_ready, 3);
    assert_eq!(c.requests["lambda:POST /2015-03-31/functions"], 2);
    assert_eq!(c.requests["sts:AssumeRole"], 2);
}

#[tokio::test]
async fn functions_are_pending_then_active_and_updates_conflict() {
    let moto = Moto::start();
    let proxy = FidelityProxy::start(
        &moto,
        Fidelity {
            lambda_pending: Duration::from_millis(1500),
            lambda_update: Duration::from_millis(1200),
            ..Fidelity::default()
        },
    );
    let cfg = sdk(&proxy, 1).await;
    let iam = aws_sdk_iam::Client::new(&cfg);
    let lambda = aws_sdk_lambda::Client::new(&cfg);
    let role = create_role(&iam, "runner").await;

    let made = create_function(&lambda, "slow", &role)
        .send()
        .await
        .expect("CreateFunction");
    assert_eq!(made.state(), Some(&State::Pending));
    assert_eq!(
        made.state_reason_code().map(|c| c.as_str()),
        Some("Creating")
    );
    assert_eq!(
        made.last_update_status(),
        Some(&LastUpdateStatus::InProgress)
    );
    let got = lambda
        .get_function()
        .function_name("slow")
        .send()
        .await
        .expect("GetFunction");
    let config = got.configuration().expect("configuration");
    assert_eq!(config.state(), Some(&State::Pending));

    let err = lambda
        .update_function_configuration()
        .function_name("slow")
        .memory_size(256)
        .send()
        .await
        .expect_err("update while Pending");
    let raw_status = err.raw_response().map(|r| r.status().as_u16());
    assert_eq!(raw_status, Some(409));
    assert!(err.into_service_error().is_resource_conflict_exception());

    lambda
        .wait_until_function_active_v2()
        .function_name("slow")
        .wait(Duration::from_secs(10))
        .await
        .expect("the SDK waiter sees the function become Active");
    let got = lambda
        .get_function()
        .function_name("slow")
        .send()
        .await
        .expect("GetFunction");
    let config = got.configuration().expect("configuration");
    assert_eq!(config.state(), Some(&State::Active));
    assert_eq!(
        config.last_update_status(),
        Some(&LastUpdateStatus::Successful)
    );
    assert_eq!(config.state_reason(), None);

    let updated = lambda
        .update_function_configuration()
        .function_name("slow")
        .memory_size(256)
        .send()
        .await
        .expect("update once Active");
    assert_eq!(
        updated.last_update_status(),
        Some(&LastUpdateStatus::InProgress)
    );
    assert_eq!(updated.memory_size(), Some(256), "moto applied the update");
    // The function's ARN names it as well as its name does.
    let arn = updated.function_arn().expect("arn").to_string();
    let err = lambda
        .update_function_code()
        .function_name(&arn)
        .zip_file(Blob::new(bootstrap_zip()))
        .send()
        .await
        .expect_err("code update while the configuration update is in progress");
    let service = err.into_service_error();
    assert!(service.is_resource_conflict_exception());
    assert_eq!(
        service.message().map(str::to_string),
        Some(format!(
            "The operation cannot be performed at this time. An update is in progress for resource: {arn}"
        ))
    );
    let config = lambda
        .get_function_configuration()
        .function_name("slow")
        .send()
        .await
        .expect("GetFunctionConfiguration");
    assert_eq!(
        config.last_update_status(),
        Some(&LastUpdateStatus::InProgress)
    );
    assert_eq!(config.state(), Some(&State::Active));

    lambda
        .wait_until_function_updated_v2()
        .function_name("slow")
        .wait(Duration::from_secs(10))
        .await
        .expect("the SDK waiter sees the update succeed");
    lambda
        .update_function_code()
        .function_name("slow")
        .zip_file(Blob::new(bootstrap_zip()))
        .send()
        .await
        .expect("code update once the last one is done");
    lambda
        .delete_function()
        .function_name("slow")
        .send()
        .await
        .expect("DeleteFunction");

    let c = proxy.counters();
    assert_eq!(c.lambda_conflicts, 2);
    // GetFunction while Pending, GetFunctionConfiguration while InProgress, and whatever the
    // waiters polled before the windows ended.
    assert!(c.lambda_not_ready_reads >= 2, "{c:?}");
    assert_eq!(c.requests["lambda:PUT /2015-03-31/functions/*"], 4);
}

#[tokio::test]
async fn throttling_answers_in_each_protocol() {
    let moto = Moto::start();
    let proxy = FidelityProxy::start(
        &moto,
        Fidelity {
            throttle: BTreeMap::from([("*".to_string(), 1.0)]),
            ..Fidelity::default()
        },
    );
    let cfg = sdk(&proxy, 1).await;
    let err = s3(&cfg)
        .create_bucket()
        .bucket("never")
        .send()
        .await
        .expect_err("throttled");
    assert_eq!(err.code(), Some("SlowDown"));
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(503));
    let err = aws_sdk_iam::Client::new(&cfg)
        .list_roles()
        .send()
        .await
        .expect_err("throttled");
    assert_eq!(err.code(), Some("Throttling"));
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
    let err = aws_sdk_sts::Client::new(&cfg)
        .get_caller_identity()
        .send()
        .await
        .expect_err("throttled");
    assert_eq!(err.code(), Some("Throttling"));
    let err = aws_sdk_lambda::Client::new(&cfg)
        .list_functions()
        .send()
        .await
        .expect_err("throttled");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(429));
    assert!(err.into_service_error().is_too_many_requests_exception());

    // Protocols without an SDK client here, as their clients send them.
    let (status, _, body) = raw(
        &proxy,
        "ec2",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        "Action=DescribeInstances&Version=2016-11-15",
    );
    assert_eq!(status, 503);
    assert!(
        body.contains(
            "<Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message>"
        ),
        "{body}"
    );
    let (status, head, body) = raw(
        &proxy,
        "logs",
        &[
            ("X-Amz-Target", "Logs_20140328.DescribeLogGroups"),
            ("Content-Type", "application/x-amz-json-1.1"),
        ],
        "{}",
    );
    assert_eq!(status, 400);
    assert!(
        head.contains("Content-Type: application/x-amz-json-1.1"),
        "{head}"
    );
    assert_eq!(
        body,
        r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#
    );
    let (status, _, body) = raw(
        &proxy,
        "events",
        &[
            ("X-Amz-Target", "AWSEvents.ListRules"),
            ("Content-Type", "application/x-amz-json-1.1"),
        ],
        "{}",
    );
    assert_eq!((status, body.contains("ThrottlingException")), (400, true));
    for service in ["monitoring", "sns"] {
        let (status, _, body) = raw(
            &proxy,
            service,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            "Action=ListThings&Version=2010-08-01",
        );
        assert_eq!(status, 400);
        assert!(
            body.starts_with("<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>"),
            "{service}: {body}"
        );
    }

    let c = proxy.counters();
    let services: BTreeSet<&str> = c.throttled.keys().map(String::as_str).collect();
    assert_eq!(
        services,
        BTreeSet::from([
            "s3",
            "iam",
            "sts",
            "lambda",
            "ec2",
            "logs",
            "events",
            "monitoring",
            "sns"
        ])
    );
    assert_eq!(c.total_throttled(), c.total_requests());
    assert_eq!(c.requests["logs:DescribeLogGroups"], 1);

    // Reconfigured live: nothing throttled now, and the throttled CreateBucket never reached moto.
    proxy.set(Fidelity::default());
    let err = s3(&cfg)
        .head_bucket()
        .bucket("never")
        .send()
        .await
        .expect_err("absent");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404));
}

#[tokio::test]
async fn a_retrying_client_gets_through_partial_throttling() {
    let moto = Moto::start();
    let proxy = FidelityProxy::start(
        &moto,
        Fidelity {
            seed: 42,
            throttle: BTreeMap::from([("*".to_string(), 0.3)]),
            ..Fidelity::default()
        },
    );
    let cfg = sdk(&proxy, 10).await;
    let s3 = s3(&cfg);
    let iam = aws_sdk_iam::Client::new(&cfg);
    let lambda = aws_sdk_lambda::Client::new(&cfg);
    s3.create_bucket()
        .bucket("busy")
        .send()
        .await
        .expect("CreateBucket");
    for i in 0..15 {
        s3.put_object()
            .bucket("busy")
            .key(format!("k{i}"))
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .expect("PutObject gets through");
        iam.list_roles()
            .send()
            .await
            .expect("ListRoles gets through");
        lambda
            .list_functions()
            .send()
            .await
            .expect("ListFunctions gets through");
    }
    let listed = s3
        .list_objects_v2()
        .bucket("busy")
        .send()
        .await
        .expect("list");
    assert_eq!(listed.key_count(), Some(15));
    let c = proxy.counters();
    assert!(c.total_throttled() > 0, "{c:?}");
    // Every throttled call was tried again until it succeeded.
    assert_eq!(
        c.total_requests(),
        1 + 45 + 1 + c.total_throttled(),
        "{c:?}"
    );
}

#[tokio::test]
async fn buckets_of_another_account() {
    let moto = Moto::start();
    let proxy = FidelityProxy::start(
        &moto,
        Fidelity {
            foreign_buckets: BTreeSet::from(["taken".to_string()]),
            ..Fidelity::default()
        },
    );
    let cfg = sdk(&proxy, 1).await;
    let s3 = s3(&cfg);
    let err = s3
        .create_bucket()
        .bucket("taken")
        .send()
        .await
        .expect_err("taken");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(409));
    let service = err.into_service_error();
    assert!(service.is_bucket_already_exists(), "{service:?}");
    let err = s3
        .head_bucket()
        .bucket("taken")
        .send()
        .await
        .expect_err("not ours");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
    let err = s3
        .put_object()
        .bucket("taken")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("not ours");
    assert_eq!(err.code(), Some("AccessDenied"));
    let err = s3
        .get_bucket_versioning()
        .bucket("taken")
        .send()
        .await
        .expect_err("not ours");
    assert_eq!(err.code(), Some("AccessDenied"));
    // Our own buckets are untouched.
    s3.create_bucket()
        .bucket("mine")
        .send()
        .await
        .expect("CreateBucket");
    s3.head_bucket()
        .bucket("mine")
        .send()
        .await
        .expect("HeadBucket");
    assert_eq!(proxy.counters().bucket_taken, 4);

    // The name never reached moto.
    proxy.set(Fidelity::default());
    let err = s3
        .head_bucket()
        .bucket("taken")
        .send()
        .await
        .expect_err("absent");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404));
}

#[tokio::test]
async fn an_expected_owner_other_than_the_buckets_is_refused() {
    let moto = Moto::start();
    let proxy = FidelityProxy::start(
        &moto,
        Fidelity {
            bucket_owners: BTreeMap::from([
                ("mine".to_string(), "123456789012".to_string()),
                ("theirs".to_string(), "111122223333".to_string()),
            ]),
            ..Fidelity::default()
        },
    );
    let cfg = sdk(&proxy, 1).await;
    let s3 = s3(&cfg);
    for bucket in ["mine", "theirs"] {
        s3.create_bucket()
            .bucket(bucket)
            .send()
            .await
            .expect("CreateBucket");
    }
    let me = Some("123456789012".to_string());

    // The owner named: served.
    s3.put_object()
        .bucket("mine")
        .key("k")
        .set_expected_bucket_owner(me.clone())
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("PutObject");
    s3.head_object()
        .bucket("mine")
        .key("k")
        .set_expected_bucket_owner(me.clone())
        .send()
        .await
        .expect("HeadObject");

    // Another owner named: 403 AccessDenied, HEAD without a body, nothing forwarded.
    let err = s3
        .put_object()
        .bucket("theirs")
        .key("refused")
        .set_expected_bucket_owner(me.clone())
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("not the owner");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
    assert_eq!(err.code(), Some("AccessDenied"));
    assert_eq!(err.message(), Some("Access Denied"));
    let err = s3
        .list_objects_v2()
        .bucket("theirs")
        .set_expected_bucket_owner(me.clone())
        .send()
        .await
        .expect_err("not the owner");
    assert_eq!(err.code(), Some("AccessDenied"));
    let err = s3
        .head_bucket()
        .bucket("theirs")
        .set_expected_bucket_owner(me.clone())
        .send()
        .await
        .expect_err("not the owner");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));

    // Its real owner named, or none: S3 checks only when asked.
    for owner in [Some("111122223333".to_string()), None] {
        s3.put_object()
            .bucket("theirs")
            .key("k")
            .set_expected_bucket_owner(owner)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .expect("PutObject");
    }
    let listed = s3
        .list_objects_v2()
        .bucket("theirs")
        .send()
        .await
        .expect("ListObjectsV2");
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["k"], "the refused PutObject never reached moto");

    let c = proxy.counters();
    assert_eq!(c.wrong_owner, 3, "{c:?}");
    assert_eq!(
        c.owner_expected,
        BTreeMap::from([("mine".to_string(), 2), ("theirs".to_string(), 4)])
    );
    assert_eq!(
        c.owner_not_expected,
        BTreeMap::from([("mine".to_string(), 1), ("theirs".to_string(), 3)])
    );
}

#[tokio::test]
async fn delete_objects_reports_keys_it_could_not_delete() {
    let moto = Moto::start_tls();
    let proxy = FidelityProxy::start(
        &moto,
        Fidelity {
            undeletable_prefixes: vec!["locked/".to_string(), "r&d/".to_string()],
            ..Fidelity::default()
        },
    );
    let cfg = sdk(&proxy, 1).await;
    let s3 = s3(&cfg);
    s3.create_bucket()
        .bucket("kept")
        .send()
        .await
        .expect("CreateBucket");
    s3.put_bucket_versioning()
        .bucket("kept")
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("versioning");
    let mut versions = BTreeMap::new();
    for key in ["locked/a.txt", "r&d/<plan>.txt", "free/b.txt"] {
        let put = s3
            .put_object()
            .bucket("kept")
            .key(key)
            .body(ByteStream::from_static(b"data"))
            .send()
            .await
            .expect("PutObject");
        versions.insert(key, put.version_id().expect("version").to_string());
    }
    let object = |key: &str, version: Option<&str>| {
        ObjectIdentifier::builder()
            .key(key)
            .set_version_id(version.map(str::to_string))
            .build()
            .expect("object")
    };
    let delete = Delete::builder()
        .objects(object("locked/a.txt", Some(&versions["locked/a.txt"])))
        .objects(object("r&d/<plan>.txt", None))
        .objects(object("free/b.txt", None))
        .build()
        .expect("delete");
    let out = s3
        .delete_objects()
        .bucket("kept")
        .delete(delete)
        .send()
        .await
        .expect("DeleteObjects answers 200 even when keys fail");
    let deleted: Vec<&str> = out.deleted().iter().filter_map(|d| d.key()).collect();
    assert_eq!(deleted, ["free/b.txt"]);
    let mut errors: Vec<(&str, Option<&str>, &str, &str)> = out
        .errors()
        .iter()
        .map(|e| {
            (
                e.key().unwrap_or_default(),
                e.version_id(),
                e.code().unwrap_or_default(),
                e.message().unwrap_or_default(),
            )
        })
        .collect();
    errors.sort();
    assert_eq!(
        errors,
        [
            (
                "locked/a.txt",
                Some(versions["locked/a.txt"].as_str()),
                "AccessDenied",
                "Access Denied"
            ),
            ("r&d/<plan>.txt", None, "AccessDenied", "Access Denied"),
        ]
    );
    // The refused keys are still there; the free one is gone.
    s3.get_object()
        .bucket("kept")
        .key("locked/a.txt")
        .version_id(&versions["locked/a.txt"])
        .send()
        .await
        .expect("locked version kept");
    s3.head_object()
        .bucket("kept")
        .key("r&d/<plan>.txt")
        .send()
        .await
        .expect("kept");
    let gone = s3
        .head_object()
        .bucket("kept")
        .key("free/b.txt")
        .send()
        .await;
    assert!(gone.is_err(), "free/b.txt was deleted");

    // Only refused keys: the answer is the errors alone.
    let delete = Delete::builder()
        .objects(object("locked/a.txt", None))
        .objects(object("r&d/<plan>.txt", None))
        .build()
        .expect("delete");
    let out = s3
        .delete_objects()
        .bucket("kept")
        .delete(delete)
        .send()
        .await
        .expect("200");
    assert!(out.deleted().is_empty());
    assert_eq!(out.errors().len(), 2);
    s3.head_object()
        .bucket("kept")
        .key("locked/a.txt")
        .send()
        .await
        .expect("kept");
    assert_eq!(proxy.counters().undeletable, 4);
}

#[tokio::test]
async fn dropped_answers_are_retried_by_the_client() {
    let moto = Moto::start_tls();
    let proxy = FidelityProxy::start(
        &moto,
        Fidelity {
            seed: 3,
            drop_answers: 0.3,
            latency: Duration::from_millis(2),
            ..Fidelity::default()
        },
    );
    let cfg = sdk(&proxy, 10).await;
    let s3 = s3(&cfg);
    s3.create_bucket()
        .bucket("lossy")
        .send()
        .await
        .expect("CreateBucket");
    for i in 0..12 {
        let body = format!("body {i}");
        s3.put_object()
            .bucket("lossy")
            .key(format!("k{i}"))
            .body(ByteStream::from(body.clone().into_bytes()))
            .send()
            .await
            .expect("PutObject gets through");
        let got = s3
            .get_object()
            .bucket("lossy")
            .key(format!("k{i}"))
            .send()
            .await
            .expect("GetObject gets through");
        let bytes = got.body.collect().await.expect("body").into_bytes();
        assert_eq!(bytes.as_ref(), body.as_bytes());
    }
    let c = proxy.counters();
    assert!(c.dropped > 0, "{c:?}");
    // Each lost answer cost one more request.
    assert_eq!(c.total_requests(), 1 + 24 + c.dropped, "{c:?}");
}

/// SDK configuration for the proxy with the credentials an AssumeRole answer issued.
async fn sdk_as(
    proxy: &FidelityProxy,
    region: &str,
    creds: &aws_sdk_sts::types::Credentials,
) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(proxy.endpoint())
        .region(Region::new(region.to_string()))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            creds.access_key_id(),
            creds.secret_access_key(),
            Some(creds.session_token().to_string()),
            None,
            "assumed",
        ))
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .load()
        .await
}

fn regions_of(
    out: &aws_sdk_ec2::operation::describe_regions::DescribeRegionsOutput,
) -> BTreeMap<String, String> {
    out.regions()
        .iter()
        .map(|r| {
            (
                r.region_name().unwrap_or_default().to_string(),
                r.opt_in_status().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_region_not_enabled_in_an_account_refuses_ec2_and_reads_not_opted_in() {
    let moto = Moto::start();
    let proxy = FidelityProxy::start(&moto, Fidelity::default());
    let cfg = sdk(&proxy, 1).await;
    // Keys of a member account, as moto issues them for any role ARN there.
    let member = aws_sdk_sts::Client::new(&cfg)
        .assume_role()
        .role_arn("arn:aws:iam::222222222222:role/Bootstrap")
        .role_session_name("knob")
        .send()
        .await
        .expect("AssumeRole")
        .credentials
        .expect("credentials");
    proxy.set(Fidelity {
        disabled_regions: BTreeMap::from([(
            "222222222222".to_string(),
            BTreeSet::from(["eu-west-1".to_string()]),
        )]),
        ..Fidelity::default()
    });
    let member_west = aws_sdk_ec2::Client::new(&sdk_as(&proxy, "eu-west-1", &member).await);
    let err = member_west
        .describe_instances()
        .send()
        .await
        .expect_err("eu-west-1 is not enabled in 222222222222");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(401));
    assert_eq!(err.code(), Some("AuthFailure"));
    assert_eq!(
        err.message(),
        Some("AWS was not able to validate the provided access credentials")
    );
    // The same region in the caller's own account, and another region of the member: served.
    let own_west = aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(&cfg)
            .region(Region::new("eu-west-1"))
            .build(),
    );
    own_west
        .describe_instances()
        .send()
        .await
        .expect("own eu-west-1");
    let member_east = aws_sdk_ec2::Client::new(&sdk_as(&proxy, REGION, &member).await);
    member_east
        .describe_security_groups()
        .send()
        .await
        .expect("member us-east-1");

    // DescribeRegions as EC2 answers it: enabled Regions of the partition only, unless AllRegions.
    let enabled = regions_of(
        &member_east
            .describe_regions()
            .send()
            .await
            .expect("regions"),
    );
    assert!(
        enabled.contains_key("us-east-1") && !enabled.contains_key("eu-west-1"),
        "{enabled:?}"
    );
    assert!(enabled.values().all(|s| s != "not-opted-in"), "{enabled:?}");
    assert!(
        enabled
            .keys()
            .all(|r| !r.starts_with("cn-") && !r.starts_with("us-gov-")),
        "{enabled:?}"
    );
    let all = regions_of(
        &member_east
            .describe_regions()
            .all_regions(true)
            .send()
            .await
            .expect("all regions"),
    );
    assert_eq!(
        all.get("eu-west-1").map(String::as_str),
        Some("not-opted-in")
    );
    assert_eq!(
        all.get("us-east-1").map(String::as_str),
        Some("opt-in-not-required")
    );
    let own = regions_of(
        &aws_sdk_ec2::Client::new(&cfg)
            .describe_regions()
            .send()
            .await
            .expect("own regions"),
    );
    assert_eq!(
        own.get("eu-west-1").map(String::as_str),
        Some("opt-in-not-required")
    );

    let c = proxy.counters();
    assert_eq!(
        c.region_not_enabled,
        BTreeMap::from([("222222222222/eu-west-1".to_string(), 1)]),
        "{c:?}"
    );
    assert_eq!(c.requests.get("ec2:DescribeInstances"), Some(&2));
}

#[tokio::test]
async fn assume_role_follows_the_roles_trust_policy() {
    let moto = Moto::start();
    let proxy = FidelityProxy::start(&moto, Fidelity::default());
    let cfg = sdk(&proxy, 1).await;
    let sts = aws_sdk_sts::Client::new(&cfg);
    // Into the member account (moto lets any role be assumed while the knob is off), then make
    // the member role there: it trusts the caller's account with an external id.
    let member = sts
        .assume_role()
        .role_arn("arn:aws:iam::222222222222:role/OrganizationAccountAccessRole")
        .role_session_name("setup")
        .send()
        .await
        .expect("AssumeRole while the knob is off")
        .credentials
        .expect("credentials");
    let iam = aws_sdk_iam::Client::new(&sdk_as(&proxy, REGION, &member).await);
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole","Condition":{"StringEquals":{"sts:ExternalId":"ext-1"}}}]}"#;
    let arn = iam
        .create_role()
        .role_name("ComplianceScannerMember")
        .assume_role_policy_document(trust)
        .send()
        .await
        .expect("CreateRole")
        .role()
        .expect("role")
        .arn()
        .to_string();
    assert_eq!(
        arn,
        "arn:aws:iam::222222222222:role/ComplianceScannerMember"
    );
    proxy.set(Fidelity {
        trust_policies: true,
        ..Fidelity::default()
    });
    let assume = |arn: &str, external: Option<&str>| {
        sts.assume_role()
            .role_arn(arn)
            .role_session_name("scan")
            .set_external_id(external.map(str::to_string))
            .send()
    };
    let creds = assume(&arn, Some("ext-1"))
        .await
        .expect("the trusted caller with the external id")
        .credentials
        .expect("credentials");
    // The keys work in the member account.
    aws_sdk_ec2::Client::new(&sdk_as(&proxy, REGION, &creds).await)
        .describe_instances()
        .send()
        .await
        .expect("member fleet");
    let missing = "arn:aws:iam::333333333333:role/ComplianceScannerMember";
    for (role, external) in [
        (arn.as_str(), None),
        (arn.as_str(), Some("wrong")),
        (missing, Some("ext-1")),
    ] {
        let err = assume(role, external).await.expect_err("refused");
        assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
        assert_eq!(err.code(), Some("AccessDenied"), "{role} {external:?}");
        assert_eq!(
            err.message(),
            Some(
                format!(
                    "User: arn:aws:iam::123456789012:user/moto is not authorized to perform: \
                     sts:AssumeRole on resource: {role}"
                )
                .as_str()
            )
        );
    }
    // Deleted, it is gone.
    iam.delete_role()
        .role_name("ComplianceScannerMember")
        .send()
        .await
        .expect("DeleteRole");
    assert!(assume(&arn, Some("ext-1")).await.is_err());
    let c = proxy.counters();
    assert_eq!(
        c.assume_role_denied,
        BTreeMap::from([(arn.clone(), 3), (missing.to_string(), 1)]),
        "{c:?}"
    );
}

#[tokio::test]
async fn throttling_by_request_kind_leaves_the_service_s_other_calls_alone() {
    let moto = Moto::start();
    let proxy = FidelityProxy::start(
        &moto,
        Fidelity {
            throttle: BTreeMap::from([("s3:PUT /kinds/slow/*".to_string(), 1.0)]),
            ..Fidelity::default()
        },
    );
    let cfg = sdk(&proxy, 2).await;
    let s3 = s3(&cfg);
    s3.create_bucket()
        .bucket("kinds")
        .send()
        .await
        .expect("CreateBucket");
    let err = s3
        .put_object()
        .bucket("kinds")
        .key("slow/k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("that kind is throttled");
    assert_eq!(err.code(), Some("SlowDown"));
    s3.put_object()
        .bucket("kinds")
        .key("fast")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("another kind of the same service");
    s3.list_objects_v2()
        .bucket("kinds")
        .send()
        .await
        .expect("ListObjectsV2");
    let c = proxy.counters();
    assert_eq!(c.throttled.get("s3"), Some(&2), "{c:?}");
    assert_eq!(c.requests.get("s3:PUT /kinds/slow/*"), Some(&2));
}
