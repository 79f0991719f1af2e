//! The instance verdict and the scan summary.

use std::collections::HashMap;

use crate::groups::group_violations;
use crate::input::{Instance, SecurityGroup};
use crate::result::{GroupResult, InstanceResult, ScanSettings, Summary, Violation};
use crate::tags::check_tags;

/// The judged fleet: what goes into a [`crate::result::ScanResult`] besides its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Totals.
    pub summary: Summary,
    /// One verdict per instance, sorted by region then instance id.
    pub instances: Vec<InstanceResult>,
    /// Every group with a violation, sorted by region then group id.
    pub security_groups: Vec<GroupResult>,
}

/// Judges one instance given the violations of every group, keyed by (region, group id).
///
/// A group that is attached but was not described (deleted mid-scan) contributes nothing: there is
/// no rule left to judge.
pub fn judge_instance(
    instance: Instance,
    violations: &HashMap<(&str, &str), Vec<Violation>>,
    settings: &ScanSettings,
) -> InstanceResult {
    let tags = check_tags(&instance.tags, settings);
    let mut group_ids = instance.group_ids;
    group_ids.sort();
    group_ids.dedup();
    let inherited: Vec<Violation> = group_ids
        .iter()
        .filter_map(|g| violations.get(&(instance.region.as_str(), g.as_str())))
        .flatten()
        .cloned()
        .collect();
    let compliant = !tags.exempt && tags.missing.is_empty() && inherited.is_empty();
    InstanceResult {
        instance_id: instance.id,
        region: instance.region,
        state: instance.state,
        name: tags.name,
        compliant,
        exempt: tags.exempt,
        missing_tags: tags.missing,
        near_misses: tags.near_misses,
        security_groups: group_ids,
        violations: inherited,
    }
}

/// Totals over the verdicts and the violating groups.
pub fn summarize(instances: &[InstanceResult], groups: &[GroupResult]) -> Summary {
    let scanned = instances.len() as u64;
    let exempt = instances.iter().filter(|i| i.exempt).count() as u64;
    let compliant = instances.iter().filter(|i| i.compliant).count() as u64;
    let judged = scanned - exempt;
    Summary {
        scanned,
        exempt,
        compliant,
        non_compliant: judged - compliant,
        compliance_percentage: compliance_percentage(compliant, judged),
        instances_missing_tags: instances
            .iter()
            .filter(|i| !i.exempt && !i.missing_tags.is_empty())
            .count() as u64,
        open_rules: groups.iter().map(|g| g.violations.len() as u64).sum(),
    }
}

/// compliant / judged x 100, and 100 when nothing was judged (an empty fleet is not a breach).
pub fn compliance_percentage(compliant: u64, judged: u64) -> f64 {
    if judged == 0 {
        100.0
    } else {
        compliant as f64 * 100.0 / judged as f64
    }
}

/// Judges a whole fleet: every instance against its attached groups, and every group on its own.
pub fn evaluate(
    instances: Vec<Instance>,
    groups: &[SecurityGroup],
    settings: &ScanSettings,
) -> Evaluation {
    let violations: HashMap<(&str, &str), Vec<Violation>> = groups
        .iter()
        .map(|g| {
            (
                (g.region.as_str(), g.id.as_str()),
                group_violations(g, settings),
            )
        })
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let mut attached: HashMap<(&str, &str), u64> = HashMap::new();
    let mut results: Vec<InstanceResult> = instances
        .into_iter()
        .map(|i| judge_instance(i, &violations, settings))
        .collect();
    results.sort_by(|a, b| (&a.region, &a.instance_id).cmp(&(&b.region, &b.instance_id)));
    for r in &results {
        for g in &r.security_groups {
            if let Some(((region, id), _)) =
                violations.get_key_value(&(r.region.as_str(), g.as_str()))
            {
                *attached.entry((region, id)).or_default() += 1;
            }
        }
    }
    let mut security_groups: Vec<GroupResult> = groups
        .iter()
        .filter_map(|g| {
            let key = (g.region.as_str(), g.id.as_str());
            let v = violations.get(&key)?;
            Some(GroupResult {
                group_id: g.id.clone(),
                group_name: g.name.clone(),
                vpc_id: g.vpc_id.clone(),
                region: g.region.clone(),
                attached_instances: attached.get(&key).copied().unwrap_or(0),
                violations: v.clone(),
            })
        })
        .collect();
    security_groups.sort_by(|a, b| (&a.region, &a.group_id).cmp(&(&b.region, &b.group_id)));
    security_groups.dedup_by(|a, b| a.region == b.region && a.group_id == b.group_id);
    Evaluation {
        summary: summarize(&results, &security_groups),
        instances: results,
        security_groups,
    }
}
