//! Benchmark of the event mode: the real `compliance-scanner` binary as a Lambda function behind
//! cargo-lambda's runtime API emulator, invoked with SQS batches, against a real moto server.
//!
//! - single event: a batch of one tag change, `BENCH_ROUNDS` times; the function's own log gives
//!   receive → stored result, the time with an AWS call in flight, and its own time (the rest);
//! - burst: one batch of 1,000 tag changes for 1,000 instances, and one `RunInstances` of 500:
//!   wall, CPU (`/proc/<pid>/stat`, before and after the invocation), peak RSS (`VmHWM`) and the
//!   calls made (DescribeInstances batched by id: never one call per instance).
//!
//! Run: `cargo build --workspace --all-targets && target/debug/examples/events_bench`
//! Environment: `BENCH_INSTANCES` (default 1000), `BENCH_ROUNDS` (default 5), `SCANNER_BIN` (the
//! function to measure; default the dev build beside this example. The optimised Lambda build is
//! `target/lambda-bin/compliance-scanner/bootstrap` after `cargo xtask lambda`).

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_sdk_ec2::types::{IpPermission, IpRange, ResourceType, Tag, TagSpecification};
use serde_json::{json, Value};
use test_support::{free_port, venv_tool, Moto};

const BUCKET: &str = "compliance-results-events-bench";

/// A child process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let n = env_number("BENCH_INSTANCES", 1000);
    let rounds = env_number("BENCH_ROUNDS", 5);
    let bin = scanner_binary();
    println!("function measured: {}", bin.display());
    let moto = Moto::start();
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let built = Instant::now();
    let (topic, ids) = rt.block_on(build_fleet(&moto, n));
    println!(
        "fleet: {n} instances built in moto in {:.1} s",
        built.elapsed().as_secs_f64()
    );

    let (_emulator, port) = emulator();
    let log = std::env::temp_dir().join(format!("events-bench-{port}.log"));
    let function = start_function(&bin, &moto, port, &topic, &log);
    let pid = function.0.id();

    // The first batch builds the clients and asks STS for the account once per process.
    let cold = run(port, &log, pid, &single(&ids[0], "cold"));
    println!(
        "first event (clients built): invoke {:.1} ms, run {} ms, stored at {} ms, own {} ms",
        cold.invoke.as_secs_f64() * 1000.0,
        cold.log["run_ms"],
        cold.log["stored_ms"],
        cold.log["own_ms"]
    );

    let mut singles = Vec::new();
    for round in 1..=rounds {
        let r = run(
            port,
            &log,
            pid,
            &single(&ids[round % ids.len()], &format!("single-{round}")),
        );
        println!(
            "single event round {round}: invoke {:.1} ms | run {} ms, receive -> stored {} ms, AWS {} ms, own {} ms | cpu {:.0} ms | calls {}",
            r.invoke.as_secs_f64() * 1000.0,
            r.log["run_ms"],
            r.log["stored_ms"],
            r.log["aws_ms"],
            r.log["own_ms"],
            r.cpu.as_secs_f64() * 1000.0,
            r.log["api_calls"]
        );
        singles.push(r);
    }

    let tags: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(k, id)| tag_change(&format!("burst-{k}"), id))
        .collect();
    let burst = run(port, &log, pid, &batch(&tags));
    report(
        &format!("burst: {} tag changes", tags.len()),
        &burst,
        tags.len(),
    );

    let half: Vec<String> = ids.iter().take(ids.len() / 2).cloned().collect();
    let launch = run(port, &log, pid, &batch(&[run_instances("launch-1", &half)]));
    report(
        &format!("burst: one RunInstances of {}", half.len()),
        &launch,
        1,
    );

    let med = |f: &dyn Fn(&Run) -> f64| {
        let mut v: Vec<f64> = singles.iter().map(f).collect();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    println!(
        "single event, median of {rounds}: invoke {:.1} ms, receive -> stored {:.0} ms, AWS {:.0} ms, own {:.0} ms (target < 100 ms), cpu {:.0} ms",
        med(&|r| r.invoke.as_secs_f64() * 1000.0),
        med(&|r| r.log["stored_ms"].as_f64().unwrap_or_default()),
        med(&|r| r.log["aws_ms"].as_f64().unwrap_or_default()),
        med(&|r| r.log["own_ms"].as_f64().unwrap_or_default()),
        med(&|r| r.cpu.as_secs_f64() * 1000.0),
    );
    println!(
        "function process: peak RSS {:.1} MB",
        peak_rss_kb(pid) as f64 / 1024.0
    );
}

/// One invocation's figures.
struct Run {
    /// `cargo lambda invoke`'s round trip.
    invoke: Duration,
    /// CPU time of the function process during the invocation.
    cpu: Duration,
    /// Peak RSS of the function process after it.
    rss_kb: u64,
    /// The invocation's "event batch handled" log line.
    log: Value,
    response: Value,
}

fn report(what: &str, r: &Run, events: usize) {
    let calls: BTreeMap<String, u64> =
        serde_json::from_str(r.log["api_calls"].as_str().unwrap_or("{}")).unwrap_or_default();
    println!(
        "{what} ({events} events, {} records): invoke {:.3} s | run {} ms, receive -> stored {} ms, AWS {} ms, own {} ms | cpu {:.3} s | peak RSS {:.1} MB | judged {}, non-compliant {}, findings {}, failures {}",
        r.log["records"],
        r.invoke.as_secs_f64(),
        r.log["run_ms"],
        r.log["stored_ms"],
        r.log["aws_ms"],
        r.log["own_ms"],
        r.cpu.as_secs_f64(),
        r.rss_kb as f64 / 1024.0,
        r.log["judged"],
        r.log["non_compliant"],
        r.log["findings"],
        r.response["batchItemFailures"].as_array().map_or(0, Vec::len),
    );
    for (op, count) in &calls {
        println!("    {op}: {count}");
    }
}

/// Invokes the function with `payload` and reads its figures.
fn run(port: u16, log: &Path, pid: u32, payload: &Value) -> Run {
    let lines_before = std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .count();
    let cpu_before = cpu_time(pid);
    let file = std::env::temp_dir().join(format!("events-bench-payload-{port}.json"));
    std::fs::write(&file, payload.to_string()).expect("write payload");
    let started = Instant::now();
    let out = Command::new(venv_tool("cargo-lambda"))
        .args(["lambda", "invoke", "--invoke-address", "127.0.0.1"])
        .args(["--invoke-port", &port.to_string()])
        .arg("--data-file")
        .arg(&file)
        .args(["--output-format", "json"])
        .output()
        .expect("run cargo lambda invoke");
    let invoke = started.elapsed();
    let cpu = cpu_time(pid).saturating_sub(cpu_before);
    assert!(
        out.status.success(),
        "invoke failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let response: Value = serde_json::from_slice(&out.stdout).expect("response JSON");
    // The log line may trail the response by a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let found = text
            .lines()
            .skip(lines_before)
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["message"] == "event batch handled");
        if let Some(line) = found {
            break line;
        }
        assert!(
            Instant::now() < deadline,
            "no log line in {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        invoke,
        cpu,
        rss_kb: peak_rss_kb(pid),
        log: line,
        response,
    }
}

/// User + system CPU time of a process so far, from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_micros(ticks * 1_000_000 / hz.max(1))
}

/// Peak resident set of a process so far (`VmHWM`), in KB.
fn peak_rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn scanner_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SCANNER_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("own path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/examples");
    dir.join("compliance-scanner")
}

fn emulator() -> (Killed, u16) {
    let port = free_port();
    let log = std::env::temp_dir().join(format!("events-bench-watch-{port}.log"));
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
            "cargo lambda watch did not listen"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (guard, port)
}

fn start_function(bin: &Path, moto: &Moto, port: u16, topic: &str, log: &Path) -> Killed {
    let file = std::fs::File::create(log).expect("create function log");
    let mut cmd = Command::new(bin);
    for var in ["SCAN_REGIONS", "REQUIRED_TAGS", "EXEMPTIONS", "RUST_LOG"] {
        cmd.env_remove(var);
    }
    cmd.envs(moto.aws_env())
        .env(
            "AWS_LAMBDA_RUNTIME_API",
            format!("http://127.0.0.1:{port}/.rt"),
        )
        .env("AWS_LAMBDA_FUNCTION_NAME", "_")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("BUCKET_NAME", BUCKET)
        .env("TOPIC_ARN", topic)
        .env("STACK_NAME", "bench")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file);
    Killed(cmd.spawn().expect("start the function"))
}

fn envelope(
    id: &str,
    detail_type: &str,
    source: &str,
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

fn tag_change(id: &str, instance: &str) -> Value {
    envelope(
        id,
        "Tag Change on Resource",
        "aws.tag",
        vec![format!(
            "arn:aws:ec2:us-east-1:123456789012:instance/{instance}"
        )],
        json!({"changed-tag-keys": ["Owner"], "service": "ec2", "resource-type": "instance", "version": 2, "tags": {}}),
    )
}

fn run_instances(id: &str, instances: &[String]) -> Value {
    envelope(
        id,
        "AWS API Call via CloudTrail",
        "aws.ec2",
        vec![],
        json!({
            "eventSource": "ec2.amazonaws.com",
            "eventName": "RunInstances",
            "awsRegion": test_support::REGION,
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/bench"},
            "requestParameters": {"instancesSet": {"items": [{"minCount": instances.len(), "maxCount": instances.len()}]}},
            "responseElements": {"instancesSet": {"items": instances.iter().map(|i| json!({"instanceId": i})).collect::<Vec<_>>()}}
        }),
    )
}

fn single(instance: &str, id: &str) -> Value {
    batch(&[tag_change(id, instance)])
}

/// An SQS batch, one record per event.
fn batch(events: &[Value]) -> Value {
    json!({
        "Records": events.iter().enumerate().map(|(k, e)| json!({
            "messageId": format!("m-{k}-{}", e["id"].as_str().unwrap_or_default()),
            "receiptHandle": "AQEB",
            "body": e.to_string(),
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795860000000", "SenderId": "AIDA", "ApproximateFirstReceiveTimestamp": "1795860000001"},
            "messageAttributes": {},
            "md5OfBody": "0",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:compliance-changes",
            "awsRegion": test_support::REGION
        })).collect::<Vec<_>>()
    })
}

/// The bucket, the topic and `n` instances (three tenths missing tags, a tenth in a group open on
/// 22), launched 100 a call. Returns the topic and the instance ids.
async fn build_fleet(moto: &Moto, n: usize) -> (String, Vec<String>) {
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
    let sns = aws_sdk_sns::Client::new(&sdk);
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");
    let topic = sns
        .create_topic()
        .name("compliance-alerts-events-bench")
        .send()
        .await
        .expect("topic")
        .topic_arn
        .expect("topic arn");
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
    let open = ec2
        .create_security_group()
        .group_name("bench-ssh-open")
        .description("bench")
        .send()
        .await
        .expect("group")
        .group_id
        .expect("group id");
    ec2.authorize_security_group_ingress()
        .group_id(&open)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(22)
                .to_port(22)
                .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .build(),
        )
        .send()
        .await
        .expect("open 22");
    let mut ids = Vec::with_capacity(n);
    let mut k = 0;
    while ids.len() < n {
        let count = (n - ids.len()).min(100) as i32;
        let kind = k % 10;
        k += 1;
        let mut spec = TagSpecification::builder()
            .resource_type(ResourceType::Instance)
            .tags(Tag::builder().key("Environment").value("bench").build());
        if kind >= 3 {
            spec = spec
                .tags(Tag::builder().key("Owner").value("o").build())
                .tags(Tag::builder().key("CostCenter").value("c").build());
        }
        let mut req = ec2
            .run_instances()
            .image_id(&image)
            .min_count(count)
            .max_count(count)
            .tag_specifications(spec.build());
        if kind == 9 {
            req = req.security_group_ids(&open);
        }
        let out = req.send().await.expect("run instances");
        ids.extend(
            out.instances
                .unwrap_or_default()
                .into_iter()
                .filter_map(|i| i.instance_id),
        );
    }
    (topic, ids)
}
