//! Benchmark: one day of 4 scans x 10,000 instances in moto, reported by the real reporter binary
//! run as a child process; prints its wall time and peak RSS (from `wait4`).
//!
//! `cargo build --workspace --all-targets && target/debug/examples/bench` (`BENCH_SCANS` and
//! `BENCH_INSTANCES` change the size; `REPORTER_BIN` runs another build of the reporter, e.g. the
//! deployed one, `target/lambda-bin/compliance-reporter/bootstrap`). Target: peak RSS under 128 MB.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use aws_sdk_s3::primitives::ByteStream;
use compliance_rules::result::{
    InstanceResult, NearMiss, Reason, ScanResult, ScanSettings, Summary, Violation,
    SCAN_SCHEMA_VERSION,
};
use test_support::Moto;

const DATE: &str = "2024-05-02";

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} must be a number"))
        })
        .unwrap_or(default)
}

/// Instance `n` in scan `s`: about a quarter offend all day, some flip during the day, a few are
/// exempt; offenders carry realistic missing tags and violations.
fn instance(n: usize, s: usize, scans: usize) -> InstanceResult {
    let exempt = n % 50 == 0;
    let offends =
        !exempt && (n % 4 == 0 || (n % 7 == 0 && s < scans / 2) || (n % 11 == 0 && s >= scans / 2));
    let ssh = Violation {
        group_id: format!("sg-{:08x}", n % 97),
        protocol: "tcp".into(),
        from_port: Some(22),
        to_port: Some(22),
        cidr: "0.0.0.0/0".into(),
        reason: Reason::RestrictedPorts,
        ports: vec![22],
    };
    InstanceResult {
        instance_id: format!("i-{n:017x}"),
        region: if n % 3 == 0 { "eu-west-1" } else { "us-east-1" }.into(),
        state: "running".into(),
        name: Some(format!("service-{}-node-{n}", n % 40)),
        compliant: !exempt && !offends,
        exempt,
        missing_tags: if offends {
            vec!["Owner".into(), "CostCenter".into()]
        } else {
            vec![]
        },
        near_misses: if offends {
            vec![NearMiss {
                required: "Owner".into(),
                found: "owner".into(),
            }]
        } else {
            vec![]
        },
        security_groups: vec![format!("sg-{:08x}", n % 97), "sg-default".into()],
        violations: if offends { vec![ssh] } else { vec![] },
        ..InstanceResult::default()
    }
}

/// Start time of scan `s` of `scans`, spread evenly over the day.
fn start_time(s: usize, scans: usize) -> String {
    let minute = s * 1440 / scans.max(1);
    format!("{DATE}T{:02}:{:02}:00Z", minute / 60, minute % 60)
}

fn scan(s: usize, scans: usize, instances: usize) -> ScanResult {
    let list: Vec<InstanceResult> = (0..instances).map(|n| instance(n, s, scans)).collect();
    let exempt = list.iter().filter(|i| i.exempt).count() as u64;
    let compliant = list.iter().filter(|i| i.compliant).count() as u64;
    let judged = list.len() as u64 - exempt;
    ScanResult {
        schema_version: SCAN_SCHEMA_VERSION,
        started_at: start_time(s, scans),
        finished_at: start_time(s, scans),
        duration_ms: 90_000,
        stack: "bench".into(),
        account_id: Some("123456789012".into()),
        regions: vec!["us-east-1".into(), "eu-west-1".into()],
        settings: ScanSettings {
            required_tags: vec!["Environment".into(), "Owner".into(), "CostCenter".into()],
            restricted_ports: vec![22, 3389],
            exempt_tag_key: "ComplianceExempt".into(),
            exemptions: Vec::new(),
        },
        summary: Summary {
            scanned: list.len() as u64,
            exempt,
            compliant,
            non_compliant: judged - compliant,
            compliance_percentage: if judged == 0 {
                100.0
            } else {
                compliant as f64 * 100.0 / judged as f64
            },
            instances_missing_tags: judged - compliant,
            open_rules: 97,
            exempted_findings: 0,
            accounts: Vec::new(),
        },
        instances: list,
        security_groups: vec![],
        errors: Vec::new(),
    }
}

fn reporter_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("REPORTER_BIN") {
        let bin = PathBuf::from(bin);
        assert!(bin.exists(), "REPORTER_BIN {} is missing", bin.display());
        return bin;
    }
    // Examples live in target/<profile>/examples; the binary one level up.
    let exe = std::env::current_exe().expect("current exe");
    let bin = exe
        .parent()
        .and_then(|p| p.parent())
        .expect("target dir")
        .join("compliance-reporter");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --workspace --all-targets` first",
        bin.display()
    );
    bin
}

#[tokio::main]
async fn main() {
    let scans = env_number("BENCH_SCANS", 4);
    let instances = env_number("BENCH_INSTANCES", 10_000);
    let bin = reporter_bin();
    let moto = Moto::start();
    let creds = aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "bench");
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(test_support::REGION))
        .credentials_provider(creds)
        .endpoint_url(moto.endpoint())
        .load()
        .await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(true)
            .build(),
    );
    let bucket = "compliance-results-bench";
    s3.create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("create bucket");

    let mut stored = 0usize;
    for s in 0..scans {
        let body = serde_json::to_vec(&scan(s, scans, instances)).expect("serialise scan");
        stored += body.len();
        s3.put_object()
            .bucket(bucket)
            .key(format!("scans/2024/05/02/{}.json", start_time(s, scans)))
            .body(ByteStream::from(body))
            .send()
            .await
            .expect("store scan");
    }
    println!(
        "input: {scans} scans x {instances} instances, {:.1} MB of scan JSON",
        stored as f64 / 1e6
    );

    let mut cmd = Command::new(&bin);
    moto.configure(&mut cmd);
    cmd.env("BUCKET_NAME", bucket)
        .env_remove("TOPIC_ARN")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env("RUST_LOG", "warn")
        .args(["report", "--date", DATE])
        .stdout(Stdio::piped());
    let started = Instant::now();
    // Reaped by wait4 below, which also yields the child's peak RSS.
    #[allow(clippy::zombie_processes)]
    let mut child = cmd.spawn().expect("start the reporter");
    let pid = child.id() as libc::pid_t;
    // Drain stdout first so the child never blocks on a full pipe; EOF comes at its exit.
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().expect("piped stdout"), &mut stdout)
        .unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own unreaped child; status and usage point at live locals.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    assert_eq!(reaped, pid, "wait4: {}", std::io::Error::last_os_error());
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the reporter failed (status {status}); stdout: {stdout}"
    );
    let outcome: serde_json::Value = serde_json::from_str(&stdout).expect("outcome JSON");
    assert_eq!(outcome["scans_analysed"], scans as u64, "{outcome}");

    let report = s3
        .get_object()
        .bucket(bucket)
        .key("reports/2024/05/02/report.json")
        .send()
        .await
        .expect("report.json stored")
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    let report: serde_json::Value = serde_json::from_slice(&report).unwrap();
    assert_eq!(report["instances_seen"], instances as u64);

    // ru_maxrss is in kilobytes on Linux.
    let rss_mb = usage.ru_maxrss as f64 / 1024.0;
    println!("reporter wall time: {:.2} s", wall.as_secs_f64());
    println!("reporter peak RSS: {rss_mb:.1} MB (target < 128 MB)");
    println!(
        "report: average {:.2}%, {} persistent offenders, {} instances",
        report["compliance"]["average"].as_f64().unwrap_or(f64::NAN),
        report["persistent_offenders"]
            .as_array()
            .map_or(0, Vec::len),
        report["instances_seen"]
    );
    if rss_mb >= 128.0 {
        eprintln!("peak RSS is over the 128 MB target");
        std::process::exit(1);
    }
}
