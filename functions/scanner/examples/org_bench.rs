//! Benchmark: one organisation-wide scan at scale. The synthetic EC2 and STS endpoint
//! (`test_support::synthetic_ec2`) makes up the fleet of every (account, region) on the fly; S3,
//! SNS and CloudWatch are a real moto server. The real `compliance-scanner` binary runs as a child
//! process, measured with `wait4`: wall time, CPU time, peak RSS; the API calls are the scanner's
//! own count; the stored result is read back and checked against the fleet's totals.
//!
//! Run: `cargo build --workspace --all-targets && target/debug/examples/org_bench`
//! Environment: `BENCH_ACCOUNTS` (default 50), `BENCH_REGIONS` (4), `BENCH_INSTANCES` (per account
//! and region, terminated ones included; 500), `BENCH_GROUPS` (per account and region; 50),
//! `BENCH_LATENCY_MS` (added to every EC2 answer; 0), `BENCH_CONCURRENCY` (8), `SCANNER_BIN` (the
//! scanner to measure; default the dev build beside this example, the Lambda build is
//! `target/lambda-bin/compliance-scanner/bootstrap` after `cargo xtask lambda`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use test_support::synthetic_ec2::{SyntheticEc2, SyntheticFleet};
use test_support::Moto;

const BUCKET: &str = "compliance-results-orgbench";
const REGIONS: [&str; 8] = [
    "us-east-1",
    "eu-west-1",
    "ap-southeast-2",
    "us-west-2",
    "eu-central-1",
    "ap-northeast-1",
    "sa-east-1",
    "ca-central-1",
];

fn var(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let accounts = var("BENCH_ACCOUNTS", 50) as usize;
    let regions = (var("BENCH_REGIONS", 4) as usize).clamp(1, REGIONS.len());
    let instances = var("BENCH_INSTANCES", 500);
    let groups = var("BENCH_GROUPS", 50);
    let latency = Duration::from_millis(var("BENCH_LATENCY_MS", 0));
    let concurrency = var("BENCH_CONCURRENCY", 8);
    let scanner = scanner_binary();
    println!("scanner measured: {}", scanner.display());

    let ids = SyntheticFleet::account_ids(accounts);
    let region_list: Vec<String> = REGIONS[..regions].iter().map(|r| r.to_string()).collect();
    let mut fleet = SyntheticFleet::new(ids.clone(), region_list.clone());
    fleet.instances_per_region = instances;
    fleet.groups_per_region = groups;
    fleet.latency = latency;
    let totals = fleet.totals();
    let ec2 = SyntheticEc2::start(fleet);
    let moto = Moto::start();
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let topic = rt.block_on(stack(&moto));
    println!(
        "fleet: {accounts} accounts x {regions} regions x {instances} instances ({} scanned, {} \
         groups), EC2 latency {} ms, concurrency {concurrency}",
        totals.scanned,
        totals.groups,
        latency.as_millis()
    );

    let mut cmd = Command::new(&scanner);
    cmd.arg("scan")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .envs(moto.aws_env())
        .envs(ec2.service_env())
        .env("BUCKET_NAME", BUCKET)
        .env("TOPIC_ARN", &topic)
        .env("STACK_NAME", "orgbench")
        .env("SCAN_REGIONS", region_list.join(","))
        .env("MEMBER_ACCOUNTS", ids[1..].join(","))
        .env("SCAN_CONCURRENCY", concurrency.to_string());
    let (figures, report) = measure(&mut cmd);

    let scanned = report["scanned"].as_u64().unwrap_or(0);
    assert_eq!(scanned, totals.scanned, "the scan read every instance");
    assert_eq!(report["scan_error_count"], 0, "{report}");
    let calls: BTreeMap<String, u64> = report["api_calls"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    let pairs = (accounts * regions) as u64;
    let pages_per_pair = (totals.scanned / pairs).div_ceil(1000).max(1);
    println!();
    println!(
        "{:<34} {:>14}",
        "wall time (s)",
        format!("{:.3}", figures.0.as_secs_f64())
    );
    println!(
        "{:<34} {:>14}",
        "CPU time (s)",
        format!("{:.3}", figures.1.as_secs_f64())
    );
    println!(
        "{:<34} {:>14}",
        "peak RSS (MB)",
        format!("{:.1}", figures.2 as f64 / 1024.0)
    );
    println!(
        "{:<34} {:>14}",
        "result (MB)",
        format!(
            "{:.1}",
            report["result_bytes"].as_u64().unwrap_or(0) as f64 / 1048576.0
        )
    );
    println!("{:<34} {:>14}", "instances scanned", scanned);
    println!(
        "{:<34} {:>14}",
        "instances per CPU second",
        format!("{:.0}", scanned as f64 / figures.1.as_secs_f64())
    );
    for (op, floor) in [
        ("EC2:DescribeInstances", pairs * pages_per_pair),
        ("EC2:DescribeSecurityGroups", pairs),
        ("STS:AssumeRole", accounts as u64 - 1),
        ("STS:GetCallerIdentity", 1),
    ] {
        println!(
            "{:<34} {:>14} (floor {floor})",
            op,
            calls.get(op).copied().unwrap_or(0)
        );
    }
    let other: Vec<String> = calls
        .iter()
        .filter(|(k, _)| !k.starts_with("EC2:") && !k.starts_with("STS:"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!("other calls: {}", other.join(", "));
    let served = ec2.counters();
    println!(
        "endpoint served {} instances and {} groups in {} requests",
        served.instances_sent,
        served.groups_sent,
        served.requests.values().sum::<u64>()
    );
}

/// The bucket and the topic in moto; returns the topic ARN.
async fn stack(moto: &Moto) -> String {
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(moto.endpoint())
        .region(aws_config::Region::new(test_support::REGION))
        .test_credentials()
        .load()
        .await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    )
    .create_bucket()
    .bucket(BUCKET)
    .send()
    .await
    .expect("bucket");
    aws_sdk_sns::Client::new(&sdk)
        .create_topic()
        .name("compliance-alerts-orgbench")
        .send()
        .await
        .expect("topic")
        .topic_arn
        .expect("arn")
}

/// `SCANNER_BIN`, else the dev build next to this example's folder.
fn scanner_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SCANNER_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.exists(),
            "SCANNER_BIN={} does not exist",
            path.display()
        );
        return path;
    }
    let exe = std::env::current_exe().expect("own path");
    let path = exe
        .parent()
        .and_then(|p| p.parent())
        .map(|d| d.join("compliance-scanner"))
        .expect("target dir");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --all-targets` first",
        path.display()
    );
    path
}

/// Runs the scanner to the end: (wall, CPU, peak RSS in KiB) from `wait4`, and its JSON report.
// The child is reaped by `wait4`, which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn measure(cmd: &mut Command) -> ((Duration, Duration, i64), serde_json::Value) {
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn the scanner");
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().expect("stdout"), &mut stdout)
        .expect("read stdout");
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pid is our own child, not yet reaped; status and usage are valid out-pointers.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    assert_eq!(pid, child.id() as libc::pid_t, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the scan failed: {stdout}"
    );
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    let report = serde_json::from_str(&stdout).expect("the scanner prints JSON");
    (
        (
            wall,
            tv(usage.ru_utime) + tv(usage.ru_stime),
            usage.ru_maxrss,
        ),
        report,
    )
}
