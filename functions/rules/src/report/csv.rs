//! `report.csv`: one row per instance, RFC 4180, for spreadsheets.

use std::fmt::Write;

use super::DailyReport;

/// The header row, in column order.
pub const HEADER: [&str; 12] = [
    "instance_id",
    "name",
    "region",
    "scans",
    "non_compliant_scans",
    "exempt_scans",
    "latest_verdict",
    "persistent_offender",
    "missing_tags",
    "violations",
    "exemptions",
    // Last, so the columns before it keep their places.
    "account_id",
];

/// Renders the instance rows (worst first) with a header; lists are joined with `; `.
pub fn render(report: &DailyReport) -> String {
    let mut out = String::with_capacity(64 + report.instances.len() * 96);
    write_row(&mut out, HEADER.iter().copied());
    for i in &report.instances {
        let scans = i.scans.to_string();
        let non_compliant = i.non_compliant_scans.to_string();
        let exempt = i.exempt_scans.to_string();
        let missing = i.missing_tags.join("; ");
        let violations = i.violations.join("; ");
        let exemptions = i.exemptions.join("; ");
        write_row(
            &mut out,
            [
                i.instance_id.as_str(),
                i.name.as_deref().unwrap_or(""),
                i.region.as_str(),
                scans.as_str(),
                non_compliant.as_str(),
                exempt.as_str(),
                i.latest_verdict.as_str(),
                if i.persistent_offender { "yes" } else { "no" },
                missing.as_str(),
                violations.as_str(),
                exemptions.as_str(),
                i.account_id.as_str(),
            ],
        );
    }
    out
}

fn write_row<'a>(out: &mut String, cells: impl IntoIterator<Item = &'a str>) {
    for (n, cell) in cells.into_iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        write_cell(out, cell);
    }
    out.push_str("\r\n");
}

fn write_cell(out: &mut String, cell: &str) {
    // A Name tag is chosen by whoever launched the instance: a leading = + - @ would make a
    // spreadsheet run it as a formula, so such a cell is kept as text with a leading quote.
    let formula = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let needs_quotes = formula
        || cell.contains([',', '"', '\n', '\r'])
        || cell.starts_with(' ')
        || cell.ends_with(' ');
    if !needs_quotes {
        out.push_str(cell);
        return;
    }
    out.push('"');
    if formula {
        out.push('\'');
    }
    let _ = write!(out, "{}", cell.replace('"', "\"\""));
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_what_needs_quoting() {
        let mut out = String::new();
        write_row(
            &mut out,
            ["plain", "a,b", "say \"hi\"", "two\nlines", "=1+1", " pad"],
        );
        assert_eq!(
            out,
            "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\"'=1+1\",\" pad\"\r\n"
        );
    }
}
