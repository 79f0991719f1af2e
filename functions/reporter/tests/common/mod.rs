//! Shared by the integration tests: a moto server with a bucket, scan fixtures built from the
//! result types, and the real reporter binary run as a child process.
#![allow(dead_code)] // Each test binary uses its own subset.

use std::path::PathBuf;
use std::process::{Command, Output};

use aws_sdk_s3::primitives::ByteStream;
use compliance_rules::report::Verdict;
use compliance_rules::report::Verdict::{Compliant as C, Exempt as E, NonCompliant as N};
use compliance_rules::result::{
    InstanceResult, Reason, ScanResult, ScanSettings, Summary, Violation, SCAN_SCHEMA_VERSION,
};
use test_support::Moto;

/// A moto server with one bucket, and clients pointed at it.
pub struct World {
    pub moto: Moto,
    pub bucket: String,
    pub s3: aws_sdk_s3::Client,
    pub sns: aws_sdk_sns::Client,
}

impl World {
    pub async fn start() -> World {
        let moto = Moto::start();
        let creds = aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "test");
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
        let sns = aws_sdk_sns::Client::new(&shared);
        let bucket = "compliance-results-test".to_string();
        s3.create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("create bucket");
        World {
            moto,
            bucket,
            s3,
            sns,
        }
    }

    pub async fn put_bytes(&self, key: &str, body: Vec<u8>) {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
    }

    /// Stores a scan where the scanner would: `scans/YYYY/MM/DD/<started_at>.json`.
    pub async fn put_scan(&self, scan: &ScanResult) -> String {
        let key = scan_key(scan);
        self.put_bytes(&key, serde_json::to_vec(scan).unwrap())
            .await;
        key
    }

    pub async fn get_text(&self, key: &str) -> String {
        let out = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("get {key}: {e:?}"));
        let bytes = out.body.collect().await.unwrap().into_bytes();
        String::from_utf8(bytes.to_vec()).expect("utf-8 object")
    }

    pub async fn get_json(&self, key: &str) -> serde_json::Value {
        serde_json::from_str(&self.get_text(key).await).expect("report.json is JSON")
    }

    /// The reporter binary with this world's environment (no topic unless added).
    pub fn reporter(&self) -> Command {
        let mut cmd = Command::new(reporter_bin());
        self.moto.configure(&mut cmd);
        cmd.env("BUCKET_NAME", &self.bucket)
            .env_remove("BUCKET_OWNER")
            .env_remove("TOPIC_ARN")
            .env_remove("AWS_LAMBDA_RUNTIME_API")
            .env_remove("AWS_MAX_ATTEMPTS")
            .env_remove("AWS_RETRY_MODE");
        cmd
    }

    /// The reporter binary as [`World::reporter`] makes it, talking to moto through `proxy`.
    pub fn reporter_through(&self, proxy: &test_support::fidelity::FidelityProxy) -> Command {
        let mut cmd = self.reporter();
        proxy.configure(&mut cmd);
        cmd
    }

    /// Whether an object exists (read straight from moto).
    pub async fn exists(&self, key: &str) -> bool {
        match self
            .s3
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => true,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => false,
            Err(e) => panic!("head {key}: {e:?}"),
        }
    }

    /// Runs `compliance-reporter report --date <date>` and asserts it succeeded.
    pub fn report(&self, date: &str) -> serde_json::Value {
        let out = self
            .reporter()
            .args(["report", "--date", date])
            .output()
            .unwrap();
        assert_success(&out);
        serde_json::from_slice(&out.stdout).expect("the CLI prints its outcome as JSON")
    }
}

pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "reporter failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn reporter_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_compliance-reporter"))
}

pub fn scan_key(scan: &ScanResult) -> String {
    let s = &scan.started_at;
    format!("scans/{}/{}/{}/{}.json", &s[0..4], &s[5..7], &s[8..10], s)
}

/// An instance with the given verdict: a non-compliant one misses `Owner` and sits in an SSH
/// group open to the world.
pub fn instance(id: &str, verdict: Verdict) -> InstanceResult {
    let bad = verdict == Verdict::NonCompliant;
    InstanceResult {
        instance_id: id.to_string(),
        region: "us-east-1".into(),
        state: "running".into(),
        name: Some(format!("web {id}")),
        compliant: verdict == Verdict::Compliant,
        exempt: verdict == Verdict::Exempt,
        missing_tags: if bad { vec!["Owner".into()] } else { vec![] },
        near_misses: vec![],
        security_groups: vec!["sg-open".into()],
        violations: if bad {
            vec![Violation {
                group_id: "sg-open".into(),
                protocol: "tcp".into(),
                from_port: Some(22),
                to_port: Some(22),
                cidr: "0.0.0.0/0".into(),
                reason: Reason::RestrictedPorts,
                ports: vec![22],
            }]
        } else {
            vec![]
        },
        ..InstanceResult::default()
    }
}

/// A scan started at `started_at` with one instance per entry; the summary follows the rules
/// (compliant / (scanned - exempt) x 100, 100 when nothing is judged).
pub fn scan(started_at: &str, verdicts: &[(&str, Verdict)]) -> ScanResult {
    let instances: Vec<InstanceResult> = verdicts.iter().map(|(id, v)| instance(id, *v)).collect();
    scan_of(started_at, instances)
}

pub fn scan_of(started_at: &str, instances: Vec<InstanceResult>) -> ScanResult {
    let count = |f: fn(&InstanceResult) -> bool| instances.iter().filter(|i| f(i)).count() as u64;
    let exempt = count(|i| i.exempt);
    let compliant = count(|i| i.compliant);
    let scanned = instances.len() as u64;
    let judged = scanned - exempt;
    ScanResult {
        schema_version: SCAN_SCHEMA_VERSION,
        started_at: started_at.to_string(),
        finished_at: started_at.to_string(),
        duration_ms: 1200,
        stack: "test".into(),
        account_id: Some("123456789012".into()),
        regions: vec!["us-east-1".into()],
        settings: ScanSettings {
            required_tags: vec!["Environment".into(), "Owner".into(), "CostCenter".into()],
            restricted_ports: vec![22, 3389],
            exempt_tag_key: "ComplianceExempt".into(),
            exemptions: Vec::new(),
        },
        summary: Summary {
            scanned,
            exempt,
            compliant,
            non_compliant: judged - compliant,
            compliance_percentage: if judged == 0 {
                100.0
            } else {
                compliant as f64 * 100.0 / judged as f64
            },
            instances_missing_tags: count(|i| !i.missing_tags.is_empty()),
            open_rules: 0,
            exempted_findings: 0,
            accounts: Vec::new(),
        },
        instances,
        security_groups: vec![],
        errors: Vec::new(),
    }
}

/// Parses `report.csv` with a real CSV reader; returns the header and the rows.
pub fn parse_csv(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let header = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    let rows = reader
        .records()
        .map(|r| {
            r.expect("a well-formed CSV record")
                .iter()
                .map(str::to_string)
                .collect()
        })
        .collect();
    (header, rows)
}

pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// The previous day: one scan in which i-a and i-b are non-compliant and i-c compliant (33.33%).
pub async fn previous_day(world: &World) {
    world
        .put_scan(&scan(
            "2024-05-01T18:00:00Z",
            &[("i-a", N), ("i-b", N), ("i-c", C)],
        ))
        .await;
    world.report("2024-05-01");
}

/// The day under test: four scans with verdicts that change.
///
/// | scan  | i-a | i-b | i-c | i-d | i-e | i-f | compliance |
/// | 00:00 |  N  |  N  |  C  |  E  |  -  |  C  | 2/4 = 50%  |
/// | 06:00 |  N  |  C  |  C  |  E  |  -  |  C  | 3/4 = 75%  |
/// | 12:00 |  N  |  C  |  N  |  E  |  N  |  C  | 2/5 = 40%  |
/// | 18:00 |  N  |  C  |  N  |  E  |  N  |  C  | 2/5 = 40%  |
pub async fn the_day(world: &World) {
    let day = [
        (
            "2024-05-02T00:00:00Z",
            vec![("i-a", N), ("i-b", N), ("i-c", C), ("i-d", E), ("i-f", C)],
        ),
        (
            "2024-05-02T06:00:00Z",
            vec![("i-a", N), ("i-b", C), ("i-c", C), ("i-d", E), ("i-f", C)],
        ),
        (
            "2024-05-02T12:00:00Z",
            vec![
                ("i-a", N),
                ("i-b", C),
                ("i-c", N),
                ("i-d", E),
                ("i-e", N),
                ("i-f", C),
            ],
        ),
        (
            "2024-05-02T18:00:00Z",
            vec![
                ("i-a", N),
                ("i-b", C),
                ("i-c", N),
                ("i-d", E),
                ("i-e", N),
                ("i-f", C),
            ],
        ),
    ];
    // Stored out of order: the report orders scans by their start time.
    for i in [2, 0, 3, 1] {
        world.put_scan(&scan(day[i].0, &day[i].1)).await;
    }
}
