//! The Lambda path: the real reporter binary served by cargo-lambda's runtime API emulator
//! (`cargo lambda watch --only-lambda-apis`) and invoked with `cargo lambda invoke`.

mod common;

use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use compliance_rules::report::Verdict::{Compliant as C, NonCompliant as N};

/// Kills and reaps a child process when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cargo_lambda() -> Command {
    let mut cmd = Command::new(test_support::venv_tool("cargo-lambda"));
    cmd.arg("lambda").current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

fn invoke(port: u16, payload: &str) -> Output {
    cargo_lambda()
        .args(["invoke", "--invoke-address", "127.0.0.1", "--invoke-port"])
        .arg(port.to_string())
        .args(["--output-format", "json", "--data-ascii", payload])
        .output()
        .expect("run cargo lambda invoke")
}

#[tokio::test]
async fn the_lambda_function_reports_the_day_an_event_names() {
    let world = World::start().await;
    world
        .put_scan(&scan("2024-05-02T00:00:00Z", &[("i-a", N), ("i-b", N)]))
        .await;
    world
        .put_scan(&scan("2024-05-02T12:00:00Z", &[("i-a", N), ("i-b", C)]))
        .await;

    let port = test_support::free_port();
    let log = std::env::temp_dir().join(format!("cargo-lambda-watch-{port}.log"));
    let _emulator = Reaped(
        cargo_lambda()
            .args([
                "watch",
                "--only-lambda-apis",
                "--invoke-address",
                "127.0.0.1",
            ])
            .args(["--invoke-port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start cargo lambda watch"),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "cargo lambda watch did not listen on {port}; log: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let mut function = Command::new(reporter_bin());
    world.moto.configure(&mut function);
    function
        .env("BUCKET_NAME", &world.bucket)
        .env_remove("TOPIC_ARN")
        .env(
            "AWS_LAMBDA_RUNTIME_API",
            format!("http://127.0.0.1:{port}/.rt"),
        )
        .env("AWS_LAMBDA_FUNCTION_NAME", "_")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log.with_extension("function.log")).unwrap());
    let mut function = Reaped(function.spawn().expect("start the reporter binary"));

    // Backfill: the event names the day.
    let out = invoke(port, r#"{"date": "2024-05-02"}"#);
    assert!(
        out.status.success(),
        "invoke failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let outcome: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON response");
    assert_eq!(outcome["date"], "2024-05-02");
    assert_eq!(outcome["scans_analysed"], 2);
    assert_eq!(outcome["average_compliance"], 25.0);
    let r = world.get_json("reports/2024/05/02/report.json").await;
    assert_eq!(r["persistent_offenders"], serde_json::json!(["i-a"]));
    assert_eq!(r["became_compliant"], serde_json::json!(["i-b"]));
    assert!(world
        .get_text("reports/2024/05/02/report.html")
        .await
        .contains("25.00%"));

    // A scheduled event carries no date: the previous UTC day of its time.
    let out = invoke(
        port,
        r#"{"detail-type": "Scheduled Event", "source": "aws.events", "time": "2024-05-03T00:00:00Z", "detail": {}}"#,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outcome: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(outcome["date"], "2024-05-02");

    // Nothing at all: the previous UTC day, which has no scans here.
    let yesterday = compliance_reporter::format_date(compliance_reporter::previous_utc_day(
        time::OffsetDateTime::now_utc(),
    ));
    let out = invoke(port, "{}");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outcome: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(outcome["date"], yesterday.as_str());
    assert_eq!(outcome["scans_analysed"], 0);
    let key = format!("reports/{}/report.json", yesterday.replace('-', "/"));
    assert_eq!(
        world.get_json(&key).await["message"],
        format!("No scans were stored for {yesterday}: nothing to report.")
    );

    // A malformed backfill date fails the invocation (the failure alarm must see it)...
    let out = invoke(port, r#"{"date": "May 2nd"}"#);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("is not a YYYY-MM-DD date"), "{said}");
    // ...and the function keeps serving.
    assert!(
        function.0.try_wait().unwrap().is_none(),
        "the function exited"
    );
    let out = invoke(port, r#"{"date": "2024-05-02"}"#);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
