//! `cargo xtask <task>`: the project's entry points.
//!
//! - `setup`: install what tests need into a cache outside the repo (`COMPLIANCE_TOOLS_DIR`,
//!   default `~/.cache/compliance-monitor`): moto, Terraform, cargo-lambda, zig, Chromium.
//! - `test`: setup, build everything once (dev profile), run every test.
//! - `demo`: setup, build the provider, install it into a filesystem mirror, and run Terraform on
//!   `examples/terraform`.
//! - `bench`: print the provider's start-up and memory figures.

mod bench;
mod setup;

use std::path::Path;
use std::process::{Command, ExitCode};

use test_support::workspace_root;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup::setup(),
        Some("test") => setup::setup().and_then(|()| test(&args[1..])),
        Some("demo") => setup::setup().and_then(|()| demo()),
        Some("bench") => setup::setup().and_then(|()| bench::run_bench()),
        Some("rss-wrap") => bench::rss_wrap(&args[1..]),
        _ => Err("usage: cargo xtask <setup | test | demo | bench>".to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a command, echoing it; an error names it.
pub fn run(cmd: &mut Command) -> Result<(), String> {
    eprintln!("+ {}", describe(cmd));
    let status = cmd
        .status()
        .map_err(|e| format!("{}: {e}", describe(cmd)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed ({status})", describe(cmd)))
    }
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

/// Builds every target once in the dev profile, then runs every test of the workspace.
fn test(extra: &[String]) -> Result<(), String> {
    // One build for everything: the end-to-end tests use the binaries this builds.
    run(cargo().args(["build", "--workspace", "--all-targets"]))?;
    run(cargo()
        .args(["test", "--workspace", "--no-fail-fast"])
        .args(extra))
}

/// Builds the provider, installs it into a filesystem mirror and runs Terraform on the example.
fn demo() -> Result<(), String> {
    run(cargo().args(["build", "-p", "terraform-provider-compliance"]))?;
    let root = workspace_root();
    let work = root.join("target").join("demo");
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let cli_config = test_support::install_mirror(&test_support::provider_bin(), &work);
    let example = root.join("examples").join("terraform");
    let data_dir = work.join(".terraform");
    let tf = |args: &[&str]| -> Result<(), String> {
        let mut cmd = test_support::terraform(&example, &cli_config);
        cmd.env("TF_DATA_DIR", &data_dir).args(args);
        run(&mut cmd)
    };
    println!(
        "== Provider installed into a filesystem mirror at {}",
        work.join("mirror").display()
    );
    tf(&["init", "-no-color", "-lockfile=readonly"]).or_else(|_| tf(&["init", "-no-color"]))?;
    tf(&["validate", "-no-color"])?;
    tf(&[
        "plan",
        "-no-color",
        "-lock=false",
        &format!("-state={}", work.join("terraform.tfstate").display()),
    ])?;
    println!(
        "\n== Demo done: Terraform installed, validated and planned the compliance_monitor stack."
    );
    Ok(())
}

/// True when `path` exists and is executable.
pub fn executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}
