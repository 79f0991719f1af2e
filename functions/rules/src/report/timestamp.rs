//! A small RFC 3339 reader, so that scans are ordered by the instant they started rather than by
//! the spelling of their timestamps (`...:00Z` and `...:00.5Z` do not sort as text).

/// An instant as seconds and nanoseconds since the Unix epoch; orders chronologically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant {
    secs: i64,
    nanos: u32,
}

impl Instant {
    /// Seconds since the Unix epoch.
    pub fn secs(self) -> i64 {
        self.secs
    }

    /// Nanoseconds beyond [`Instant::secs`].
    pub fn nanos(self) -> u32 {
        self.nanos
    }

    /// Seconds since the start of its UTC day.
    pub fn seconds_of_day(self) -> u32 {
        self.secs.rem_euclid(86_400) as u32
    }

    /// Its UTC day, as days since 1970-01-01.
    pub fn utc_day(self) -> i64 {
        self.secs.div_euclid(86_400)
    }
}

/// Reads `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)`; `None` for anything else.
pub fn parse_rfc3339(text: &str) -> Option<Instant> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &b[19..];
    let mut nanos = 0u32;
    if rest.first() == Some(&b'.') {
        let frac_len = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if frac_len == 0 {
            return None;
        }
        // Digits beyond nanoseconds cannot change the order that matters here.
        for (i, c) in rest[1..=frac_len].iter().enumerate().take(9) {
            nanos += u32::from(c - b'0') * 10u32.pow(8 - i as u32);
        }
        rest = &rest[1 + frac_len..];
    }
    let offset_secs = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = digits(&[*h1, *h2])?;
            let minutes = digits(&[*m1, *m2])?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = i64::from(hours * 3600 + minutes * 60);
            if *sign == b'+' {
                offset
            } else {
                -offset
            }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_secs;
    Some(Instant { secs, nanos })
}

pub(crate) fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

pub(crate) fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        // Written as a match so it builds on the workspace's rust-version (no is_multiple_of).
        2 => match (year % 400, year % 100, year % 4) {
            (0, _, _) => 29,
            (_, 0, _) => 28,
            (_, _, 0) => 29,
            _ => 28,
        },
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_and_known_instants() {
        assert_eq!(
            parse_rfc3339("1970-01-01T00:00:00Z"),
            Some(Instant { secs: 0, nanos: 0 })
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T12:00:00.25Z"),
            Some(Instant {
                secs: 1_709_208_000,
                nanos: 250_000_000
            })
        );
    }

    #[test]
    fn offsets_name_the_same_instant() {
        assert_eq!(
            parse_rfc3339("2024-05-01T02:30:00+02:30"),
            parse_rfc3339("2024-05-01T00:00:00Z")
        );
        assert_eq!(
            parse_rfc3339("2024-04-30T23:00:00-01:00"),
            parse_rfc3339("2024-05-01T00:00:00Z")
        );
    }

    #[test]
    fn fractions_order_by_time_not_by_text() {
        let whole = parse_rfc3339("2024-05-01T00:00:00Z").unwrap();
        let half = parse_rfc3339("2024-05-01T00:00:00.5Z").unwrap();
        assert!(whole < half);
    }

    #[test]
    fn rejects_malformed_text() {
        for bad in [
            "",
            "2024-05-01",
            "2024-05-01T00:00:00",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T00:00:00.Z",
            "2024-05-01T00:00:00+0200",
            "yyyy-05-01T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
