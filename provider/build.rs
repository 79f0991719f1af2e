//! Embeds the Lambda zips of the scanner and reporter (built by `cargo xtask lambda`) into the
//! provider, with their SHA-256 digests, so that a user needs nothing but the provider binary.
//!
//! The zips come from `COMPLIANCE_LAMBDA_ZIPS` (a folder), else `<target>/lambda-zips`. A
//! missing zip fails the build: a provider without its function code would be a defect.

use std::path::{Path, PathBuf};

use base64::Engine;
use sha2::{Digest, Sha256};

/// (constant prefix in `code_hashes.rs`, zip file stem).
const FUNCTIONS: [(&str, &str); 2] = [
    ("SCANNER", "compliance-scanner"),
    ("REPORTER", "compliance-reporter"),
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=COMPLIANCE_LAMBDA_ZIPS");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dir = zips_dir();
    let mut consts = String::new();
    for (prefix, stem) in FUNCTIONS {
        let path = dir.join(format!("{stem}.zip"));
        // A missing file counts as changed, so the build runs again once the zip appears.
        println!("cargo:rerun-if-changed={}", path.display());
        let zip = match std::fs::read(&path) {
            Ok(zip) if zip.starts_with(b"PK\x03\x04") => zip,
            Ok(_) => fail(&format!("{} is not a zip archive", path.display())),
            Err(e) => fail(&format!("cannot read {}: {e}", path.display())),
        };
        let copy = out.join(format!("{stem}.zip"));
        if let Err(e) = std::fs::write(&copy, &zip) {
            fail(&format!("cannot write {}: {e}", copy.display()));
        }
        let digest = Sha256::digest(&zip);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(digest);
        consts.push_str(&format!(
            "/// SHA-256 of the {stem} zip, lower-case hex.\n\
             pub const {prefix}_SHA256_HEX: &str = \"{hex}\";\n\
             /// SHA-256 of the {stem} zip, base64 (Lambda's `CodeSha256`).\n\
             pub const {prefix}_SHA256_BASE64: &str = \"{b64}\";\n"
        ));
    }
    let hashes = out.join("code_hashes.rs");
    if let Err(e) = std::fs::write(&hashes, consts) {
        fail(&format!("cannot write {}: {e}", hashes.display()));
    }
}

/// The zips' folder, by the same rule as `cargo xtask lambda`.
fn zips_dir() -> PathBuf {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest.parent().expect("provider/ sits in the workspace");
    if let Some(dir) = std::env::var_os("COMPLIANCE_LAMBDA_ZIPS") {
        return workspace.join(dir);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|dir| workspace.join(dir))
        .unwrap_or_else(|| workspace.join("target"));
    target.join("lambda-zips")
}

/// Stops the build with a message that says how to produce the zips.
fn fail(problem: &str) -> ! {
    eprintln!(
        "error: the provider embeds the Lambda zips of the scanner and reporter, and {problem}.\n\
         Run `cargo xtask lambda` first (it builds them into {}), or point \
         COMPLIANCE_LAMBDA_ZIPS at a folder holding compliance-scanner.zip and \
         compliance-reporter.zip.",
        Path::new("target").join("lambda-zips").display()
    );
    std::process::exit(1);
}
