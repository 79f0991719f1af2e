//! The function code the provider embeds: each zip holds exactly one executable `bootstrap`, an
//! x86_64 ELF for `provided.al2023` that needs no glibc newer than 2.34, the zip's digests match
//! what the provider reports, and the bootstrap starts (as its CLI, outside Lambda).
//!
//! The zip and ELF readers here are written for the test, independent of the code that writes
//! the zips, and check every field they rely on.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use terraform_provider_compliance::code::{self, FunctionCode};

/// The newest glibc symbol version Lambda's `provided.al2023` runtime provides.
const MAX_GLIBC: (u32, u32) = (2, 34);

fn functions() -> [&'static FunctionCode; 2] {
    [code::scanner(), code::reporter()]
}

// ---------------------------------------------------------------------------------------------
// A minimal zip reader: the end of central directory record, its entries, their local headers.

/// One entry as the central directory and local header describe it, with its inflated data.
struct Entry {
    name: String,
    /// High 16 bits of the external attributes: the Unix mode when made on Unix.
    unix_mode: u32,
    made_on_unix: bool,
    dos_time: u16,
    dos_date: u16,
    data: Vec<u8>,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn read_zip(zip: &[u8]) -> Vec<Entry> {
    // No archive comment is expected, so the record is the last 22 bytes.
    assert!(zip.len() > 22, "zip too short");
    let eocd = zip.len() - 22;
    assert_eq!(
        u32_at(zip, eocd),
        0x0605_4b50,
        "no end of central directory record"
    );
    assert_eq!(u16_at(zip, eocd + 20), 0, "unexpected archive comment");
    let count = usize::from(u16_at(zip, eocd + 10));
    assert_eq!(usize::from(u16_at(zip, eocd + 8)), count);
    let cd_size = u32_at(zip, eocd + 12) as usize;
    let cd_offset = u32_at(zip, eocd + 16) as usize;
    assert_eq!(
        cd_offset + cd_size,
        eocd,
        "central directory must end at the record"
    );

    let mut entries = Vec::new();
    let mut at = cd_offset;
    for _ in 0..count {
        assert_eq!(u32_at(zip, at), 0x0201_4b50, "bad central directory header");
        let made_by = u16_at(zip, at + 4);
        let flags = u16_at(zip, at + 8);
        let method = u16_at(zip, at + 10);
        let dos_time = u16_at(zip, at + 12);
        let dos_date = u16_at(zip, at + 14);
        let crc = u32_at(zip, at + 16);
        let compressed = u32_at(zip, at + 20) as usize;
        let size = u32_at(zip, at + 24) as usize;
        let name_len = usize::from(u16_at(zip, at + 28));
        let extra_len = usize::from(u16_at(zip, at + 30));
        let comment_len = usize::from(u16_at(zip, at + 32));
        let external = u32_at(zip, at + 38);
        let local = u32_at(zip, at + 42) as usize;
        let name = String::from_utf8(zip[at + 46..at + 46 + name_len].to_vec()).unwrap();
        assert_eq!(flags & 1, 0, "{name}: encrypted");
        assert_eq!(
            (extra_len, comment_len),
            (0, 0),
            "{name}: extra fields or comment"
        );

        // The local header must agree with the central directory.
        assert_eq!(u32_at(zip, local), 0x0403_4b50, "{name}: bad local header");
        assert_eq!(u16_at(zip, local + 8), method);
        assert_eq!(u32_at(zip, local + 14), crc);
        assert_eq!(u32_at(zip, local + 18) as usize, compressed);
        assert_eq!(u32_at(zip, local + 22) as usize, size);
        let local_name_len = usize::from(u16_at(zip, local + 26));
        let local_extra_len = usize::from(u16_at(zip, local + 28));
        assert_eq!(
            &zip[local + 30..local + 30 + local_name_len],
            name.as_bytes()
        );
        let start = local + 30 + local_name_len + local_extra_len;
        let raw = &zip[start..start + compressed];
        let data = match method {
            0 => raw.to_vec(),
            8 => {
                let mut out = Vec::with_capacity(size);
                let mut decoder = flate2::write::DeflateDecoder::new(&mut out);
                decoder.write_all(raw).unwrap();
                decoder.finish().unwrap();
                out
            }
            other => panic!("{name}: compression method {other} is not one Lambda reads"),
        };
        assert_eq!(data.len(), size, "{name}: inflated size");
        let mut check = flate2::Crc::new();
        check.update(&data);
        assert_eq!(check.sum(), crc, "{name}: CRC-32");
        entries.push(Entry {
            name,
            unix_mode: external >> 16,
            made_on_unix: made_by >> 8 == 3,
            dos_time,
            dos_date,
            data,
        });
        at += 46 + name_len + extra_len + comment_len;
    }
    assert_eq!(at, eocd, "central directory size");
    entries
}

fn bootstrap(code: &FunctionCode) -> Entry {
    let mut entries = read_zip(code.zip);
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["bootstrap"], "{}: entries", code.name);
    entries.pop().unwrap()
}

// ---------------------------------------------------------------------------------------------
// A minimal ELF64 reader: the header, the interpreter, and the version needs (.gnu.version_r).

/// What the checks need from an ELF file.
struct Elf {
    machine: u16,
    kind: u16,
    interpreter: Option<String>,
    /// (library, version name) for every version the file needs, e.g. ("libc.so.6", "GLIBC_2.34").
    needs: Vec<(String, String)>,
}

const SHT_GNU_VERNEED: u32 = 0x6fff_fffe;
const PT_INTERP: u32 = 3;

fn c_str(b: &[u8], at: usize) -> String {
    let end = b[at..]
        .iter()
        .position(|&c| c == 0)
        .expect("unterminated string")
        + at;
    String::from_utf8(b[at..end].to_vec()).unwrap()
}

fn read_elf(b: &[u8]) -> Elf {
    assert_eq!(&b[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(b[4], 2, "not ELF64");
    assert_eq!(b[5], 1, "not little-endian");
    let kind = u16_at(b, 16);
    let machine = u16_at(b, 18);
    let phoff = u64_at(b, 32) as usize;
    let shoff = u64_at(b, 40) as usize;
    let (phentsize, phnum) = (usize::from(u16_at(b, 54)), usize::from(u16_at(b, 56)));
    let (shentsize, shnum) = (usize::from(u16_at(b, 58)), usize::from(u16_at(b, 60)));

    let mut interpreter = None;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if u32_at(b, ph) == PT_INTERP {
            interpreter = Some(c_str(b, u64_at(b, ph + 8) as usize));
        }
    }

    let section = |i: usize| {
        let sh = shoff + i * shentsize;
        (
            u32_at(b, sh + 4),           // type
            u64_at(b, sh + 24) as usize, // offset
            u32_at(b, sh + 40) as usize, // link
            u32_at(b, sh + 44) as usize, // info
        )
    };
    let mut needs = Vec::new();
    for i in 0..shnum {
        let (kind, offset, link, count) = section(i);
        if kind != SHT_GNU_VERNEED {
            continue;
        }
        let strtab = section(link).1;
        let mut need = offset;
        for _ in 0..count {
            let file = c_str(b, strtab + u32_at(b, need + 4) as usize);
            let mut aux = need + u32_at(b, need + 8) as usize;
            for _ in 0..u16_at(b, need + 2) {
                needs.push((file.clone(), c_str(b, strtab + u32_at(b, aux + 8) as usize)));
                aux += u32_at(b, aux + 12) as usize;
            }
            need += u32_at(b, need + 12) as usize;
        }
    }
    Elf {
        machine,
        kind,
        interpreter,
        needs,
    }
}

/// `GLIBC_2.34` -> (2, 34); other version names (e.g. `GLIBC_PRIVATE`) -> None.
fn glibc_version(name: &str) -> Option<(u32, u32)> {
    let mut parts = name.strip_prefix("GLIBC_")?.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |m| m.parse().ok())?;
    Some((major, minor))
}

// ---------------------------------------------------------------------------------------------

#[test]
fn each_zip_holds_one_executable_bootstrap_with_a_fixed_timestamp() {
    for code in functions() {
        let entry = bootstrap(code);
        assert!(
            entry.made_on_unix,
            "{}: mode not recorded as Unix",
            code.name
        );
        assert_eq!(
            entry.unix_mode, 0o100_755,
            "{}: bootstrap mode {:o}",
            code.name, entry.unix_mode
        );
        // 1980-01-01 00:00: the same bytes whenever the binary was built.
        assert_eq!(
            (entry.dos_date, entry.dos_time),
            ((1 << 5) | 1, 0),
            "{}",
            code.name
        );
        assert!(
            entry.data.len() > 100_000,
            "{}: bootstrap implausibly small",
            code.name
        );
    }
    assert_ne!(
        bootstrap(code::scanner()).data,
        bootstrap(code::reporter()).data,
        "the scanner and reporter zips hold the same binary"
    );
}

#[test]
fn bootstrap_is_an_x86_64_glibc_executable_needing_at_most_glibc_2_34() {
    for code in functions() {
        let elf = read_elf(&bootstrap(code).data);
        assert_eq!(elf.machine, 62, "{}: not x86_64 (EM_X86_64)", code.name);
        assert!(
            matches!(elf.kind, 2 | 3),
            "{}: not an executable",
            code.name
        );
        assert_eq!(
            elf.interpreter.as_deref(),
            Some("/lib64/ld-linux-x86-64.so.2"),
            "{}: not linked for glibc's loader",
            code.name
        );
        let glibc: Vec<(u32, u32)> = elf
            .needs
            .iter()
            .filter_map(|(_, version)| glibc_version(version))
            .collect();
        // Without any GLIBC version need the check below would pass on a broken parse.
        assert!(
            elf.needs.iter().any(|(file, _)| file == "libc.so.6") && !glibc.is_empty(),
            "{}: no glibc version needs found: {:?}",
            code.name,
            elf.needs
        );
        let newest = glibc.iter().max().unwrap();
        assert!(
            *newest <= MAX_GLIBC,
            "{}: needs GLIBC_{}.{}, newer than provided.al2023's 2.34; needs: {:?}",
            code.name,
            newest.0,
            newest.1,
            elf.needs
        );
    }
}

#[test]
fn elf_reader_finds_the_version_needs_of_this_test_binary() {
    // This test binary is linked against the host's glibc: the reader must see its needs, so
    // that an empty result in the check above cannot come from a reader that finds nothing.
    let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    let elf = read_elf(&me);
    assert_eq!(elf.machine, 62);
    assert!(
        elf.needs
            .iter()
            .any(|(file, v)| file == "libc.so.6" && glibc_version(v).is_some()),
        "{:?}",
        elf.needs
    );
    assert_eq!(glibc_version("GLIBC_2.34"), Some((2, 34)));
    assert_eq!(glibc_version("GLIBC_2.2.5"), Some((2, 2)));
    assert_eq!(glibc_version("GLIBC_PRIVATE"), None);
    assert!(glibc_version("GLIBC_2.35").unwrap() > MAX_GLIBC);
}

#[test]
fn digests_match_the_embedded_bytes() {
    use base64::Engine;
    for code in functions() {
        let digest = Sha256::digest(code.zip);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(code.sha256_hex, hex, "{}", code.name);
        assert_eq!(
            code.sha256_base64,
            base64::engine::general_purpose::STANDARD.encode(digest),
            "{}",
            code.name
        );
        // Lambda's CodeSha256 form: 32 bytes in standard, padded base64.
        assert_eq!(code.sha256_base64.len(), 44, "{}", code.name);
    }
}

#[test]
fn bootstrap_starts_as_its_cli_outside_lambda() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("code-bootstrap");
    std::fs::create_dir_all(&dir).unwrap();
    for code in functions() {
        let entry = bootstrap(code);
        let path = dir.join(code.name);
        std::fs::write(&path, &entry.data).unwrap();
        std::fs::set_permissions(
            &path,
            std::fs::Permissions::from_mode(entry.unix_mode & 0o777),
        )
        .unwrap();
        let mut child = Command::new(&path)
            .arg("--version")
            .env_remove("AWS_LAMBDA_RUNTIME_API")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: cannot start bootstrap: {e}", code.name));
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "{}: bootstrap --version still running after 30 s",
                    code.name
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: bootstrap --version failed ({}): {stdout}{}",
            code.name,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        // The right binary in the right zip, at the workspace's version.
        assert_eq!(
            stdout.trim(),
            format!("{} {}", code.name, env!("CARGO_PKG_VERSION")),
            "{}",
            code.name
        );
    }
}
