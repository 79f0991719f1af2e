//! Which day a run reports on, and the key prefixes of a day.

use anyhow::{anyhow, Context, Result};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime};

const DAY: &[time::format_description::FormatItem<'static>] =
    format_description!("[year]-[month]-[day]");

/// Reads a `YYYY-MM-DD` day.
pub fn parse_date(text: &str) -> Result<Date> {
    // The parser's own message repeats itself; the input and the expected form say enough.
    Date::parse(text.trim(), DAY).map_err(|_| anyhow!("{text:?} is not a YYYY-MM-DD date"))
}

/// Writes a day as `YYYY-MM-DD`.
pub fn format_date(date: Date) -> String {
    date.format(DAY).expect("a calendar date always formats")
}

/// Refuses a day after the UTC day of `now`: no scan can exist for it yet, and its empty report
/// would stand until that day's real one (most likely a mistyped year or month).
pub fn check_not_future(date: Date, now: OffsetDateTime) -> Result<Date> {
    let today = now.to_offset(time::UtcOffset::UTC).date();
    if date > today {
        anyhow::bail!(
            "{} is in the future (today is {} UTC): there are no scans to report on yet",
            format_date(date),
            format_date(today)
        );
    }
    Ok(date)
}

/// The UTC day before the day of `now`: the default day to report on.
pub fn previous_utc_day(now: OffsetDateTime) -> Date {
    let today = now.to_offset(time::UtcOffset::UTC).date();
    today.previous_day().unwrap_or(today)
}

/// When a report is made, as RFC 3339 UTC to the millisecond (people read it on the page).
pub fn generated_at(now: OffsetDateTime) -> Result<String> {
    let utc = now.to_offset(time::UtcOffset::UTC);
    utc.replace_millisecond(utc.millisecond())
        .unwrap_or(utc)
        .format(&Rfc3339)
        .context("format the current time")
}

/// The key prefix of one day's objects under `root` (`scans` or `reports`).
pub fn day_prefix(root: &str, date: Date) -> String {
    format!(
        "{root}/{:04}/{:02}/{:02}/",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// The day a Lambda event asks for: its `date` (backfill), else the day before the scheduled
/// event's `time` (so a delayed retry still reports the intended day), else the previous UTC day.
pub fn date_from_event(event: &serde_json::Value, now: OffsetDateTime) -> Result<Date> {
    if let Some(date) = event.get("date") {
        let text = date
            .as_str()
            .ok_or_else(|| anyhow!("the event's date must be a \"YYYY-MM-DD\" string"))?;
        return check_not_future(parse_date(text)?, now);
    }
    if let Some(at) = event.get("time").and_then(|t| t.as_str()) {
        if let Ok(at) = OffsetDateTime::parse(at, &Rfc3339) {
            return Ok(previous_utc_day(at));
        }
    }
    Ok(previous_utc_day(now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn default_day_is_the_previous_utc_day() {
        assert_eq!(
            previous_utc_day(datetime!(2024-03-01 00:00:05 UTC)),
            date!(2024 - 02 - 29)
        );
        // 01:00 at +02:00 is still the previous UTC day's 23:00.
        assert_eq!(
            previous_utc_day(datetime!(2024-03-01 01:00 +02:00)),
            date!(2024 - 02 - 28)
        );
    }

    #[test]
    fn event_date_wins_then_schedule_time_then_now() {
        let now = datetime!(2024-06-10 12:00 UTC);
        let ev = serde_json::json!({"date": "2024-01-15"});
        assert_eq!(date_from_event(&ev, now).unwrap(), date!(2024 - 01 - 15));
        let scheduled =
            serde_json::json!({"detail-type": "Scheduled Event", "time": "2024-06-09T00:00:00Z"});
        assert_eq!(
            date_from_event(&scheduled, now).unwrap(),
            date!(2024 - 06 - 08)
        );
        assert_eq!(
            date_from_event(&serde_json::json!({}), now).unwrap(),
            date!(2024 - 06 - 09)
        );
        assert!(date_from_event(&serde_json::json!({"date": "15/01/2024"}), now).is_err());
        assert!(date_from_event(&serde_json::json!({"date": 20240115}), now).is_err());
        // Today is allowed (a partial day, by hand); tomorrow names no scan that can exist.
        let today = serde_json::json!({"date": "2024-06-10"});
        assert_eq!(date_from_event(&today, now).unwrap(), date!(2024 - 06 - 10));
        let future = date_from_event(&serde_json::json!({"date": "2204-06-11"}), now);
        assert_eq!(
            future.unwrap_err().to_string(),
            "2204-06-11 is in the future (today is 2024-06-10 UTC): there are no scans to report on yet"
        );
    }

    #[test]
    fn generated_at_is_utc_to_the_millisecond() {
        assert_eq!(
            generated_at(datetime!(2024-05-03 02:00:04.123456789 +02:00)).unwrap(),
            "2024-05-03T00:00:04.123Z"
        );
    }

    #[test]
    fn prefixes_are_zero_padded() {
        assert_eq!(
            day_prefix("scans", date!(2024 - 02 - 03)),
            "scans/2024/02/03/"
        );
    }
}
