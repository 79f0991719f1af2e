//! The Lambda function code the provider ships: the scanner's and reporter's deployment zips
//! (`provided.al2023`, x86_64), embedded at build time by `build.rs` from `cargo xtask lambda`.
//!
//! The zips are reproducible, so their SHA-256 identifies the code: the resource compares it
//! with the `CodeSha256` Lambda reports to decide whether the code needs an update.

use std::fmt;
use std::sync::OnceLock;

/// Digests computed by `build.rs` from the very bytes included below.
mod hashes {
    include!(concat!(env!("OUT_DIR"), "/code_hashes.rs"));
}

/// One function's deployment package.
pub struct FunctionCode {
    /// The function's binary name (`compliance-scanner` or `compliance-reporter`).
    pub name: &'static str,
    /// The zip: a single executable entry, `bootstrap`.
    pub zip: &'static [u8],
    /// SHA-256 of `zip`, base64 of the raw digest: the form Lambda reports as `CodeSha256`.
    pub sha256_base64: String,
    /// SHA-256 of `zip`, lower-case hex.
    pub sha256_hex: String,
}

// Manual, so that logging a `FunctionCode` prints its identity rather than megabytes of zip.
impl fmt::Debug for FunctionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FunctionCode")
            .field("name", &self.name)
            .field("zip_len", &self.zip.len())
            .field("sha256_base64", &self.sha256_base64)
            .finish()
    }
}

/// The scanner's code (`compliance-scanner`).
pub fn scanner() -> &'static FunctionCode {
    static CODE: OnceLock<FunctionCode> = OnceLock::new();
    CODE.get_or_init(|| FunctionCode {
        name: "compliance-scanner",
        zip: include_bytes!(concat!(env!("OUT_DIR"), "/compliance-scanner.zip")),
        sha256_base64: hashes::SCANNER_SHA256_BASE64.to_string(),
        sha256_hex: hashes::SCANNER_SHA256_HEX.to_string(),
    })
}

/// The reporter's code (`compliance-reporter`).
pub fn reporter() -> &'static FunctionCode {
    static CODE: OnceLock<FunctionCode> = OnceLock::new();
    CODE.get_or_init(|| FunctionCode {
        name: "compliance-reporter",
        zip: include_bytes!(concat!(env!("OUT_DIR"), "/compliance-reporter.zip")),
        sha256_base64: hashes::REPORTER_SHA256_BASE64.to_string(),
        sha256_hex: hashes::REPORTER_SHA256_HEX.to_string(),
    })
}
