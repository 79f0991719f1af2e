//! `report.html`: one self-contained page for people. No script, no external asset (a content
//! security policy forbids loading any), an inline SVG chart, and every text escaped.

use std::fmt::Write;

use super::{
    parse_rfc3339, DailyReport, Direction, ExemptionDay, InstanceDay, EXPIRING_WITHIN_DAYS,
};

/// Offender rows shown on the page; the CSV holds every row.
pub const MAX_ROWS: usize = 1000;

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:2rem;color:#1f2933;background:#fff}\
h1{font-size:1.6rem;margin:0 0 .5rem}h2{font-size:1.2rem;margin:2rem 0 .6rem}\
.message{font-size:1.05rem;max-width:60rem}.muted{color:#616e7c}\
.figures{display:flex;flex-wrap:wrap;gap:.8rem;margin:1rem 0}\
.figure{border:1px solid #cbd2d9;border-radius:6px;padding:.6rem .9rem;min-width:9rem}\
.figure .value{font-size:1.5rem;font-weight:600}.figure .label{font-size:.85rem;color:#616e7c}\
.bad{color:#b42318}.good{color:#027a48}.warn{color:#b54708}tr.warn td{background:#fffaeb}\
table{border-collapse:collapse;font-size:.9rem}th,td{border:1px solid #cbd2d9;padding:.3rem .5rem;text-align:left;vertical-align:top}\
th{background:#f5f7fa}#offenders td:nth-child(-n+3),#scans td{white-space:nowrap}.empty{font-size:1.3rem;font-weight:600;color:#b42318}";

/// Renders the page.
pub fn render(r: &DailyReport) -> String {
    let mut out = String::with_capacity(16 * 1024 + r.instances.len().min(MAX_ROWS) * 300);
    let date = escape(&r.date);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Compliance report {date}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>EC2 compliance report: {date}</h1>\n"
    );
    let _ = writeln!(
        out,
        "<p class=\"muted\">Stack {} &middot; generated {} &middot; UTC day {date}</p>",
        escape(r.stack.as_deref().unwrap_or("unknown")),
        escape(&r.generated_at)
    );
    let class = if r.compliance.is_none() {
        "message empty"
    } else {
        "message"
    };
    let _ = writeln!(
        out,
        "<p class=\"{class}\" id=\"message\">{}</p>",
        escape(&r.message)
    );

    figures(&mut out, r);
    if let Some(t) = &r.trend {
        trend(&mut out, t);
    }
    if !r.scans.is_empty() {
        out.push_str("<h2>Compliance across the day's scans</h2>\n");
        chart(&mut out, r);
        scans_table(&mut out, r);
    }
    accounts(&mut out, r);
    events(&mut out, r);
    offenders(&mut out, r);
    exemptions(&mut out, r);
    became_compliant(&mut out, r);
    skipped(&mut out, r);
    out.push_str("</body>\n</html>\n");
    out
}

fn figure(out: &mut String, id: &str, label: &str, value: &str, class: &str) {
    let class = if class.is_empty() {
        "value".to_string()
    } else {
        format!("value {class}")
    };
    let _ = writeln!(
        out,
        "<div class=\"figure\" data-figure=\"{id}\"><div class=\"{class}\">{}</div>\
         <div class=\"label\">{}</div></div>",
        escape(value),
        escape(label)
    );
}

fn figures(out: &mut String, r: &DailyReport) {
    out.push_str("<div class=\"figures\">\n");
    figure(
        out,
        "scans-analysed",
        "scans analysed",
        &r.scans_analysed.to_string(),
        "",
    );
    if let Some(c) = r.compliance {
        figure(
            out,
            "average",
            "average compliance",
            &format!("{:.2}%", c.average),
            "",
        );
        figure(
            out,
            "minimum",
            "minimum compliance",
            &format!("{:.2}%", c.minimum),
            "",
        );
        figure(
            out,
            "latest",
            "latest compliance",
            &format!("{:.2}%", c.latest),
            "",
        );
    }
    figure(
        out,
        "instances-seen",
        "instances seen",
        &r.instances_seen.to_string(),
        "",
    );
    let bad = |n: usize| if n > 0 { "bad" } else { "" };
    figure(
        out,
        "persistent-offenders",
        "persistent offenders",
        &r.persistent_offenders.len().to_string(),
        bad(r.persistent_offenders.len()),
    );
    figure(
        out,
        "new-offenders",
        "new offenders",
        &r.new_offenders.len().to_string(),
        bad(r.new_offenders.len()),
    );
    figure(
        out,
        "became-compliant",
        "became compliant",
        &r.became_compliant.len().to_string(),
        if r.became_compliant.is_empty() {
            ""
        } else {
            "good"
        },
    );
    figure(
        out,
        "skipped",
        "objects skipped",
        &r.skipped.len().to_string(),
        bad(r.skipped.len()),
    );
    // Only for a stack that has exemptions: three zeros would say nothing to the others.
    if !r.active_exemptions.is_empty() || !r.expired_exemptions.is_empty() {
        let expiring = r.expiring_exemptions().count();
        figure(
            out,
            "exemptions-active",
            "exemptions active",
            &r.active_exemptions.len().to_string(),
            "",
        );
        figure(
            out,
            "exemptions-expiring",
            &format!("expiring within {EXPIRING_WITHIN_DAYS} days"),
            &expiring.to_string(),
            if expiring > 0 { "warn" } else { "" },
        );
        figure(
            out,
            "exemptions-expired",
            "expired, still configured",
            &r.expired_exemptions.len().to_string(),
            bad(r.expired_exemptions.len()),
        );
    }
    out.push_str("</div>\n");
}

fn trend(out: &mut String, t: &super::Trend) {
    let class = match t.direction {
        Direction::Improving => "good",
        Direction::Worsening => "bad",
        _ => "",
    };
    let detail = match (t.average_change, t.latest_change) {
        (Some(avg), Some(latest)) => format!(
            "average {avg:+.2} points, latest {latest:+.2} points, persistent offenders {:+}",
            t.persistent_offenders_change
        ),
        _ => "one of the two days has no scans to compare".to_string(),
    };
    let _ = writeln!(
        out,
        "<p id=\"trend\">Trend against {}: <strong class=\"{class}\">{}</strong> ({})</p>",
        escape(&t.previous_date),
        t.direction.as_str(),
        escape(&detail)
    );
}

/// An SVG line chart: x is the time of day of each scan, y its compliance percentage.
fn chart(out: &mut String, r: &DailyReport) {
    const W: f64 = 900.0;
    const H: f64 = 320.0;
    const LEFT: f64 = 56.0;
    const RIGHT: f64 = 24.0;
    const TOP: f64 = 24.0;
    const BOTTOM: f64 = 44.0;
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let y_of = |pct: f64| TOP + plot_h * (1.0 - pct.clamp(0.0, 100.0) / 100.0);
    let n = r.scans.len();
    // Position by time of day when every start time reads; evenly otherwise.
    let seconds: Option<Vec<f64>> = r
        .scans
        .iter()
        .map(|s| parse_rfc3339(&s.started_at).map(|t| t.seconds_of_day() as f64))
        .collect();
    let x_of = |i: usize| match &seconds {
        Some(secs) => LEFT + plot_w * (secs[i] / 86_400.0).clamp(0.0, 1.0),
        None => LEFT + plot_w * (i as f64 + 0.5) / n as f64,
    };
    let _ = writeln!(
        out,
        "<svg id=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" \
         viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"Compliance percentage of each scan\" \
         font-family=\"system-ui,sans-serif\" font-size=\"12\">"
    );
    for pct in [0.0, 25.0, 50.0, 75.0, 100.0] {
        let y = y_of(pct);
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#e4e7eb\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#616e7c\">{pct:.0}%</text>",
            W - RIGHT,
            LEFT - 8.0,
            y + 4.0
        );
    }
    if seconds.is_some() {
        for hour in [0, 6, 12, 18, 24] {
            let x = LEFT + plot_w * f64::from(hour) / 24.0;
            let _ = writeln!(
                out,
                "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#616e7c\">{hour:02}:00</text>",
                H - 12.0
            );
        }
    }
    let _ = writeln!(
        out,
        "<line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{:.1}\" stroke=\"#9aa5b1\"/>\
         <line x1=\"{LEFT}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#9aa5b1\"/>",
        TOP + plot_h,
        TOP + plot_h,
        W - RIGHT,
        TOP + plot_h
    );
    let points: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "{:.1},{:.1}",
                x_of(i),
                y_of(r.scans[i].compliance_percentage)
            )
        })
        .collect();
    if n > 1 {
        let _ = writeln!(
            out,
            "<polyline fill=\"none\" stroke=\"#2563eb\" stroke-width=\"2.5\" points=\"{}\"/>",
            points.join(" ")
        );
    }
    for (i, s) in r.scans.iter().enumerate() {
        let (x, y) = (x_of(i), y_of(s.compliance_percentage));
        let label_y = if y < TOP + 16.0 { y + 20.0 } else { y - 10.0 };
        let _ = writeln!(
            out,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"5\" fill=\"#2563eb\"><title>{}: {:.2}%</title></circle>\
             <text class=\"point\" x=\"{x:.1}\" y=\"{label_y:.1}\" text-anchor=\"middle\" fill=\"#1f2933\">{:.1}%</text>",
            escape(&s.started_at),
            s.compliance_percentage,
            s.compliance_percentage
        );
    }
    out.push_str("</svg>\n");
}

fn scans_table(out: &mut String, r: &DailyReport) {
    out.push_str(
        "<table id=\"scans\"><thead><tr><th>Started</th><th>Compliance</th><th>Scanned</th>\
         <th>Compliant</th><th>Non-compliant</th><th>Exempt</th><th>Object</th></tr></thead><tbody>\n",
    );
    for s in &r.scans {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{:.2}%</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&s.started_at),
            s.compliance_percentage,
            s.scanned,
            s.compliant,
            s.non_compliant,
            s.exempt,
            escape(&s.key)
        );
    }
    out.push_str("</tbody></table>\n");
}

/// Compliance by account and region, worst account first, when the day covered more than one
/// account or one was not read whole.
/// The day's event-driven checks: counts, delay from change to result, and the offenders.
fn events(out: &mut String, r: &DailyReport) {
    let e = &r.events;
    if e.results == 0 {
        return;
    }
    let _ = write!(
        out,
        "<h2>Event-driven checks</h2>\n<p id=\"events\">{} changes judged in {} batches, {} findings",
        e.changes, e.results, e.findings
    );
    if let Some(l) = e.change_to_result {
        let _ = write!(
            out,
            "; from change to stored result {:.0}&nbsp;s median, {:.0}&nbsp;s at most",
            l.median_seconds, l.max_seconds
        );
    }
    out.push_str(".</p>\n");
    if e.offenders.is_empty() {
        return;
    }
    out.push_str(
        "<table id=\"event-offenders\"><thead><tr><th>Instance</th><th>Account</th><th>Change</th>\
         <th>By</th><th>At</th></tr></thead><tbody>\n",
    );
    for o in e.offenders.iter().take(MAX_ROWS) {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&o.instance_id),
            escape(&o.account_id),
            escape(&o.change),
            escape(o.actor.as_deref().unwrap_or("unknown")),
            escape(&o.time)
        );
    }
    out.push_str("</tbody></table>\n");
}

fn accounts(out: &mut String, r: &DailyReport) {
    let broken = r.accounts.iter().any(|a| !a.not_scanned.is_empty());
    if r.accounts.len() < 2 && !broken {
        return;
    }
    out.push_str("<h2>Compliance by account</h2>\n");
    out.push_str(
        "<table id=\"accounts\"><thead><tr><th>Account</th><th>Region</th><th>Compliance</th>\
         <th>Non-compliant</th><th>Compliant</th><th>Exempt</th><th>Average of the day</th>\
         <th>Persistent offenders</th><th>Not scanned</th></tr></thead><tbody>\n",
    );
    let pct = |v: f64| format!("{v:.2}%");
    for a in r.accounts.iter().take(MAX_ROWS) {
        let l = &a.latest;
        let class = if !a.not_scanned.is_empty() {
            " class=\"warn\""
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "<tr{class}><td><strong>{}</strong></td><td>all</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&a.account_id),
            pct(l.compliance_percentage),
            l.non_compliant,
            l.compliant,
            l.exempt,
            a.average.map(pct).unwrap_or_else(|| "none read".into()),
            a.persistent_offenders,
            a.not_scanned
                .iter()
                .map(|n| escape(n))
                .collect::<Vec<_>>()
                .join("<br>")
        );
        for g in &a.regions {
            let _ = writeln!(
                out,
                "<tr><td></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td></td>\
                 <td></td><td></td></tr>",
                escape(&g.region),
                pct(g.compliance_percentage),
                g.non_compliant,
                g.compliant,
                g.exempt
            );
        }
    }
    out.push_str("</tbody></table>\n");
    if r.accounts.len() > MAX_ROWS {
        let _ = writeln!(
            out,
            "<p>{} more accounts are listed in report.json.</p>",
            r.accounts.len() - MAX_ROWS
        );
    }
}

fn offenders(out: &mut String, r: &DailyReport) {
    let rows: Vec<&InstanceDay> = r
        .instances
        .iter()
        .filter(|i| i.non_compliant_scans > 0)
        .collect();
    out.push_str("<h2>Offenders</h2>\n");
    if rows.is_empty() {
        out.push_str(
            "<p id=\"no-offenders\">No instance was non-compliant in any scan of the day.</p>\n",
        );
        return;
    }
    out.push_str(
        "<table id=\"offenders\"><thead><tr><th>Instance</th><th>Name</th><th>Region</th>\
         <th>Non-compliant scans</th><th>Latest verdict</th><th>Persistent</th><th>New</th>\
         <th>Missing tags</th><th>Violations</th></tr></thead><tbody>\n",
    );
    for i in rows.iter().take(MAX_ROWS) {
        let new = r.new_offenders.binary_search(&i.instance_id).is_ok();
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} of {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&i.instance_id),
            escape(i.name.as_deref().unwrap_or("")),
            escape(&i.region),
            i.non_compliant_scans,
            i.scans,
            i.latest_verdict.as_str(),
            if i.persistent_offender { "yes" } else { "no" },
            if new { "yes" } else { "no" },
            escape(&i.missing_tags.join(", ")),
            i.violations
                .iter()
                .map(|v| escape(v))
                .collect::<Vec<_>>()
                .join("<br>")
        );
    }
    out.push_str("</tbody></table>\n");
    if rows.len() > MAX_ROWS {
        let _ = writeln!(
            out,
            "<p>{} more offenders are listed in report.csv.</p>",
            rows.len() - MAX_ROWS
        );
    }
}

/// What an exemption names: instances, groups, a tag selector.
fn covers(e: &ExemptionDay) -> String {
    let mut parts: Vec<String> = Vec::new();
    if !e.instances.is_empty() {
        parts.push(format!("instances {}", e.instances.join(", ")));
    }
    if !e.groups.is_empty() {
        parts.push(format!("groups {}", e.groups.join(", ")));
    }
    if !e.tags.is_empty() {
        let pairs: Vec<String> = e.tags.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        parts.push(format!("tags {}", pairs.join(", ")));
    }
    parts.join("; ")
}

/// What it matched in the day's latest scan.
fn matched(e: &ExemptionDay) -> String {
    let all: Vec<&str> = e
        .matched_instances
        .iter()
        .chain(&e.matched_groups)
        .map(String::as_str)
        .collect();
    if all.is_empty() {
        "nothing".to_string()
    } else {
        all.join(", ")
    }
}

fn exemption_rows(out: &mut String, list: &[ExemptionDay], with_days_left: bool) {
    for e in list.iter().take(MAX_ROWS) {
        let checks: Vec<&str> = e.checks.iter().map(|c| c.as_str()).collect();
        let days_left = if with_days_left {
            format!("<td>{}</td>", e.days_left.unwrap_or(0))
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{days_left}<td>{}</td></tr>",
            if e.expiring_soon { " class=\"warn\"" } else { "" },
            escape(&e.id),
            escape(&covers(e)),
            checks.join(", "),
            escape(e.owner.as_deref().unwrap_or("")),
            escape(e.reason.as_deref().unwrap_or("")),
            escape(&e.expires),
            escape(&matched(e))
        );
    }
}

fn exemptions(out: &mut String, r: &DailyReport) {
    if r.active_exemptions.is_empty() && r.expired_exemptions.is_empty() {
        return;
    }
    out.push_str("<h2>Exemptions</h2>\n");
    let expiring: Vec<String> = r.expiring_exemptions().map(|e| escape(&e.id)).collect();
    if !expiring.is_empty() {
        let _ = writeln!(
            out,
            "<p id=\"exemptions-expiring\" class=\"warn\">{} exemption{} expire{} within {EXPIRING_WITHIN_DAYS} days: {}.</p>",
            expiring.len(),
            if expiring.len() == 1 { "" } else { "s" },
            if expiring.len() == 1 { "s" } else { "" },
            expiring.join(", ")
        );
    }
    const HEAD: &str = "<th>Exemption</th><th>Covers</th><th>Checks</th><th>Owner</th><th>Reason</th><th>Last day</th>";
    if r.active_exemptions.is_empty() {
        out.push_str("<p id=\"no-active-exemptions\">No exemption was in force on the day.</p>\n");
    } else {
        let _ = writeln!(
            out,
            "<table id=\"active-exemptions\"><thead><tr>{HEAD}<th>Days left</th><th>Matched in the latest scan</th></tr></thead><tbody>"
        );
        exemption_rows(out, &r.active_exemptions, true);
        out.push_str("</tbody></table>\n");
    }
    if !r.expired_exemptions.is_empty() {
        let _ = writeln!(
            out,
            "<h3>Expired, still configured</h3>\n<p>They waive nothing: remove them, or renew them with a new last day.</p>\n\
             <table id=\"expired-exemptions\"><thead><tr>{HEAD}<th>Would match in the latest scan</th></tr></thead><tbody>"
        );
        exemption_rows(out, &r.expired_exemptions, false);
        out.push_str("</tbody></table>\n");
    }
}

fn became_compliant(out: &mut String, r: &DailyReport) {
    if r.became_compliant.is_empty() {
        return;
    }
    out.push_str("<h2>Became compliant</h2>\n<ul id=\"became-compliant\">\n");
    for id in r.became_compliant.iter().take(MAX_ROWS) {
        let _ = writeln!(out, "<li>{}</li>", escape(id));
    }
    out.push_str("</ul>\n");
}

fn skipped(out: &mut String, r: &DailyReport) {
    if r.skipped.is_empty() {
        return;
    }
    out.push_str(
        "<h2>Skipped objects</h2>\n<table id=\"skipped\"><thead><tr><th>Object</th><th>Reason</th></tr></thead><tbody>\n",
    );
    for s in &r.skipped {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td></tr>",
            escape(&s.key),
            escape(&s.reason)
        );
    }
    out.push_str("</tbody></table>\n");
}
