//! Helpers for the end-to-end tests: a Terraform working folder with the provider installed from a
//! filesystem mirror, exactly as a user's would be.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use test_support::{install_mirror, provider_bin, terraform};

/// The `terraform { required_providers }` block every test configuration starts with.
pub const REQUIRED_PROVIDERS: &str = r#"terraform {
  required_providers {
    compliance = {
      source = "compliance-monitor/compliance"
    }
  }
}
"#;

/// A provider block that can never reach AWS: a loopback endpoint and dummy region.
pub const OFFLINE_PROVIDER: &str = r#"provider "compliance" {
  region       = "us-east-1"
  endpoint_url = "http://127.0.0.1:9"
}
"#;

/// A fresh folder under the target dir, named for the test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = test_support::target_dir()
        .join("e2e")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch folder");
    dir
}

/// The CLI config of a mirror holding the current provider build, made once per test binary.
pub fn cli_config() -> &'static Path {
    static CONFIG: OnceLock<PathBuf> = OnceLock::new();
    CONFIG.get_or_init(|| install_mirror(&provider_bin(), &scratch("mirror")))
}

/// A Terraform working folder.
pub struct Workdir {
    /// The folder with the configuration.
    pub dir: PathBuf,
    /// The data folder (`TF_DATA_DIR`), which may be shared between folders.
    pub data_dir: PathBuf,
    /// Extra environment for every terraform run (e.g. the emulator's credentials).
    pub env: Vec<(String, String)>,
}

impl Workdir {
    /// A folder holding `main.tf`, not yet initialised.
    pub fn new(name: &str, main_tf: &str) -> Workdir {
        let dir = scratch(name);
        std::fs::write(dir.join("main.tf"), main_tf).expect("write main.tf");
        Workdir {
            data_dir: dir.join(".terraform"),
            dir,
            env: Vec::new(),
        }
    }

    /// A folder that shares `init`'s result (data folder and lock file) with `other`.
    pub fn sharing(other: &Workdir, name: &str, main_tf: &str) -> Workdir {
        let w = Workdir::new(name, main_tf);
        std::fs::copy(
            other.dir.join(".terraform.lock.hcl"),
            w.dir.join(".terraform.lock.hcl"),
        )
        .expect("copy lock file (run init on the first folder)");
        Workdir {
            data_dir: other.data_dir.clone(),
            dir: w.dir,
            env: other.env.clone(),
        }
    }

    /// Replaces `main.tf`.
    pub fn write(&self, main_tf: &str) {
        std::fs::write(self.dir.join("main.tf"), main_tf).expect("write main.tf");
    }

    /// Runs terraform with `args` and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        terraform(&self.dir, cli_config())
            .env("TF_DATA_DIR", &self.data_dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(args)
            .output()
            .expect("run terraform")
    }

    /// Runs terraform and panics with its output unless it succeeds.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let text = text(&out);
        assert!(out.status.success(), "terraform {args:?} failed:\n{text}");
        text
    }

    /// `terraform init` from the mirror.
    pub fn init(&self) -> String {
        self.ok(&["init", "-no-color", "-input=false"])
    }
}

/// stdout and stderr of a command, for messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
