//! The provider benchmark: time from exec to the handshake line, and the provider's peak RSS
//! through a real `terraform plan`. Release build, since that is what users run.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use test_support::fidelity::{Fidelity, FidelityProxy};
use test_support::{install_mirror, terraform, workspace_root};

use crate::run;

const HANDSHAKE_RUNS: usize = 30;

/// Builds the release provider and prints its figures.
pub fn run_bench() -> Result<(), String> {
    run(crate::cargo().args([
        "build",
        "--release",
        "-p",
        "terraform-provider-compliance",
        "-p",
        "xtask",
    ]))?;
    let target = test_support::target_dir().join("release");
    let provider = target.join("terraform-provider-compliance");

    // 1. exec -> handshake line, with AutoMTLS on as under Terraform (certificate generated).
    let work = test_support::target_dir().join("bench");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let client_cert = p521_client_cert(&work)?;
    let mut times = Vec::with_capacity(HANDSHAKE_RUNS);
    for _ in 0..HANDSHAKE_RUNS {
        times.push(handshake_time(&provider, &client_cert)?);
    }
    times.sort();
    let median = times[times.len() / 2];
    let p90 = times[times.len() * 9 / 10];

    // 2. Peak RSS of the provider process through `terraform plan`, measured by a wrapper
    //    that Terraform starts in place of the provider (dev_overrides) and that waits for it.
    let rss_file = work.join("rss.txt");
    let wrapper_dir = work.join("wrapper");
    std::fs::create_dir_all(&wrapper_dir).map_err(|e| e.to_string())?;
    let wrapper = wrapper_dir.join("terraform-provider-compliance");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec '{}' rss-wrap '{}' '{}'\n",
            target.join("xtask").display(),
            provider.display(),
            rss_file.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    make_executable(&wrapper)?;
    let config = work.join("dev.rc");
    std::fs::write(
        &config,
        format!(
            "provider_installation {{\n  dev_overrides {{\n    \"compliance-monitor/compliance\" = \"{}\"\n  }}\n}}\n",
            wrapper_dir.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    // The mirror is unused with dev_overrides; installing it keeps the CLI config helpers shared.
    let _ = install_mirror(&provider, &work);
    let example = workspace_root().join("examples").join("terraform");
    let start = Instant::now();
    let out = terraform(&example, &config)
        .env("TF_DATA_DIR", work.join(".terraform"))
        .args(["plan", "-no-color", "-lock=false", "-refresh=false"])
        .arg(format!("-state={}", work.join("none.tfstate").display()))
        .output()
        .map_err(|e| e.to_string())?;
    let plan_time = start.elapsed();
    if !out.status.success() {
        return Err(format!(
            "terraform plan failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let rss_kb: u64 = std::fs::read_to_string(&rss_file)
        .map_err(|e| format!("the wrapper wrote no RSS figure: {e}"))?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .max()
        .ok_or("no RSS figure")?;

    println!("provider benchmark (release build, {HANDSHAKE_RUNS} runs)");
    println!(
        "  exec -> handshake line (AutoMTLS): median {:.1} ms, p90 {:.1} ms   target < 20 ms",
        ms(median),
        ms(p90)
    );
    println!(
        "  peak RSS through terraform plan:   {:.1} MB   target < 20 MB",
        rss_kb as f64 / 1024.0
    );
    println!(
        "  terraform plan wall time:          {:.0} ms",
        ms(plan_time)
    );
    stack_bench(&provider)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn make_executable(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())
}

fn handshake_time(provider: &Path, client_cert: &str) -> Result<Duration, String> {
    let start = Instant::now();
    let mut child = Command::new(provider)
        .env("TF_PLUGIN_MAGIC_COOKIE", test_support::TF_MAGIC_COOKIE)
        .env("PLUGIN_PROTOCOL_VERSIONS", "6")
        .env("PLUGIN_CLIENT_CERT", client_cert)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let elapsed = start.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    if !line.starts_with("1|6|tcp|127.0.0.1:") {
        return Err(format!("unexpected handshake line {line:?}"));
    }
    Ok(elapsed)
}

/// A self-signed ECDSA P-521 certificate like the one Terraform passes in `PLUGIN_CLIENT_CERT`.
fn p521_client_cert(dir: &Path) -> Result<String, String> {
    let cert = dir.join("client.pem");
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-521",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(dir.join("client.key"))
        .arg("-out")
        .arg(&cert)
        .args(["-subj", "/CN=localhost", "-days", "1"])
        .stderr(Stdio::null()))?;
    std::fs::read_to_string(&cert).map_err(|e| e.to_string())
}

/// `xtask rss-wrap PROVIDER OUT`: runs the provider with this process's stdio and environment,
/// waits, and appends its peak RSS in KB to OUT.
pub fn rss_wrap(args: &[String]) -> Result<(), String> {
    let [provider, out] = args else {
        return Err("usage: xtask rss-wrap PROVIDER OUT".into());
    };
    let status = Command::new(provider).status().map_err(|e| e.to_string())?;
    // SAFETY: getrusage writes into the zeroed struct we pass; RUSAGE_CHILDREN covers the
    // provider, the only child this process waited for.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
        u
    };
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
        .map_err(|e| e.to_string())?;
    writeln!(f, "{}", usage.ru_maxrss).map_err(|e| e.to_string())?;
    std::process::exit(status.code().unwrap_or(1));
}

/// Apply, no-change plan, one-attribute update and destroy against the emulator, with wall time
/// and the AWS requests each makes, by kind, counted by a proxy in front of the emulator.
pub fn stack_bench(provider: &Path) -> Result<(), String> {
    let moto = test_support::Moto::start();
    // With every knob off the fidelity proxy only counts what passes through it.
    let proxy = FidelityProxy::start(&moto, Fidelity::default());
    let port = proxy.port();
    let work = test_support::target_dir().join("bench-stack");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let cli_config = install_mirror(provider, &work);
    let main_tf = |memory: u32| {
        format!(
            "terraform {{\n  required_providers {{\n    compliance = {{ source = \"compliance-monitor/compliance\" }}\n  }}\n}}\n\
             provider \"compliance\" {{\n  region = \"us-east-1\"\n  endpoint_url = \"http://127.0.0.1:{port}\"\n}}\n\
             resource \"compliance_monitor\" \"this\" {{\n  environment_suffix = \"bench\"\n  lambda_memory_mb = {memory}\n}}\n"
        )
    };
    std::fs::write(work.join("main.tf"), main_tf(256)).map_err(|e| e.to_string())?;
    let tf = |args: &[&str]| -> Result<Duration, String> {
        let mut cmd = terraform(&work, &cli_config);
        moto.configure(&mut cmd);
        let start = Instant::now();
        let out = cmd.args(args).output().map_err(|e| e.to_string())?;
        let took = start.elapsed();
        if !out.status.success() && args[0] != "plan" {
            return Err(format!(
                "terraform {args:?} failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(took)
    };
    tf(&["init", "-no-color", "-input=false"])?;
    // Each step prints its figures and returns its wall time and request count.
    let step = |name: &str, args: &[&str]| -> Result<(Duration, u64), String> {
        proxy.reset_counters();
        let took = tf(args)?;
        let c = proxy.counters().requests;
        let total: u64 = c.values().sum();
        let writes: u64 = c.iter().filter(|(k, _)| !is_read(k)).map(|(_, n)| n).sum();
        println!(
            "  {name}: {:.2} s, {total} AWS requests ({writes} writes)",
            took.as_secs_f64()
        );
        for (k, n) in &c {
            println!(
                "      {n:>4}  {k}{}",
                if is_read(k) { "" } else { "   (write)" }
            );
        }
        Ok((took, total))
    };
    println!("\nstack benchmark (against moto, requests counted at a proxy in front of it)");
    let (plain_took, plain_requests) = step(
        "apply (create)",
        &["apply", "-auto-approve", "-no-color", "-input=false"],
    )?;
    step(
        "plan with no change",
        &["plan", "-no-color", "-input=false", "-detailed-exitcode"],
    )?;
    std::fs::write(work.join("main.tf"), main_tf(512)).map_err(|e| e.to_string())?;
    step(
        "apply (lambda_memory_mb 256 -> 512)",
        &["apply", "-auto-approve", "-no-color", "-input=false"],
    )?;
    step(
        "destroy",
        &["destroy", "-auto-approve", "-no-color", "-input=false"],
    )?;

    // The same create as AWS behaves: the proxy delays new roles, keeps new functions Pending
    // and throttles 5 % of requests. The critical path is what cannot overlap: the role's
    // propagation, then the function's Pending, then everything else (the create above).
    let like_aws = Fidelity::realistic(BENCH_SEED);
    let waits = like_aws.iam_propagation + like_aws.lambda_pending;
    proxy.set(like_aws);
    let (took, requests) = step(
        "apply (create) as AWS behaves: IAM 8 s, Lambda Pending 3 s, 5 % throttling",
        &["apply", "-auto-approve", "-no-color", "-input=false"],
    )?;
    let c = proxy.counters();
    let critical = waits + plain_took;
    let extra = requests.saturating_sub(plain_requests);
    println!(
        "      met: {} role refusals while IAM propagated, {} Pending/InProgress reads, {} throttled, {} conflicts",
        c.role_not_ready,
        c.lambda_not_ready_reads,
        c.total_throttled(),
        c.lambda_conflicts
    );
    println!(
        "      critical path {:.2} s ({:.0} s of waits + the plain create {:.2} s): apply took {:.2}x   target <= 1.25x",
        critical.as_secs_f64(),
        waits.as_secs_f64(),
        plain_took.as_secs_f64(),
        took.as_secs_f64() / critical.as_secs_f64()
    );
    println!(
        "      {extra} requests beyond the plain create over {:.0} s of waits: {:.2} per wait second   target <= 1 \
         (both functions wait side by side: {:.2} per function-second)",
        waits.as_secs_f64(),
        extra as f64 / waits.as_secs_f64(),
        extra as f64 / (2.0 * waits.as_secs_f64())
    );
    proxy.set(Fidelity::default());
    step(
        "destroy",
        &["destroy", "-auto-approve", "-no-color", "-input=false"],
    )?;
    Ok(())
}

/// The seed of the proxy's throttling in the benchmark, so runs can be compared.
const BENCH_SEED: u64 = 7;

/// True for request kinds that only read.
fn is_read(kind: &str) -> bool {
    let action = kind.split(':').nth(1).unwrap_or("");
    ["Get", "List", "Describe", "Head"]
        .iter()
        .any(|p| action.starts_with(p))
        || action.starts_with("GET ")
        || action.starts_with("HEAD ")
}
