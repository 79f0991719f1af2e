//! `cargo xtask lambda`: builds the scanner and reporter for Lambda's `provided.al2023` x86_64
//! runtime and packages each as the zip the provider embeds.
//!
//! The binaries are cross-linked by cargo-lambda through zig against glibc 2.34 (the runtime's
//! glibc), in the `lambda` profile. Each zip holds one entry, `bootstrap`, written here rather
//! than by cargo-lambda so that the bytes depend only on the binary: fixed timestamp, fixed mode,
//! no extra fields. Paths are remapped so that the checkout's location does not leak into the
//! binary either.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use base64::Engine;
use sha2::{Digest, Sha256};
use test_support::{target_dir, venv_bin, workspace_root, SETUP_HINT};

use crate::run;

/// The function binaries the provider ships, by package and binary name.
pub const FUNCTIONS: [&str; 2] = ["compliance-scanner", "compliance-reporter"];

/// Rust target for `provided.al2023` x86_64; the `.2.34` suffix makes cargo-zigbuild link
/// against that glibc version, the one Amazon Linux 2023 ships.
const TARGET: &str = "x86_64-unknown-linux-gnu.2.34";

/// Cargo profile the bootstraps are built with (see the root `Cargo.toml`).
const PROFILE: &str = "lambda";

/// DOS date of 1980-01-01, the earliest a zip entry can carry: a fixed stamp keeps the zip's
/// bytes independent of when the binary was built.
const DOS_DATE_1980_01_01: u16 = (1 << 5) | 1;

/// Unix mode of the `bootstrap` entry: a regular file, rwxr-xr-x.
const BOOTSTRAP_MODE: u32 = 0o100_755;

/// The folder the zips are written to: `COMPLIANCE_LAMBDA_ZIPS`, else `<target>/lambda-zips`
/// (the same rule `provider/build.rs` reads them with).
pub fn zips_dir() -> PathBuf {
    match std::env::var_os("COMPLIANCE_LAMBDA_ZIPS") {
        Some(dir) => workspace_root().join(dir),
        None => target_dir().join("lambda-zips"),
    }
}

/// Runs the task. `--check-reproducible` also packages every binary twice and fails unless both
/// zips, and the one on disk, are byte for byte the same.
pub fn lambda(args: &[String]) -> Result<(), String> {
    let mut check = false;
    for arg in args {
        match arg.as_str() {
            "--check-reproducible" => check = true,
            other => return Err(format!("lambda: unknown option `{other}`")),
        }
    }
    let started = Instant::now();
    let bin_dir = build()?;
    let zips = zips_dir();
    std::fs::create_dir_all(&zips).map_err(|e| format!("{}: {e}", zips.display()))?;
    for name in FUNCTIONS {
        let binary_path = bin_dir.join(name).join("bootstrap");
        let binary =
            std::fs::read(&binary_path).map_err(|e| format!("{}: {e}", binary_path.display()))?;
        let zip_path = zips.join(format!("{name}.zip"));
        let zip = package(&binary, &zip_path)?;
        if check {
            let again = zip_bootstrap(&binary);
            if again != zip {
                return Err(format!(
                    "{name}: packaging the same binary twice gave different zips ({} and {})",
                    hex(&Sha256::digest(&zip)),
                    hex(&Sha256::digest(&again))
                ));
            }
        }
        let digest = Sha256::digest(&zip);
        println!(
            "{name}: {} ({} bytes, bootstrap {} bytes)\n  sha256 {}\n  CodeSha256 {}",
            zip_path.display(),
            zip.len(),
            binary.len(),
            hex(&digest),
            base64::engine::general_purpose::STANDARD.encode(digest)
        );
    }
    if check {
        println!("reproducible: packaging each binary twice gave identical zips");
    }
    println!("lambda: done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Builds both bootstraps with cargo-lambda; returns the folder holding `<name>/bootstrap`.
fn build() -> Result<PathBuf, String> {
    let cargo_lambda = venv_bin().join("cargo-lambda");
    if !cargo_lambda.exists() {
        return Err(format!(
            "cargo-lambda is not installed at {}: {SETUP_HINT}",
            cargo_lambda.display()
        ));
    }
    let root = workspace_root();
    let target = target_dir();
    let bin_dir = target.join("lambda-bin");
    // cargo-zigbuild takes zig from CARGO_ZIGBUILD_ZIG_PATH, else `zig` on PATH, else
    // `python3 -m ziglang`. Point it at the pinned `ziglang` package's binary so that a system
    // zig of another version cannot change the output; the venv's bin goes first on PATH too.
    let path = std::env::join_paths(std::iter::once(venv_bin()).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .map_err(|e| e.to_string())?;
    let zig = venv_zig()?;
    let mut cmd = Command::new(cargo_lambda);
    cmd.current_dir(&root)
        .env("CARGO_ZIGBUILD_ZIG_PATH", zig)
        .env("PATH", path)
        // Only the remaps below: flags from the caller's environment would change the bytes.
        // The encoded form keeps paths with spaces whole.
        .env_remove("RUSTFLAGS")
        .env("CARGO_ENCODED_RUSTFLAGS", remap_flags(&root, &target))
        .args(["lambda", "build", "--profile", PROFILE, "--target", TARGET])
        // The profile alone decides optimisation; cargo-lambda would otherwise add its own.
        .arg("--disable-optimizations")
        .arg("--output-format")
        .arg("binary")
        .arg("--lambda-dir")
        .arg(&bin_dir);
    for name in FUNCTIONS {
        cmd.args(["--package", name, "--bin", name]);
    }
    run(&mut cmd)?;
    Ok(bin_dir)
}

/// The zig binary of the venv's `ziglang` package (`lib/python3.*/site-packages/ziglang/zig`).
fn venv_zig() -> Result<PathBuf, String> {
    let lib = venv_bin().with_file_name("lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|dirs| {
        dirs.filter_map(Result::ok)
            .map(|d| d.path().join("site-packages").join("ziglang").join("zig"))
            .find(|zig| zig.is_file())
    });
    found.ok_or_else(|| {
        format!(
            "zig (the `ziglang` pip package) is not installed under {}: {SETUP_HINT}",
            lib.display()
        )
    })
}

/// `--remap-path-prefix` flags (joined by 0x1f, as `CARGO_ENCODED_RUSTFLAGS` wants) that replace the machine's paths in panic locations and
/// generated sources; rustc applies the last match, so the more specific ones come last.
fn remap_flags(root: &Path, target: &Path) -> String {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&std::env::var_os("HOME").unwrap_or_default()).join(".cargo"));
    [
        (cargo_home.as_path(), "/cargo"),
        (root, "/build"),
        (target, "/target"),
    ]
    .iter()
    .map(|(from, to)| format!("--remap-path-prefix={}={to}", from.display()))
    .collect::<Vec<_>>()
    .join("\u{1f}")
}

/// Zips `binary` into `path`. The zip is reused when a stamp beside it records the digest of
/// the binary it was made from (deflating ~45 MB takes tens of seconds in xtask's dev build),
/// and rewritten only when its bytes change: an unchanged file keeps its mtime, so the
/// provider's build script does not run again.
fn package(binary: &[u8], path: &Path) -> Result<Vec<u8>, String> {
    let stamp = path.with_extension("zip.source-sha256");
    let source = format!("{} {}\n", hex(&Sha256::digest(binary)), binary.len());
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(source.as_str()) {
        if let Ok(zip) = std::fs::read(path) {
            return Ok(zip);
        }
    }
    let zip = zip_bootstrap(binary);
    if std::fs::read(path).ok().as_deref() != Some(zip.as_slice()) {
        let tmp = path.with_extension("zip.tmp");
        std::fs::write(&tmp, &zip).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    std::fs::write(&stamp, source).map_err(|e| format!("{}: {e}", stamp.display()))?;
    Ok(zip)
}

/// A zip archive with one deflated entry, `bootstrap`, mode 0755, dated 1980-01-01 00:00.
pub fn zip_bootstrap(binary: &[u8]) -> Vec<u8> {
    const NAME: &[u8] = b"bootstrap";
    let size = u32::try_from(binary.len()).expect("a Lambda bootstrap is far below 4 GiB");
    let mut crc = flate2::Crc::new();
    crc.update(binary);
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(binary).expect("writing to memory");
    let data = encoder.finish().expect("writing to memory");
    let compressed = u32::try_from(data.len()).expect("compressed size below 4 GiB");

    // Fields shared by the local header and the central directory entry, in the same order.
    let mut common = Vec::new();
    common.extend_from_slice(&20u16.to_le_bytes()); // version needed: 2.0 (deflate)
    common.extend_from_slice(&0u16.to_le_bytes()); // flags: sizes known, no data descriptor
    common.extend_from_slice(&8u16.to_le_bytes()); // method: deflate
    common.extend_from_slice(&0u16.to_le_bytes()); // time 00:00:00
    common.extend_from_slice(&DOS_DATE_1980_01_01.to_le_bytes());
    common.extend_from_slice(&crc.sum().to_le_bytes());
    common.extend_from_slice(&compressed.to_le_bytes());
    common.extend_from_slice(&size.to_le_bytes());
    common.extend_from_slice(&(NAME.len() as u16).to_le_bytes());
    common.extend_from_slice(&0u16.to_le_bytes()); // extra field length

    let mut zip = Vec::with_capacity(data.len() + 128);
    zip.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
    zip.extend_from_slice(&common);
    zip.extend_from_slice(NAME);
    zip.extend_from_slice(&data);

    let central_offset = zip.len() as u32;
    zip.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
    // Version made by: Unix (3), spec 2.0, so readers take the mode from the external attributes.
    zip.extend_from_slice(&((3u16 << 8) | 20).to_le_bytes());
    zip.extend_from_slice(&common);
    zip.extend_from_slice(&0u16.to_le_bytes()); // comment length
    zip.extend_from_slice(&0u16.to_le_bytes()); // disk number
    zip.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
    zip.extend_from_slice(&(BOOTSTRAP_MODE << 16).to_le_bytes());
    zip.extend_from_slice(&0u32.to_le_bytes()); // local header offset
    zip.extend_from_slice(NAME);
    let central_size = zip.len() as u32 - central_offset;

    zip.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    zip.extend_from_slice(&0u16.to_le_bytes()); // this disk
    zip.extend_from_slice(&0u16.to_le_bytes()); // disk with the central directory
    zip.extend_from_slice(&1u16.to_le_bytes()); // entries on this disk
    zip.extend_from_slice(&1u16.to_le_bytes()); // entries in total
    zip.extend_from_slice(&central_size.to_le_bytes());
    zip.extend_from_slice(&central_offset.to_le_bytes());
    zip.extend_from_slice(&0u16.to_le_bytes()); // comment length
    zip
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_binary_gives_same_zip_and_different_binary_does_not() {
        let binary: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let a = zip_bootstrap(&binary);
        assert_eq!(a, zip_bootstrap(&binary));
        let mut other = binary.clone();
        other[1000] ^= 1;
        assert_ne!(a, zip_bootstrap(&other));
    }

    #[test]
    fn zip_has_one_bootstrap_entry_that_inflates_back() {
        let binary: Vec<u8> = (0..50_000u32).map(|i| (i % 97) as u8).collect();
        let zip = zip_bootstrap(&binary);
        // End of central directory: one entry, directory right after the data.
        let eocd = zip.len() - 22;
        assert_eq!(zip[eocd..eocd + 4], 0x0605_4b50u32.to_le_bytes());
        assert_eq!(u16::from_le_bytes([zip[eocd + 10], zip[eocd + 11]]), 1);
        let compressed = u32::from_le_bytes(zip[18..22].try_into().unwrap()) as usize;
        assert_eq!(&zip[30..39], b"bootstrap");
        let mut inflated = Vec::new();
        let mut decoder = flate2::write::DeflateDecoder::new(&mut inflated);
        decoder.write_all(&zip[39..39 + compressed]).unwrap();
        decoder.finish().unwrap();
        assert_eq!(inflated, binary);
    }
}
