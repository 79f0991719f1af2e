//! `cargo xtask demo`: the main job, end to end on this machine. Starts the AWS emulator, installs
//! the provider from a filesystem mirror, applies `examples/terraform`, builds a small fleet, runs one
//! scan with the deployed scanner's settings, then the day's report with the deployed reporter's,
//! an audit of the stack, and prints where everything is.
//! `cargo xtask demo destroy` removes the stack and stops the emulator.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use test_support::{install_mirror, provider_bin, terraform, venv_bin, workspace_root};

use crate::{cargo, run};

const PORT: u16 = 5557;

fn work() -> PathBuf {
    test_support::target_dir().join("demo")
}

fn endpoint() -> String {
    format!("http://127.0.0.1:{PORT}")
}

fn aws_env(cmd: &mut Command) -> &mut Command {
    cmd.env("AWS_ACCESS_KEY_ID", "demo")
        .env("AWS_SECRET_ACCESS_KEY", "demo")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", endpoint())
        .env("AWS_EC2_METADATA_DISABLED", "true")
}

fn emulator_up() -> bool {
    std::net::TcpStream::connect(("127.0.0.1", PORT)).is_ok()
}

/// Starts moto on the demo port, detached so it outlives this command, unless it already runs.
fn start_emulator() -> Result<(), String> {
    if emulator_up() {
        println!("== AWS emulator already running at {}", endpoint());
        return Ok(());
    }
    let log = std::fs::File::create(work().join("moto.log")).map_err(|e| e.to_string())?;
    let child = Command::new(venv_bin().join("moto_server"))
        .args(["-H", "127.0.0.1", "-p", &PORT.to_string()])
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("start moto_server: {e}"))?;
    std::fs::write(work().join("moto.pid"), child.id().to_string()).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !emulator_up() {
        if Instant::now() > deadline {
            return Err("moto did not start within 60 s; see target/demo/moto.log".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("== AWS emulator (moto) started at {}", endpoint());
    Ok(())
}

fn tf(dir: &Path, cli_config: &Path, args: &[&str]) -> Result<(), String> {
    let mut cmd = terraform(dir, cli_config);
    aws_env(&mut cmd)
        .env("TF_VAR_endpoint_url", endpoint())
        .args(args);
    run(&mut cmd)
}

fn tf_output(dir: &Path, cli_config: &Path, name: &str) -> Result<String, String> {
    let mut cmd = terraform(dir, cli_config);
    let out = aws_env(&mut cmd)
        .args(["output", "-raw", name])
        .output()
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The demo's working copy of examples/terraform, initialised with this build of the provider.
fn prepare() -> Result<(PathBuf, PathBuf), String> {
    let dir = work().join("example");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    for entry in
        std::fs::read_dir(workspace_root().join("examples/terraform")).map_err(|e| e.to_string())?
    {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|e| e == "tf") {
            std::fs::copy(&path, dir.join(path.file_name().expect("file name")))
                .map_err(|e| e.to_string())?;
        }
    }
    let cli_config = install_mirror(&provider_bin(), &work());
    // The lock file records the checksum of the provider last installed; after a rebuild the same
    // version has new bytes, and init would refuse them. The mirror always holds this build.
    match std::fs::remove_file(dir.join(".terraform.lock.hcl")) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("remove the demo's old lock file: {e}")),
    }
    tf(
        &dir,
        &cli_config,
        &["init", "-no-color", "-input=false", "-upgrade"],
    )?;
    Ok((dir, cli_config))
}

/// Runs the demo.
pub fn demo(args: &[String]) -> Result<(), String> {
    std::fs::create_dir_all(work()).map_err(|e| e.to_string())?;
    if args.first().map(String::as_str) == Some("destroy") {
        return destroy();
    }
    // The same build as `cargo xtask test`: building only the two binaries would resolve other
    // dependency features and compile much of the tree a second time.
    run(cargo().args(["build", "--workspace", "--all-targets"]))?;
    start_emulator()?;
    let (dir, cli_config) = prepare()?;
    println!(
        "== Provider installed into the filesystem mirror {}",
        work().join("mirror").display()
    );
    tf(
        &dir,
        &cli_config,
        &["apply", "-auto-approve", "-no-color", "-input=false"],
    )?;

    println!("\n== A small fleet in the emulator:");
    let mut fleet = Command::new(venv_bin().join("python"));
    aws_env(&mut fleet)
        .arg(workspace_root().join("xtask/src/demo_fleet.py"))
        .arg(endpoint());
    run(&mut fleet)?;

    // moto evaluates a Deny statement whose condition does not hold as a deny, so the bucket's
    // TLS-only policy (Deny when aws:SecureTransport is false) blocks every object write in the
    // emulator, over HTTPS too. AWS itself does not; lift the policy in the emulator only.
    let bucket = tf_output(&dir, &cli_config, "bucket_name")?;
    println!(
        "\n== Lifting {bucket}'s TLS-only policy in the emulator (moto mis-evaluates conditional denies);\n   \
         `terraform plan` will now show it as drift, and `terraform apply` would put it back."
    );
    let mut lift = Command::new(venv_bin().join("python"));
    aws_env(&mut lift).args([
        "-c",
        "import boto3,sys,os;boto3.client('s3',endpoint_url=os.environ['AWS_ENDPOINT_URL']).delete_bucket_policy(Bucket=sys.argv[1])",
        &bucket,
    ]);
    run(&mut lift)?;

    // The scan runs the scanner's code with exactly the settings of the deployed function.
    let function = tf_output(&dir, &cli_config, "scanner_function_name")?;
    println!("\n== One scan with the settings of the deployed {function}:");
    let mut scan = Command::new(test_support::target_dir().join("debug/compliance-scanner"));
    aws_env(&mut scan).arg("scan");
    deployed_env(&function, &mut scan)?;
    let out = scan
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| e.to_string())?;
    let summary = String::from_utf8_lossy(&out.stdout);
    println!("{summary}");
    if !out.status.success() {
        return Err("the scan failed".into());
    }

    // The daily report runs at 00:00 UTC on the day before; here it reports the day the scan was
    // filed under (`"result_key":"scans/YYYY/MM/DD/..."` in its summary), so it covers that scan
    // even when midnight passes in between.
    let day = summary
        .split("\"result_key\":\"scans/")
        .nth(1)
        .and_then(|rest| rest.get(..10))
        .ok_or("the scan's summary names no result key")?;
    let date = day.replace('/', "-");
    let reporter = tf_output(&dir, &cli_config, "reporter_function_name")?;
    println!("== The daily report of {date} so far, with the settings of the deployed {reporter}:");
    let mut report = Command::new(test_support::target_dir().join("debug/compliance-reporter"));
    aws_env(&mut report).args(["report", "--date", &date]);
    deployed_env(&reporter, &mut report)?;
    let out = report
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| e.to_string())?;
    println!("{}", String::from_utf8_lossy(&out.stdout).trim());
    if !out.status.success() {
        return Err("the report failed".into());
    }
    let page = work().join("report.html");
    let mut fetch = Command::new(venv_bin().join("python"));
    aws_env(&mut fetch).args([
        "-c",
        "import boto3,sys,os;boto3.client('s3',endpoint_url=os.environ['AWS_ENDPOINT_URL']).download_file(sys.argv[1],sys.argv[2],sys.argv[3])",
        &bucket,
        &format!("reports/{day}/report.html"),
    ]);
    run(fetch.arg(&page))?;
    println!(
        "   report.html (open it in a browser): {}\n",
        page.display()
    );

    // The audit reads the stack as the provider does; the policy lifted above is its finding.
    let report = work().join("compliance-monitoring-analysis.json");
    println!(
        "== Audit: terraform-provider-compliance analyse --state terraform.tfstate (expect one finding:\n   \
         the TLS-only policy lifted above for the emulator):"
    );
    let mut audit = Command::new(provider_bin());
    aws_env(&mut audit)
        .current_dir(&dir)
        .args(["analyse", "--state", "terraform.tfstate"])
        // The example's provider block sets these; the state does not record them.
        .args(["--default-tags", "Project=ComplianceMonitoring", "--output"])
        .arg(&report);
    let status = audit.status().map_err(|e| e.to_string())?;
    match status.code() {
        Some(0 | 1) => println!("   report: {}\n", report.display()),
        _ => return Err(format!("the audit could not run ({status})")),
    }

    println!("== Outputs:");
    tf(&dir, &cli_config, &["output", "-no-color"])?;
    println!(
        "\n== Done. The stack lives in the emulator at {}; the scan result is in its bucket under scans/.\n\
         Inspect it with the AWS CLI or boto3 pointed at that endpoint.\n\
         To remove the stack and stop the emulator: cargo xtask demo destroy",
        endpoint()
    );
    Ok(())
}

/// Puts the environment of the deployed function `function` on `cmd`, printing each setting, so
/// that a local run uses exactly what the stack configured.
fn deployed_env(function: &str, cmd: &mut Command) -> Result<(), String> {
    let mut get = Command::new(venv_bin().join("python"));
    aws_env(&mut get).args([
        "-c",
        "import boto3,sys,os;f=boto3.client('lambda',endpoint_url=os.environ['AWS_ENDPOINT_URL']).get_function(FunctionName=sys.argv[1]);\
         [print(k+'='+v) for k,v in f['Configuration']['Environment']['Variables'].items()]",
        function,
    ]);
    let out = get.output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "reading {function}'s settings: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some((k, v)) = line.split_once('=') {
            println!("  {k}={v}");
            cmd.env(k, v);
        }
    }
    Ok(())
}

fn destroy() -> Result<(), String> {
    if !emulator_up() {
        return Err(format!("no emulator at {}: nothing to destroy", endpoint()));
    }
    let (dir, cli_config) = prepare()?;
    tf(
        &dir,
        &cli_config,
        &["destroy", "-auto-approve", "-no-color", "-input=false"],
    )?;
    if let Ok(pid) = std::fs::read_to_string(work().join("moto.pid")) {
        run(Command::new("kill").arg(pid.trim()))?;
        let _ = std::fs::remove_file(work().join("moto.pid"));
    }
    println!("== Stack destroyed and emulator stopped.");
    Ok(())
}
