//! Retries are bounded: against an endpoint that answers every request with 503, the scanner tries
//! each of its first calls (EC2 and STS) a fixed number of times with backoff, then fails without
//! storing anything.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use compliance_scanner::run::MAX_ATTEMPTS;

/// The calls made before anything is stored, as their error context names them.
const FIRST_CALLS: [(&str, &str); 3] = [
    ("DescribeInstances", "DescribeInstances in us-east-1"),
    (
        "DescribeSecurityGroups",
        "DescribeSecurityGroups in us-east-1",
    ),
    ("GetCallerIdentity", "STS GetCallerIdentity"),
];

/// Attempts per Query-protocol action.
type Attempts = Arc<Mutex<BTreeMap<String, u64>>>;

/// Serves 503 to everything on a loopback port; counts attempts per action of [`FIRST_CALLS`].
fn always_503() -> (u16, Attempts) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    let count: Attempts = Arc::default();
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let body = String::from_utf8_lossy(&body);
            for (action, _) in FIRST_CALLS {
                if body.contains(&format!("Action={action}&"))
                    || body.ends_with(&format!("Action={action}"))
                {
                    *seen.lock().unwrap().entry(action.to_string()).or_default() += 1;
                }
            }
            let _ = stream.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (port, count)
}

#[test]
fn first_calls_are_retried_a_bounded_number_of_times_then_the_run_fails() {
    let (port, attempts) = always_503();
    let start = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_compliance-scanner"))
        .arg("scan")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_MAX_ATTEMPTS")
        .env_remove("AWS_RETRY_MODE")
        .env("BUCKET_NAME", "b")
        .output()
        .expect("run scanner");
    let elapsed = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("nothing stored"), "{stderr}");
    // The account, instances and groups are read concurrently; the first call to exhaust its
    // attempts fails the run (and the others are dropped), so that one shows exactly MAX_ATTEMPTS.
    let attempts = attempts.lock().unwrap().clone();
    let failed = FIRST_CALLS
        .into_iter()
        .find(|(_, named)| stderr.contains(named))
        .map(|(action, _)| action)
        .unwrap_or_else(|| panic!("the failure names the call: {stderr}"));
    assert_eq!(
        attempts.get(failed).copied(),
        Some(u64::from(MAX_ATTEMPTS)),
        "{attempts:?}\n{stderr}"
    );
    assert!(
        attempts.values().all(|n| *n <= u64::from(MAX_ATTEMPTS)),
        "{attempts:?}"
    );
    // Backoff happened (the waits add up) but stayed bounded.
    assert!(elapsed > Duration::from_millis(200), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(60), "{elapsed:?}");
}
