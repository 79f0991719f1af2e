//! Helpers for the end-to-end tests: a Terraform working folder with the provider installed from a
//! filesystem mirror, exactly as a user's would be.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use test_support::{install_mirror, provider_bin, terraform, Moto};

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

/// The AWS a test's Terraform runs against: moto alone, or moto behind the fidelity proxy that
/// makes it behave as AWS does (propagation delays, Lambda states, throttling, lost answers).
/// The test's own SDK calls (checks, changes made outside Terraform) go to moto directly, so
/// they neither meet the faults nor count in the proxy's counters.
pub struct Aws {
    /// The emulator.
    pub moto: Moto,
    /// The proxy in front of it, if any.
    pub proxy: Option<test_support::fidelity::FidelityProxy>,
}

impl Aws {
    /// moto over TLS, as the plain tests have always run.
    pub fn plain() -> Aws {
        Aws {
            moto: Moto::start_tls(),
            proxy: None,
        }
    }

    /// moto over TLS behind the proxy with `config`.
    pub fn behind(config: test_support::fidelity::Fidelity) -> Aws {
        let moto = Moto::start_tls();
        let proxy = test_support::fidelity::FidelityProxy::start(&moto, config);
        Aws {
            moto,
            proxy: Some(proxy),
        }
    }

    /// The endpoint Terraform's provider is given.
    pub fn endpoint(&self) -> String {
        self.proxy
            .as_ref()
            .map_or_else(|| self.moto.endpoint(), |p| p.endpoint())
    }

    /// The environment Terraform runs with.
    pub fn aws_env(&self) -> Vec<(String, String)> {
        self.proxy
            .as_ref()
            .map_or_else(|| self.moto.aws_env(), |p| p.aws_env())
    }

    /// The proxy's counters (empty without a proxy).
    pub fn counters(&self) -> test_support::fidelity::Counters {
        self.proxy
            .as_ref()
            .map(|p| p.counters())
            .unwrap_or_default()
    }

    /// Asserts the run met what the realistic proxy injects, so it cannot have passed by never
    /// meeting it: roles Lambda refused while IAM propagated, functions read while Pending or
    /// InProgress, throttled calls; and that the provider, by waiting, never sent an update that
    /// Lambda refused as overlapping (409).
    pub fn assert_met_aws_behaviour(&self) {
        let c = self.counters();
        assert!(
            c.role_not_ready > 0,
            "no IAM propagation refusal met: {c:?}"
        );
        assert!(
            c.lambda_not_ready_reads > 0,
            "no Pending/InProgress function met: {c:?}"
        );
        assert!(c.total_throttled() > 0, "no throttling met: {c:?}");
        assert_eq!(c.lambda_conflicts, 0, "an update overlapped another: {c:?}");
    }
}
