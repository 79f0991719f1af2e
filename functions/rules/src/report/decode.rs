//! Reading one stored scan object from a byte stream, with a reason a person can read when the
//! object cannot be used.

use std::fmt;
use std::io::{self, Read};

use crate::result::{ScanResult, SCAN_SCHEMA_VERSION};

/// Why a stored scan object was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadScanError {
    /// The object holds no bytes (or only white space).
    Empty,
    /// The JSON stops before the object is complete.
    Truncated(String),
    /// The bytes are not JSON.
    NotJson(String),
    /// The object is a JSON document with a `schema_version` this reader does not know.
    UnknownVersion(String),
    /// The object is JSON of a known version, but not shaped like a scan result.
    NotAScan(String),
    /// Reading the stream failed.
    Io(String),
}

impl fmt::Display for ReadScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadScanError::Empty => write!(f, "empty object"),
            ReadScanError::Truncated(e) => write!(f, "truncated JSON ({e})"),
            ReadScanError::NotJson(e) => write!(f, "not JSON ({e})"),
            ReadScanError::UnknownVersion(v) => write!(
                f,
                "unknown schema_version {v} (this reporter reads {SCAN_SCHEMA_VERSION})"
            ),
            ReadScanError::NotAScan(e) => write!(f, "not a scan result ({e})"),
            ReadScanError::Io(e) => write!(f, "read failed ({e})"),
        }
    }
}

impl std::error::Error for ReadScanError {}

/// How many leading bytes are inspected for the version before the full parse.
const PEEK: usize = 256;

/// Deserialises a scan result straight from `reader`, without holding the raw bytes.
///
/// The scanner writes `schema_version` first, so it is read from the first bytes: an object of an
/// unknown version is named as such even when the rest of its shape has changed. When the field
/// comes later, the version is checked after the parse.
pub fn read_scan<R: Read>(mut reader: R) -> Result<ScanResult, ReadScanError> {
    let mut head = Vec::with_capacity(PEEK);
    (&mut reader)
        .take(PEEK as u64)
        .read_to_end(&mut head)
        .map_err(|e| ReadScanError::Io(e.to_string()))?;
    if head.iter().all(u8::is_ascii_whitespace) {
        return Err(ReadScanError::Empty);
    }
    let leading_version = leading_schema_version(&head);
    if let Some(v) = &leading_version {
        if v != &SCAN_SCHEMA_VERSION.to_string() {
            return Err(ReadScanError::UnknownVersion(v.clone()));
        }
    }
    let mut de = serde_json::Deserializer::from_reader(io::Cursor::new(head).chain(reader));
    let parsed = serde::Deserialize::deserialize(&mut de).and_then(|scan: ScanResult| {
        de.end()?;
        Ok(scan)
    });
    match parsed {
        Ok(scan) if scan.schema_version != SCAN_SCHEMA_VERSION => Err(
            ReadScanError::UnknownVersion(scan.schema_version.to_string()),
        ),
        Ok(scan) => Ok(scan),
        Err(e) => Err(match e.classify() {
            serde_json::error::Category::Io => ReadScanError::Io(e.to_string()),
            serde_json::error::Category::Eof => ReadScanError::Truncated(e.to_string()),
            serde_json::error::Category::Syntax => ReadScanError::NotJson(e.to_string()),
            serde_json::error::Category::Data if leading_version.is_none() => {
                // No readable version up front and a shape that does not fit: the version is
                // the likelier culprit when the field is missing or not a number.
                if e.to_string().contains("schema_version") {
                    ReadScanError::UnknownVersion(format!("({e})"))
                } else {
                    ReadScanError::NotAScan(e.to_string())
                }
            }
            serde_json::error::Category::Data => ReadScanError::NotAScan(e.to_string()),
        }),
    }
}

/// The raw value of `schema_version` when it is the object's first member, as text.
fn leading_schema_version(head: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(head)
        .or_else(|e| std::str::from_utf8(&head[..e.valid_up_to()]))
        .ok()?;
    let rest = text.trim_start().strip_prefix('{')?.trim_start();
    let rest = rest.strip_prefix("\"schema_version\"")?.trim_start();
    let rest = rest.strip_prefix(':')?.trim_start();
    let end = rest.find([',', '}', ' ', '\n', '\r', '\t'])?;
    Some(rest[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{ScanSettings, Summary};

    fn scan_json() -> String {
        let scan = ScanResult {
            schema_version: SCAN_SCHEMA_VERSION,
            started_at: "2024-05-01T00:00:00Z".into(),
            finished_at: "2024-05-01T00:00:01Z".into(),
            duration_ms: 1000,
            stack: "dev".into(),
            account_id: None,
            regions: vec!["us-east-1".into()],
            settings: ScanSettings {
                required_tags: vec!["Owner".into()],
                restricted_ports: vec![22],
                exempt_tag_key: "ComplianceExempt".into(),
                exemptions: Vec::new(),
            },
            summary: Summary {
                scanned: 0,
                exempt: 0,
                compliant: 0,
                non_compliant: 0,
                compliance_percentage: 100.0,
                instances_missing_tags: 0,
                open_rules: 0,
                exempted_findings: 0,
                accounts: Vec::new(),
            },
            instances: vec![],
            security_groups: vec![],
            errors: Vec::new(),
        };
        serde_json::to_string(&scan).unwrap()
    }

    #[test]
    fn reads_a_scan() {
        let scan = read_scan(scan_json().as_bytes()).unwrap();
        assert_eq!(scan.stack, "dev");
    }

    #[test]
    fn names_each_kind_of_bad_object() {
        let good = scan_json();
        assert_eq!(read_scan(&b""[..]), Err(ReadScanError::Empty));
        assert!(matches!(
            read_scan(&good.as_bytes()[..good.len() / 2]),
            Err(ReadScanError::Truncated(_))
        ));
        assert!(matches!(
            read_scan(&b"<html>oops</html>"[..]),
            Err(ReadScanError::NotJson(_))
        ));
        let v2 = good.replacen("\"schema_version\":1", "\"schema_version\":2", 1);
        assert_eq!(
            read_scan(v2.as_bytes()),
            Err(ReadScanError::UnknownVersion("2".into()))
        );
        assert!(matches!(
            read_scan(&br#"{"hello": "world"}"#[..]),
            Err(ReadScanError::UnknownVersion(_))
        ));
        assert!(matches!(
            read_scan(&br#"{"schema_version": 1, "stack": 3}"#[..]),
            Err(ReadScanError::NotAScan(_))
        ));
        assert!(matches!(
            read_scan(format!("{good} trailing").as_bytes()),
            Err(ReadScanError::NotJson(_))
        ));
    }

    #[test]
    fn a_late_version_field_is_still_checked() {
        let good = scan_json();
        let body = good.replacen("\"schema_version\":1,", "", 1);
        let late = format!("{},\"schema_version\":7}}", &body[..body.len() - 1]);
        assert_eq!(
            read_scan(late.as_bytes()),
            Err(ReadScanError::UnknownVersion("7".into()))
        );
    }

    #[test]
    fn a_long_object_is_read_past_the_peeked_head() {
        let mut scan = read_scan(scan_json().as_bytes()).unwrap();
        scan.regions = (0..100).map(|i| format!("region-{i}")).collect();
        let json = serde_json::to_string(&scan).unwrap();
        assert!(json.len() > PEEK);
        assert_eq!(read_scan(json.as_bytes()).unwrap(), scan);
    }
}
