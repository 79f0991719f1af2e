//! The Lambda path: the real built binary served through cargo-lambda's runtime API emulator
//! (`cargo lambda watch --only-lambda-apis`), invoked with `cargo lambda invoke`, against moto.

mod common;

use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use test_support::{free_port, venv_tool, Moto};

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

/// Starts the real scanner binary as the function behind the emulator.
fn function(moto: &Moto, port: u16, env: &[(&str, &str)]) -> Killed {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_compliance-scanner"));
    moto.configure(&mut cmd);
    cmd.env(
        "AWS_LAMBDA_RUNTIME_API",
        format!("http://127.0.0.1:{port}/.rt"),
    )
    .env("AWS_LAMBDA_FUNCTION_NAME", "_")
    .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
    .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
    .env_remove("SCAN_REGIONS")
    .env_remove("REQUIRED_TAGS")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Killed(
        cmd.spawn()
            .expect("start compliance-scanner as a Lambda function"),
    )
}

fn invoke(port: u16) -> Output {
    Command::new(venv_tool("cargo-lambda"))
        .args(["lambda", "invoke", "--invoke-address", "127.0.0.1"])
        .args(["--invoke-port", &port.to_string()])
        .args([
            "--data-ascii",
            r#"{"source":"aws.events","detail-type":"Scheduled Event"}"#,
        ])
        .args(["--output-format", "json"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo lambda invoke")
}

#[tokio::test(flavor = "multi_thread")]
async fn one_scan_per_invocation_through_the_runtime_api() {
    let moto = Moto::start();
    let aws = Aws::new(&moto).await;
    let topic = aws
        .stack("compliance-results-fn", "compliance-alerts-fn")
        .await;
    let image = image_id(&aws.ec2).await;
    launch(
        &aws.ec2,
        &image,
        None,
        &[],
        &[("Environment", "dev"), ("Owner", "o"), ("CostCenter", "c")],
        2,
    )
    .await;
    let bad = launch(&aws.ec2, &image, None, &[], &[("Environment", "dev")], 1)
        .await
        .remove(0);

    let (_emulator, port) = emulator();
    let settings = [
        ("BUCKET_NAME", "compliance-results-fn"),
        ("TOPIC_ARN", topic.as_str()),
        ("STACK_NAME", "fn"),
        ("METRIC_NAMESPACE", "ComplianceMonitoring"),
    ];
    let f = function(&moto, port, &settings);

    let out = invoke(port);
    assert!(
        out.status.success(),
        "invoke failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let response: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(response["scanned"], 3);
    assert_eq!(response["non_compliant"], 1);
    assert_eq!(response["alert_sent"], true);
    let first_key = response["result_key"]
        .as_str()
        .expect("result_key")
        .to_string();

    // A second invocation is a second scan by the same process.
    std::thread::sleep(Duration::from_millis(5));
    let again = invoke(port);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let second: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_ne!(second["result_key"], first_key.as_str());
    assert_eq!(
        second["api_calls"]["EC2:DescribeInstances"], 1,
        "counters are per invocation"
    );

    let keys = aws.scan_keys("compliance-results-fn").await;
    assert_eq!(keys.len(), 2);
    let result = aws.read_result("compliance-results-fn", &first_key).await;
    let judged = result
        .instances
        .iter()
        .find(|i| i.instance_id == bad)
        .unwrap();
    assert_eq!(judged.missing_tags, ["Owner", "CostCenter"]);
    assert_eq!(sent_notifications(&moto, &topic).len(), 2);
    assert_eq!(
        aws.metric_value("ComplianceMonitoring", "CompliancePercentage", "fn")
            .await
            .map(|v| v.round()),
        Some(67.0)
    );
    drop(f);

    // The same function with a topic that does not exist: the invocation fails, the result stays.
    let _f = function(
        &moto,
        port,
        &[
            ("BUCKET_NAME", "compliance-results-fn"),
            ("TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:gone"),
            ("STACK_NAME", "fn"),
        ],
    );
    let failed = invoke(port);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&failed.stdout),
        String::from_utf8_lossy(&failed.stderr)
    );
    assert!(!failed.status.success(), "the invocation must fail: {text}");
    // cargo-lambda wraps long error lines, so check the pieces.
    assert!(
        text.contains("result stored at s3://compliance-results-fn/"),
        "{text}"
    );
    assert!(text.contains(":gone"), "{text}");
    assert_eq!(aws.scan_keys("compliance-results-fn").await.len(), 3);
}
