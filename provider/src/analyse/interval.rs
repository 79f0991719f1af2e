//! How often a schedule fires: the longest gap between two runs of an EventBridge `rate(...)` or
//! `cron(...)` expression, which bounds how old the newest scan result may be.

use std::time::Duration;

use time::{Date, Month};

/// The longest gap between two runs of `expr`, or `None` for an expression this does not
/// understand (cron `L`, `W` or `#`, or one that never fires in the years looked at).
pub fn longest_gap(expr: &str) -> Option<Duration> {
    let expr = expr.trim();
    if let Some(inner) = expr.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
        return rate(inner);
    }
    let inner = expr.strip_prefix("cron(")?.strip_suffix(')')?;
    cron(inner)
}

fn rate(inner: &str) -> Option<Duration> {
    let mut parts = inner.split_whitespace();
    let n: u64 = parts.next()?.parse().ok().filter(|n| *n > 0)?;
    let unit = match parts.next()?.trim_end_matches('s') {
        "minute" => 60,
        "hour" => 3600,
        "day" => 86_400,
        _ => return None,
    };
    parts
        .next()
        .is_none()
        .then(|| n.checked_mul(unit).map(Duration::from_secs))
        .flatten()
}

/// The values a cron field admits, as a bitmap over `lo..=hi`.
fn field(text: &str, lo: u32, hi: u32, names: &[&str]) -> Option<Vec<bool>> {
    let mut on = vec![false; hi as usize + 1];
    let value = |s: &str| -> Option<u32> {
        let upper = s.to_ascii_uppercase();
        names
            .iter()
            .position(|n| *n == upper)
            .map(|i| i as u32 + lo)
            .or_else(|| s.parse().ok())
            .filter(|v| (lo..=hi).contains(v))
    };
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().ok().filter(|s| *s > 0)?),
            None => (part, 1),
        };
        let (start, end) = match range {
            "*" | "?" => (lo, hi),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                // `5/15` runs from 5 to the end of the range.
                None if step > 1 => (value(r)?, hi),
                None => (value(r)?, value(r)?),
            },
        };
        if start > end {
            return None;
        }
        for v in (start..=end).step_by(step as usize) {
            on[v as usize] = true;
        }
    }
    Some(on)
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn cron(inner: &str) -> Option<Duration> {
    let f: Vec<&str> = inner.split_whitespace().collect();
    if f.len() != 6 || f.iter().any(|x| x.contains(['L', 'W', '#'])) {
        return None;
    }
    let minutes = field(f[0], 0, 59, &[])?;
    let hours = field(f[1], 0, 23, &[])?;
    let dom = field(f[2], 1, 31, &[])?;
    let months = field(f[3], 1, 12, &MONTHS)?;
    let dow = field(f[4], 1, 7, &DAYS)?;
    let years = field(f[5], 1970, 2199, &[])?;
    // Every run over two years from a fixed start, leap day included: enough to see the longest
    // gap of any expression that repeats at most yearly.
    let mut start = Date::from_calendar_date(2024, Month::January, 1).ok()?;
    let mut prev: Option<i64> = None;
    let mut longest = 0i64;
    for _ in 0..731 {
        let day_ok = dom[start.day() as usize]
            && months[u8::from(start.month()) as usize]
            && dow[start.weekday().number_from_sunday() as usize]
            && years.get(start.year() as usize).copied().unwrap_or(false);
        if day_ok {
            let base = (start.to_julian_day() as i64) * 1440;
            for h in (0..24).filter(|h| hours[*h]) {
                for m in (0..60).filter(|m| minutes[*m]) {
                    let t = base + (h * 60 + m) as i64;
                    if let Some(p) = prev {
                        longest = longest.max(t - p);
                    }
                    prev = Some(t);
                }
            }
        }
        start = start.next_day()?;
    }
    (longest > 0).then(|| Duration::from_secs(longest as u64 * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(h: u64) -> Option<Duration> {
        Some(Duration::from_secs(h * 3600))
    }

    #[test]
    fn rates() {
        assert_eq!(longest_gap("rate(6 hours)"), hours(6));
        assert_eq!(longest_gap("rate(1 hour)"), hours(1));
        assert_eq!(
            longest_gap("rate(5 minutes)"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(longest_gap("rate(2 days)"), hours(48));
        assert_eq!(longest_gap("rate(0 hours)"), None);
        assert_eq!(longest_gap("rate(6 weeks)"), None);
        assert_eq!(longest_gap("every 6 hours"), None);
    }

    #[test]
    fn daily_and_hourly_crons() {
        assert_eq!(longest_gap("cron(0 0 * * ? *)"), hours(24));
        assert_eq!(longest_gap("cron(0 */6 * * ? *)"), hours(6));
        assert_eq!(longest_gap("cron(0 0,12 * * ? *)"), hours(12));
        assert_eq!(
            longest_gap("cron(15/30 * * * ? *)"),
            Some(Duration::from_secs(1800))
        );
    }

    #[test]
    fn weekday_and_monthly_crons_take_the_longest_gap() {
        // Friday to Monday.
        assert_eq!(longest_gap("cron(0 9 ? * MON-FRI *)"), hours(72));
        assert_eq!(longest_gap("cron(0 9 ? * 2-6 *)"), hours(72));
        // 31-day months give the longest gap between firsts.
        assert_eq!(longest_gap("cron(0 0 1 * ? *)"), hours(31 * 24));
    }

    #[test]
    fn unsupported_crons() {
        assert_eq!(longest_gap("cron(0 0 L * ? *)"), None);
        assert_eq!(longest_gap("cron(0 0 ? * 6#3 *)"), None);
        assert_eq!(longest_gap("cron(0 0 * *)"), None);
        assert_eq!(longest_gap("cron(0 0 * * ? 1999)"), None);
        assert_eq!(longest_gap("cron(99 0 * * ? *)"), None);
    }
}
