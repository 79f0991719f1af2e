//! Benchmark: builds a fleet in a real moto server, then measures one local scan by the real
//! `compliance-scanner` binary beside the API floor (a plain program that only pages through the
//! same instances and groups), each as a child process: wall time, CPU time and peak RSS from
//! `wait4`, and API calls as counted by each program.
//!
//! Run: `cargo build --workspace --all-targets && target/debug/examples/scanner_bench`
//! Environment: `BENCH_INSTANCES` (default 10000), `BENCH_ROUNDS` (default 3), `SCANNER_BIN` (the
//! scanner to measure; default the dev build beside this example. The optimised Lambda build is
//! `target/lambda-bin/compliance-scanner/bootstrap` after `cargo xtask lambda`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_sdk_ec2::types::{IpPermission, IpRange, ResourceType, Tag, TagSpecification};
use compliance_scanner::calls::CallCounter;
use compliance_scanner::fetch::{PAGE_SIZE, SCANNED_STATES};
use futures::StreamExt;
use test_support::Moto;

const BUCKET: &str = "compliance-results-bench";

/// Figures of one child process.
#[derive(Debug, Clone)]
struct Figures {
    wall: Duration,
    cpu: Duration,
    max_rss_kb: i64,
    calls: BTreeMap<String, u64>,
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("floor") {
        floor();
        return;
    }
    let n: usize = std::env::var("BENCH_INSTANCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let scanner = scanner_binary();
    println!("scanner measured: {}", scanner.display());
    let moto = Moto::start();
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let built = Instant::now();
    let topic = rt.block_on(build_fleet(&moto, n));
    println!(
        "fleet: {n} instances (one per reservation) built in moto in {:.1} s",
        built.elapsed().as_secs_f64()
    );

    let mut floors = Vec::new();
    let mut scans = Vec::new();
    for round in 1..=rounds {
        let f = measure(
            &moto,
            Command::new(std::env::current_exe().expect("own path")).arg("floor"),
        );
        let mut cmd = Command::new(&scanner);
        cmd.arg("scan")
            .env("BUCKET_NAME", BUCKET)
            .env("TOPIC_ARN", &topic)
            .env("STACK_NAME", "bench");
        let s = measure(&moto, &mut cmd);
        println!(
            "round {round}: floor wall {:.3} s cpu {:.3} s rss {:.1} MB | scanner wall {:.3} s cpu {:.3} s rss {:.1} MB",
            f.wall.as_secs_f64(),
            f.cpu.as_secs_f64(),
            f.max_rss_kb as f64 / 1024.0,
            s.wall.as_secs_f64(),
            s.cpu.as_secs_f64(),
            s.max_rss_kb as f64 / 1024.0
        );
        floors.push(f);
        scans.push(s);
    }
    let median = |v: &[Figures], key: fn(&Figures) -> f64| {
        let mut xs: Vec<f64> = v.iter().map(key).collect();
        xs.sort_by(f64::total_cmp);
        xs[xs.len() / 2]
    };
    let wall = |f: &Figures| f.wall.as_secs_f64();
    let cpu = |f: &Figures| f.cpu.as_secs_f64();
    let rss = |f: &Figures| f.max_rss_kb as f64 / 1024.0;
    let (fw, sw) = (median(&floors, wall), median(&scans, wall));
    let pages = n.div_ceil(PAGE_SIZE as usize) as u64;
    let calls = |f: &Figures, op: &str| f.calls.get(op).copied().unwrap_or(0);
    println!();
    println!("median of {rounds} rounds, {n} instances, 1 region:");
    println!(
        "{:<34} {:>12} {:>12} {:>10}",
        "", "API floor", "scanner", "target"
    );
    println!(
        "{:<34} {:>12.3} {:>12.3} {:>10}",
        "wall time (s)",
        fw,
        sw,
        format!("<= {:.3}", fw * 1.05)
    );
    println!(
        "{:<34} {:>12.3} {:>12.3} {:>10}",
        "CPU time (s)",
        median(&floors, cpu),
        median(&scans, cpu),
        "< 0.5"
    );
    println!(
        "{:<34} {:>12.1} {:>12.1} {:>10}",
        "peak RSS (MB)",
        median(&floors, rss),
        median(&scans, rss),
        "< 64"
    );
    for op in ["EC2:DescribeInstances", "EC2:DescribeSecurityGroups"] {
        let target = if op == "EC2:DescribeInstances" {
            pages.to_string()
        } else {
            String::new()
        };
        println!(
            "{:<34} {:>12} {:>12} {:>10}",
            op,
            calls(&floors[0], op),
            calls(&scans[0], op),
            target
        );
    }
    let other: Vec<String> = scans[0]
        .calls
        .iter()
        .filter(|(k, _)| !k.starts_with("EC2:"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!("scanner's other calls: {}", other.join(", "));
    println!("wall ratio scanner/floor: {:.3}", sw / fw);
}

/// The scanner to measure: `SCANNER_BIN`, else the one next to this example's folder
/// (`target/debug/compliance-scanner`).
fn scanner_binary() -> PathBuf {
    // The optimised Lambda build (`cargo xtask lambda`) is what runs in AWS; it runs here too.
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
        "{} is missing: run `cargo build -p compliance-scanner` first",
        path.display()
    );
    path
}

/// Runs a child to the end and reads its resource use with `wait4`.
// The child is reaped by `wait4`, which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn measure(moto: &Moto, cmd: &mut Command) -> Figures {
    moto.configure(cmd);
    cmd.env_remove("AWS_LAMBDA_RUNTIME_API")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn measured program");
    // Read stdout before reaping, so a large output cannot block the child.
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
        "measured program failed: {stdout}"
    );
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("program prints JSON");
    let calls = report["api_calls"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    Figures {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        max_rss_kb: usage.ru_maxrss,
        calls,
    }
}

/// The API floor: pages through the scanned instances and every group, concurrently, with the same
/// SDK, and keeps nothing but counts.
fn floor() {
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.block_on(async {
        let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
        let counter = CallCounter::default();
        let ec2 = aws_sdk_ec2::Client::from_conf(
            aws_sdk_ec2::config::Builder::from(&sdk)
                .interceptor(counter.clone())
                .build(),
        );
        let instances = async {
            let mut pages = ec2
                .describe_instances()
                .filters(
                    aws_sdk_ec2::types::Filter::builder()
                        .name("instance-state-name")
                        .set_values(Some(SCANNED_STATES.iter().map(|s| s.to_string()).collect()))
                        .build(),
                )
                .max_results(PAGE_SIZE)
                .into_paginator()
                .send();
            let mut count = 0;
            while let Some(page) = pages.next().await {
                count += page
                    .expect("DescribeInstances")
                    .reservations()
                    .iter()
                    .map(|r| r.instances().len())
                    .sum::<usize>();
            }
            count
        };
        let groups = async {
            let mut pages = ec2
                .describe_security_groups()
                .max_results(PAGE_SIZE)
                .into_paginator()
                .send();
            let mut count = 0;
            while let Some(page) = pages.next().await {
                count += page
                    .expect("DescribeSecurityGroups")
                    .security_groups()
                    .len();
            }
            count
        };
        let (i, g) = tokio::join!(instances, groups);
        let out = serde_json::json!({"instances": i, "groups": g, "api_calls": counter.snapshot()});
        println!("{out}");
    });
}

/// Builds `n` instances, one per reservation (moto pages DescribeInstances by reservation, AWS by
/// instance: one per reservation makes moto page like AWS), with every tag case and a mix of
/// groups in two VPCs. Returns the topic ARN.
async fn build_fleet(moto: &Moto, n: usize) -> String {
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(moto.endpoint())
        .region(aws_config::Region::new(test_support::REGION))
        .test_credentials()
        .load()
        .await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");
    let topic = aws_sdk_sns::Client::new(&sdk)
        .create_topic()
        .name("compliance-alerts-bench")
        .send()
        .await
        .expect("topic")
        .topic_arn
        .expect("arn");
    let image = ec2
        .describe_images()
        .owners("amazon")
        .send()
        .await
        .expect("images")
        .images
        .unwrap_or_default()
        .into_iter()
        .find_map(|i| i.image_id)
        .expect("an AMI");
    let mut subnets_groups = Vec::new();
    for v in 1..=2 {
        let vpc = ec2
            .create_vpc()
            .cidr_block(format!("10.{v}.0.0/16"))
            .send()
            .await
            .expect("vpc")
            .vpc
            .and_then(|x| x.vpc_id)
            .expect("vpc id");
        let subnet = ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(format!("10.{v}.0.0/18"))
            .send()
            .await
            .expect("subnet")
            .subnet
            .and_then(|s| s.subnet_id)
            .expect("subnet id");
        let mut groups = Vec::new();
        for (k, (proto, from, to, cidr)) in [
            ("tcp", 443, 443, "0.0.0.0/0"),
            ("tcp", 22, 22, "0.0.0.0/0"),
            ("-1", -1, -1, "0.0.0.0/0"),
            ("tcp", 0, 65535, "10.0.0.0/8"),
            ("udp", 5000, 6000, "0.0.0.0/0"),
        ]
        .into_iter()
        .enumerate()
        {
            let id = ec2
                .create_security_group()
                .group_name(format!("bench-{v}-{k}"))
                .description("bench")
                .vpc_id(&vpc)
                .send()
                .await
                .expect("group")
                .group_id
                .expect("group id");
            ec2.authorize_security_group_ingress()
                .group_id(&id)
                .ip_permissions(
                    IpPermission::builder()
                        .ip_protocol(proto)
                        .from_port(from)
                        .to_port(to)
                        .ip_ranges(IpRange::builder().cidr_ip(cidr).build())
                        .build(),
                )
                .send()
                .await
                .expect("ingress");
            groups.push(id);
        }
        subnets_groups.push((subnet, groups));
    }
    let tag_cases: [&[(&str, &str)]; 6] = [
        &[
            ("Environment", "prod"),
            ("Owner", "ana"),
            ("CostCenter", "cc-1"),
            ("Name", "web"),
        ],
        &[
            ("Environment", "prod"),
            ("Owner", "ana"),
            ("CostCenter", "cc-1"),
        ],
        &[
            ("Environment", "prod"),
            ("owner", "ana"),
            ("CostCenter", " "),
        ],
        &[("Environment", "dev")],
        &[("ComplianceExempt", "true")],
        &[],
    ];
    let ec2 = &ec2;
    let image = &image;
    let subnets_groups = &subnets_groups;
    futures::stream::iter(0..n)
        .map(|i| async move {
            let (subnet, groups) = &subnets_groups[i % 2];
            // Mostly clean groups, so the fleet is a realistic mix rather than all red.
            let group = &groups[if i % 10 < 7 { 0 } else { i % 5 }];
            let tags = tag_cases[if i % 3 == 0 { (i / 3) % 6 } else { 1 }];
            let mut spec = TagSpecification::builder().resource_type(ResourceType::Instance);
            for (k, v) in tags {
                spec = spec.tags(Tag::builder().key(*k).value(*v).build());
            }
            // EC2 rejects a tag specification without tags: an untagged instance sends none.
            let spec = (!tags.is_empty()).then(|| vec![spec.build()]);
            ec2.run_instances()
                .image_id(image)
                .min_count(1)
                .max_count(1)
                .subnet_id(subnet)
                .security_group_ids(group)
                .set_tag_specifications(spec)
                .send()
                .await
                .expect("run instance");
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    topic
}
