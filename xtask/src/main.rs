//! `cargo xtask <task>`: the project's entry points.
//!
//! - `setup`: install what tests need into a cache outside the repo (`COMPLIANCE_TOOLS_DIR`,
//!   default `~/.cache/compliance-monitor`): moto, Terraform, cargo-lambda, zig, Chromium.
//! - `test`: setup, `cargo fmt --check`, build everything once (dev profile), clippy with
//!   warnings as errors, run every test.
//! - `demo`: setup, build the provider, install it into a filesystem mirror, and run Terraform on
//!   `examples/terraform`.
//! - `bench`: print the provider's start-up and memory figures.
//! - `lambda`: build the scanner and reporter for Lambda and package the zips the provider
//!   embeds (`test`, `demo` and `bench` run it first).

mod bench;
mod demo;
mod lambda;
mod setup;

use std::path::Path;
use std::process::{Command, ExitCode};

use test_support::workspace_root;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup::setup(),
        Some("test") => setup::setup()
            .and_then(|()| lambda::lambda(&[]))
            .and_then(|()| test(&args[1..])),
        Some("demo") => setup::setup()
            .and_then(|()| lambda::lambda(&[]))
            .and_then(|()| demo::demo(&args[1..])),
        Some("bench") => setup::setup()
            .and_then(|()| lambda::lambda(&[]))
            .and_then(|()| bench::run_bench()),
        Some("lambda") => setup::setup().and_then(|()| lambda::lambda(&args[1..])),
        Some("rss-wrap") => bench::rss_wrap(&args[1..]),
        _ => Err(
            "usage: cargo xtask <setup | test | demo [destroy] | bench | lambda [--check-reproducible]>"
                .to_string(),
        ),
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

/// A cargo command in the workspace root.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(workspace_root());
    // `cargo xtask` runs this program with xtask's own package variables set. Build scripts that
    // watch one of them (ring watches CARGO_MANIFEST_DIR) would see a changed environment and
    // rebuild, with every crate above them, whenever builds by hand and builds from here take
    // turns. Without them the two share one build.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
            ]
            .contains(&key.as_ref())
        {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd
}

/// Builds every target once in the dev profile, then runs every test of the workspace.
fn test(extra: &[String]) -> Result<(), String> {
    // Style first: it takes a second and names the file to fix.
    run(cargo().args(["fmt", "--all", "--check"]))?;
    // One build for everything: the end-to-end tests use the binaries this builds.
    run(cargo().args(["build", "--workspace", "--all-targets"]))?;
    // Lints, with the workspace's [workspace.lints] and every warning an error.
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    let all = run(cargo()
        .args(["test", "--workspace", "--no-fail-fast"])
        .args(extra));
    // Terraform 1.0.3 is the oldest that speaks protocol 6: when the tests above ran a newer one,
    // the end-to-end tests run again on 1.0.3, so both ends of the supported range are covered.
    let oldest = setup::bundled_terraform()?;
    let newest = std::fs::canonicalize(test_support::terraform_bin()).ok();
    let oldest_too = if newest != std::fs::canonicalize(&oldest).ok() {
        eprintln!(
            "\n== end-to-end tests again on Terraform 1.0.3 ({})",
            oldest.display()
        );
        // `-p e2e` alone would resolve features for that package only and rebuild half the
        // dependency tree; naming its test targets within the workspace reuses the build above.
        let mut cmd = cargo();
        cmd.args(["test", "--workspace", "--no-fail-fast"]);
        for name in e2e_test_targets()? {
            cmd.args(["--test", &name]);
        }
        run(cmd.env("COMPLIANCE_TERRAFORM", &oldest))
    } else {
        Ok(())
    };
    all.and(oldest_too)
}

/// The integration-test targets of `tests/e2e` (one per file in `tests/e2e/tests`). Their names
/// are unique in the workspace, so `--test NAME` selects only them.
fn e2e_test_targets() -> Result<Vec<String>, String> {
    let dir = workspace_root().join("tests/e2e/tests");
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let path = e.path();
            let is_rs = path.extension().is_some_and(|x| x == "rs");
            let stem = path.file_stem()?.to_str()?.to_owned();
            is_rs.then_some(stem)
        })
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(format!("no end-to-end tests found in {}", dir.display()));
    }
    Ok(names)
}

/// True when `path` exists and is executable.
pub fn executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}
