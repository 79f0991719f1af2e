//! The day's event-driven checks in the daily report: the results the scanner's event mode
//! stored under `events/YYYY/MM/DD/`, counted beside the scheduled scans, the instances a change
//! made non-compliant, and how long a change took to be judged and stored.

use serde::{Deserialize, Serialize};

use super::timestamp::parse_rfc3339;
use crate::result::InstanceResult;

/// Most offenders the report lists (the count is always whole).
pub const MAX_OFFENDERS: usize = 500;

/// What the report reads of one stored event result: the scan-result fields it needs and the
/// changes that triggered it. Fields it does not know are ignored, so the scanner may add more.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct EventRecord {
    /// When the batch's result was made (RFC 3339); the result is stored right after.
    #[serde(default)]
    pub finished_at: String,
    /// Non-compliant instances plus violating groups the changes named.
    #[serde(default)]
    pub findings: u64,
    /// The changes of the batch.
    #[serde(default)]
    pub events: Vec<EventChange>,
    /// The verdicts of the instances the batch judged.
    #[serde(default)]
    pub instances: Vec<InstanceResult>,
}

/// One change of a batch.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct EventChange {
    /// The change as a person reads it (`AuthorizeSecurityGroupIngress on sg-...`).
    #[serde(default)]
    pub change: String,
    /// Who made it (CloudTrail's `userIdentity`), when the event says.
    #[serde(default)]
    pub actor: Option<String>,
    /// When it happened (RFC 3339).
    #[serde(default)]
    pub time: String,
    /// The instances judged for it.
    #[serde(default)]
    pub judged: Vec<String>,
}

/// The day's event-driven checks.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EventsDay {
    /// Event results read (one per batch the scanner judged).
    pub results: u64,
    /// Changes judged.
    pub changes: u64,
    /// Findings the changes brought (non-compliant instances and violating groups named).
    pub findings: u64,
    /// Instances a change left non-compliant, earliest first (at most [`MAX_OFFENDERS`]).
    pub offenders: Vec<EventOffender>,
    /// From a change to its stored result, over the day's changes; absent without changes.
    pub change_to_result: Option<Latency>,
}

/// An instance a change left non-compliant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventOffender {
    /// The instance.
    pub instance_id: String,
    /// Its account.
    pub account_id: String,
    /// The change.
    pub change: String,
    /// Who made it, when known.
    pub actor: Option<String>,
    /// When it happened.
    pub time: String,
}

/// Seconds from a change to its stored result.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Changes measured.
    pub changes: u64,
    /// The median.
    pub median_seconds: f64,
    /// The longest.
    pub max_seconds: f64,
}

/// Folds event results into [`EventsDay`], keeping only what the report shows.
#[derive(Debug, Default)]
pub struct Tally {
    day: EventsDay,
    delays: Vec<f64>,
}

fn seconds(text: &str) -> Option<f64> {
    let t = parse_rfc3339(text)?;
    Some(t.secs() as f64 + f64::from(t.nanos()) / 1e9)
}

impl Tally {
    /// Adds one stored event result.
    pub fn add(&mut self, r: &EventRecord) {
        self.day.results += 1;
        self.day.changes += r.events.len() as u64;
        self.day.findings += r.findings;
        let stored = seconds(&r.finished_at);
        for change in &r.events {
            if let (Some(stored), Some(at)) = (stored, seconds(&change.time)) {
                self.delays.push((stored - at).max(0.0));
            }
            for id in &change.judged {
                let Some(i) = r.instances.iter().find(|i| &i.instance_id == id) else {
                    continue;
                };
                if !i.compliant && !i.exempt && self.day.offenders.len() < MAX_OFFENDERS {
                    self.day.offenders.push(EventOffender {
                        instance_id: i.instance_id.clone(),
                        account_id: i.account_id.clone(),
                        change: change.change.clone(),
                        actor: change.actor.clone(),
                        time: change.time.clone(),
                    });
                }
            }
        }
    }

    /// The day's figures.
    pub fn finish(mut self) -> EventsDay {
        self.day
            .offenders
            .sort_by(|a, b| a.time.cmp(&b.time).then(a.instance_id.cmp(&b.instance_id)));
        if !self.delays.is_empty() {
            self.delays.sort_by(f64::total_cmp);
            let n = self.delays.len();
            let median = if n % 2 == 1 {
                self.delays[n / 2]
            } else {
                (self.delays[n / 2 - 1] + self.delays[n / 2]) / 2.0
            };
            self.day.change_to_result = Some(Latency {
                changes: n as u64,
                median_seconds: median,
                max_seconds: self.delays[n - 1],
            });
        }
        self.day
    }
}

/// The summary e-mail's paragraph on event-driven checks; empty when there were none.
pub fn paragraph(e: &EventsDay) -> String {
    if e.results == 0 {
        return String::new();
    }
    let mut out = format!(
        "Event-driven checks: {} changes judged in {} batches, {} findings",
        e.changes, e.results, e.findings
    );
    if let Some(l) = e.change_to_result {
        out.push_str(&format!(
            "; from change to stored result {:.0} s median, {:.0} s at most",
            l.median_seconds, l.max_seconds
        ));
    }
    out.push_str(".\n");
    for o in e.offenders.iter().take(10) {
        out.push_str(&format!(
            "- {} ({}): {} by {} at {}\n",
            crate::sns::field(&o.instance_id, 40),
            crate::sns::field(&o.account_id, 20),
            crate::sns::field(&o.change, 120),
            crate::sns::field(o.actor.as_deref().unwrap_or("unknown"), 120),
            crate::sns::field(&o.time, 40),
        ));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(id: &str, compliant: bool) -> InstanceResult {
        InstanceResult {
            instance_id: id.into(),
            account_id: "111111111111".into(),
            compliant,
            ..InstanceResult::default()
        }
    }

    fn record(
        finished: &str,
        changes: &[(&str, &str, &[&str])],
        instances: Vec<InstanceResult>,
    ) -> EventRecord {
        EventRecord {
            finished_at: finished.into(),
            findings: instances.iter().filter(|i| !i.compliant).count() as u64,
            events: changes
                .iter()
                .map(|(change, time, judged)| EventChange {
                    change: (*change).into(),
                    actor: Some("arn:aws:iam::111111111111:user/alice".into()),
                    time: (*time).into(),
                    judged: judged.iter().map(|j| j.to_string()).collect(),
                })
                .collect(),
            instances,
        }
    }

    #[test]
    fn counts_offenders_and_the_delay_from_change_to_result() {
        let mut t = Tally::default();
        t.add(&record(
            "2026-11-28T10:00:30Z",
            &[("RunInstances", "2026-11-28T10:00:00Z", &["i-1", "i-2"])],
            vec![instance("i-1", false), instance("i-2", true)],
        ));
        t.add(&record(
            "2026-11-28T11:00:50Z",
            &[
                ("CreateTags on i-3", "2026-11-28T11:00:40Z", &["i-3"]),
                ("DeleteTags on i-3", "2026-11-28T11:00:00Z", &["i-3"]),
            ],
            vec![instance("i-3", false)],
        ));
        let day = t.finish();
        assert_eq!((day.results, day.changes, day.findings), (2, 3, 2));
        let offenders: Vec<(&str, &str)> = day
            .offenders
            .iter()
            .map(|o| (o.instance_id.as_str(), o.change.as_str()))
            .collect();
        assert_eq!(
            offenders,
            [
                ("i-1", "RunInstances"),
                ("i-3", "DeleteTags on i-3"),
                ("i-3", "CreateTags on i-3")
            ]
        );
        let l = day.change_to_result.expect("latency");
        assert_eq!(l.changes, 3);
        assert_eq!((l.median_seconds, l.max_seconds), (30.0, 50.0));
        let text = paragraph(&day);
        assert!(
            text.contains("3 changes judged in 2 batches, 2 findings"),
            "{text}"
        );
        assert!(text.contains("30 s median, 50 s at most"), "{text}");
        assert!(text.contains("alice"), "{text}");
        assert_eq!(paragraph(&EventsDay::default()), "");
    }
}
