//! Whether CloudTrail feeds the change rule: security-group changes and the other API calls the
//! rule listens for reach EventBridge only from a trail that logs management (write) events in
//! the stack's region. Without one, those changes wait for the next scheduled scan.

use crate::aws::{describe, Clients, Desired};

use super::findings::{Area, Finding, Severity};

/// What the region's trails say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trails {
    /// This trail logs management write events and is logging.
    Logging(String),
    /// No trail in the region logs management write events.
    None,
    /// CloudTrail could not be read (the reason).
    Unreadable(String),
}

/// Reads the region's trails (multi-region ones included) and finds one that is logging and
/// records management write events.
pub async fn read(c: &Clients) -> Trails {
    let trails = match c
        .cloudtrail
        .describe_trails()
        .include_shadow_trails(true)
        .send()
        .await
    {
        Ok(out) => out.trail_list.unwrap_or_default(),
        Err(e) => return Trails::Unreadable(describe(&e)),
    };
    for trail in trails {
        let Some(arn) = trail.trail_arn().map(str::to_string) else {
            continue;
        };
        let status = match c.cloudtrail.get_trail_status().name(&arn).send().await {
            Ok(s) => s,
            Err(e) => return Trails::Unreadable(describe(&e)),
        };
        if status.is_logging() != Some(true) {
            continue;
        }
        let selectors = match c
            .cloudtrail
            .get_event_selectors()
            .trail_name(&arn)
            .send()
            .await
        {
            Ok(s) => s,
            Err(e) => return Trails::Unreadable(describe(&e)),
        };
        let basic = selectors.event_selectors().iter().any(|s| {
            s.include_management_events() != Some(false)
                && s.read_write_type().map(|t| t.as_str()) != Some("ReadOnly")
        });
        let advanced = selectors.advanced_event_selectors().iter().any(|s| {
            let fields = s.field_selectors();
            let management = fields.iter().any(|f| {
                f.field() == "eventCategory" && f.equals().iter().any(|v| v == "Management")
            });
            let read_only = fields
                .iter()
                .any(|f| f.field() == "readOnly" && f.equals().iter().any(|v| v == "true"));
            management && !read_only
        });
        // A trail without selectors logs every management event (CloudTrail's default).
        let default = selectors.event_selectors().is_empty()
            && selectors.advanced_event_selectors().is_empty();
        if basic || advanced || default {
            return Trails::Logging(trail.name().unwrap_or(&arn).to_string());
        }
    }
    Trails::None
}

/// The warning when the change rule has no trail to hear the API calls from.
pub fn finding(d: &Desired, trails: &Trails) -> Option<Finding> {
    if !d.event_driven {
        return None;
    }
    let resource = format!("CloudTrail in {}", d.region);
    match trails {
        Trails::Logging(_) => None,
        Trails::None => Some(Finding {
            area: Area::Events,
            resource,
            check: "management events trail".into(),
            severity: Severity::Warning,
            message: format!(
                "no trail logs management write events in {}: security-group changes and the other API calls reach the scanner only at the next scheduled scan (instance launches and tag changes still arrive within a minute)",
                d.region
            ),
            fix: "Create a trail that logs management write events (a multi-region trail in the account, or the organization's trail), e.g. `aws cloudtrail create-trail --name management --s3-bucket-name <bucket> --is-multi-region-trail` then `aws cloudtrail start-logging --name management`.".into(),
        }),
        Trails::Unreadable(why) => Some(Finding {
            area: Area::Events,
            resource,
            check: "management events trail".into(),
            severity: Severity::Warning,
            message: format!("CloudTrail could not be read ({why}), so it is not known whether API calls reach the change rule"),
            fix: "Allow cloudtrail:DescribeTrails, GetTrailStatus and GetEventSelectors to whoever runs analyse, and run it again.".into(),
        }),
    }
}
