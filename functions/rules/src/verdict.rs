//! The instance verdict and the scan summary.
//!
//! Exemptions apply per check. An instance's missing-tags finding is waived when an active
//! exemption names the instance (by id, tag selector or the exempt tag) for `tags`; its ingress
//! finding is waived when one names the instance for `ingress`, or when every violation it
//! inherits comes from a group that an active exemption names for `ingress`. An instance named for
//! both checks is `exempt`, as the exempt tag has always made it. Expired exemptions waive nothing
//! and are listed apart, so adding one never changes a verdict.

use std::collections::HashMap;

use crate::exemptions::{tag_id, Check, Day, Exemption, TagExemption};
use crate::groups::group_violations;
use crate::input::{Instance, SecurityGroup};
use crate::result::{
    Applied, Counts, GroupResult, InstanceResult, ScanSettings, Summary, Violation,
};
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

/// An [`Applied`] entry for a configured exemption.
fn configured(e: &Exemption, check: Check, group_id: Option<String>) -> Applied {
    Applied {
        check,
        id: e.id.clone(),
        group_id,
        expires: Some(e.expires.clone()),
        reason: Some(e.reason.clone()),
        owner: Some(e.owner.clone()),
    }
}

/// Sorted and without repeats (an exemption may list a check twice).
fn tidy(mut list: Vec<Applied>) -> Vec<Applied> {
    list.sort();
    list.dedup();
    list
}

/// Judges one instance given the violations of every group, keyed by (region, group id), on
/// `today` (the UTC day the scan started, which decides which exemptions have expired).
///
/// A group that is attached but was not described (deleted mid-scan) contributes nothing: there is
/// no rule left to judge.
pub fn judge_instance(
    instance: Instance,
    violations: &HashMap<(&str, &str), Vec<Violation>>,
    settings: &ScanSettings,
    today: Day,
) -> InstanceResult {
    judge(
        instance,
        |region, group| violations.get(&(region, group)).cloned(),
        settings,
        today,
    )
}

/// [`judge_instance`] with the violations of a group given by `violations(region, group id)`
/// (a copy: the lookup's keys need not outlive the instance).
fn judge(
    instance: Instance,
    violations: impl Fn(&str, &str) -> Option<Vec<Violation>>,
    settings: &ScanSettings,
    today: Day,
) -> InstanceResult {
    let tags = check_tags(&instance.tags, settings);
    let mut group_ids = instance.group_ids;
    group_ids.sort();
    group_ids.dedup();
    let inherited: Vec<Violation> = group_ids
        .iter()
        .filter_map(|g| violations(instance.region.as_str(), g.as_str()))
        .flatten()
        .collect();

    let mut active = Vec::new();
    let mut expired = Vec::new();
    let mut exempt_tag_error = None;
    let by_tag = |check, expires: Option<&String>, reason: Option<&String>| Applied {
        check,
        id: tag_id(&settings.exempt_tag_key),
        group_id: None,
        expires: expires.cloned(),
        reason: reason.cloned(),
        owner: None,
    };
    match &tags.exemption {
        TagExemption::NotExempt => {}
        TagExemption::Always => active.extend(Check::ALL.map(|c| by_tag(c, None, None))),
        TagExemption::Until { expires, reason } => {
            let in_force = Day::parse(expires).is_some_and(|last| today <= last);
            let list = if in_force { &mut active } else { &mut expired };
            list.extend(Check::ALL.map(|c| by_tag(c, Some(expires), Some(reason))));
        }
        TagExemption::Invalid(why) => exempt_tag_error = Some(why.clone()),
    }
    for e in &settings.exemptions {
        let list = if e.is_active_on(today) {
            &mut active
        } else {
            &mut expired
        };
        if e.matches_instance(&instance.id, &instance.tags) {
            list.extend(e.checks.iter().map(|c| configured(e, *c, None)));
        } else if e.covers(Check::Ingress) {
            // Named through a group: it covers that group's violations only, so only groups
            // that have some are worth recording.
            list.extend(
                group_ids
                    .iter()
                    .filter(|g| {
                        e.matches_group(g)
                            && violations(instance.region.as_str(), g.as_str()).is_some()
                    })
                    .map(|g| configured(e, Check::Ingress, Some(g.clone()))),
            );
        }
    }
    let active = tidy(active);
    let expired = tidy(expired);

    let names_instance = |check| {
        active
            .iter()
            .any(|a| a.check == check && a.group_id.is_none())
    };
    let group_waived = |group: &str| {
        active
            .iter()
            .any(|a| a.check == Check::Ingress && a.group_id.as_deref() == Some(group))
    };
    let exempt = names_instance(Check::Tags) && names_instance(Check::Ingress);
    let tags_found = !tags.missing.is_empty();
    let ingress_found = !inherited.is_empty();
    let tags_waived = tags_found && names_instance(Check::Tags);
    let ingress_waived = ingress_found
        && (names_instance(Check::Ingress) || inherited.iter().all(|v| group_waived(&v.group_id)));
    let compliant = !exempt && (!tags_found || tags_waived) && (!ingress_found || ingress_waived);
    let exempted_findings = [(Check::Tags, tags_waived), (Check::Ingress, ingress_waived)]
        .into_iter()
        .filter_map(|(c, waived)| waived.then_some(c))
        .collect();
    InstanceResult {
        instance_id: instance.id,
        account_id: String::new(),
        region: instance.region,
        state: instance.state,
        name: tags.name,
        compliant,
        exempt,
        missing_tags: tags.missing,
        near_misses: tags.near_misses,
        security_groups: group_ids,
        violations: inherited,
        exemptions: active,
        expired_exemptions: expired,
        exempt_tag_error,
        exempted_findings,
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
            // An exempt instance has every finding waived, whether or not its result (written
            // before exemptions were per check) lists them.
            .filter(|i| {
                !i.exempt
                    && !i.missing_tags.is_empty()
                    && !i.exempted_findings.contains(&Check::Tags)
            })
            .count() as u64,
        open_rules: groups.iter().map(|g| g.violations.len() as u64).sum(),
        exempted_findings: instances
            .iter()
            .map(|i| i.exempted_findings.len() as u64)
            .sum::<u64>()
            + groups
                .iter()
                .filter(|g| !g.exemptions.is_empty())
                .map(|g| g.violations.len() as u64)
                .sum::<u64>(),
        accounts: Vec::new(),
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

/// The configured exemptions that name a group for `ingress`: (active, expired) on `today`.
fn group_exemptions(
    group_id: &str,
    settings: &ScanSettings,
    today: Day,
) -> (Vec<Applied>, Vec<Applied>) {
    let (active, expired): (Vec<&Exemption>, Vec<&Exemption>) = settings
        .exemptions
        .iter()
        .filter(|e| e.covers(Check::Ingress) && e.matches_group(group_id))
        .partition(|e| e.is_active_on(today));
    let applied = |list: Vec<&Exemption>| {
        tidy(
            list.into_iter()
                .map(|e| configured(e, Check::Ingress, None))
                .collect(),
        )
    };
    (applied(active), applied(expired))
}

/// Judges a whole fleet on `today` (the UTC day the scan started): every instance against its
/// attached groups, and every group on its own.
pub fn evaluate(
    instances: Vec<Instance>,
    groups: &[SecurityGroup],
    settings: &ScanSettings,
    today: Day,
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
        .map(|i| judge_instance(i, &violations, settings, today))
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
            let (exemptions, expired_exemptions) = group_exemptions(&g.id, settings, today);
            Some(GroupResult {
                group_id: g.id.clone(),
                account_id: String::new(),
                group_name: g.name.clone(),
                vpc_id: g.vpc_id.clone(),
                region: g.region.clone(),
                attached_instances: attached.get(&key).copied().unwrap_or(0),
                violations: v.clone(),
                exemptions,
                expired_exemptions,
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

/// Judges one (account, region) a page of instances at a time, so that a scan holds one page of
/// instances, not the region's fleet: the region's groups are read first (an instance's verdict
/// needs the violations of its groups), then each page is judged and handed on, and only the
/// violating groups, their attachment counts and the totals are kept until [`finish`].
///
/// The verdicts are those of [`evaluate`] on the whole region, each stamped with the account.
///
/// [`finish`]: RegionJudge::finish
#[derive(Debug)]
pub struct RegionJudge<'s> {
    account_id: String,
    region: String,
    settings: &'s ScanSettings,
    today: Day,
    /// The violating groups (their rules dropped), by id.
    groups: HashMap<String, SecurityGroup>,
    /// Their violations, by group id.
    violations: HashMap<String, Vec<Violation>>,
    /// Judged instances attached to each violating group.
    attached: HashMap<String, u64>,
    counts: Counts,
}

impl<'s> RegionJudge<'s> {
    /// A judge for the region's `groups` (every group of one account and region), applying
    /// `settings` on `today`.
    pub fn new(
        account_id: &str,
        region: &str,
        groups: Vec<SecurityGroup>,
        settings: &'s ScanSettings,
        today: Day,
    ) -> RegionJudge<'s> {
        let mut violations = HashMap::new();
        let mut kept = HashMap::new();
        for mut g in groups {
            let v = group_violations(&g, settings);
            if v.is_empty() || violations.contains_key(&g.id) {
                continue;
            }
            g.ingress = Vec::new();
            violations.insert(g.id.clone(), v);
            kept.insert(g.id.clone(), g);
        }
        RegionJudge {
            account_id: account_id.to_string(),
            region: region.to_string(),
            settings,
            today,
            groups: kept,
            violations,
            attached: HashMap::new(),
            counts: Counts::default(),
        }
    }

    /// The verdicts on one page of the region's instances, sorted by instance id.
    pub fn judge(&mut self, page: Vec<Instance>) -> Vec<InstanceResult> {
        let region = self.region.as_str();
        let violations = &self.violations;
        let mut out: Vec<InstanceResult> = page
            .into_iter()
            .map(|i| {
                let mut r = judge(
                    i,
                    |r, g| (r == region).then(|| violations.get(g).cloned()).flatten(),
                    self.settings,
                    self.today,
                );
                r.account_id = self.account_id.clone();
                r
            })
            .collect();
        out.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
        for r in &out {
            for g in &r.security_groups {
                if self.violations.contains_key(g) {
                    *self.attached.entry(g.clone()).or_default() += 1;
                }
            }
        }
        let page = summarize(&out, &[]);
        self.counts.add(&Counts::of(&page));
        out
    }

    /// The region's violating groups, sorted by id, and its totals.
    pub fn finish(self) -> (Vec<GroupResult>, Counts) {
        let mut groups: Vec<GroupResult> = self
            .groups
            .into_values()
            .map(|g| {
                let (exemptions, expired_exemptions) =
                    group_exemptions(&g.id, self.settings, self.today);
                GroupResult {
                    attached_instances: self.attached.get(&g.id).copied().unwrap_or(0),
                    violations: self.violations.get(&g.id).cloned().unwrap_or_default(),
                    group_id: g.id,
                    account_id: self.account_id.clone(),
                    group_name: g.name,
                    vpc_id: g.vpc_id,
                    region: g.region,
                    exemptions,
                    expired_exemptions,
                }
            })
            .collect();
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        let mut counts = self.counts;
        counts.add(&Counts::of(&summarize(&[], &groups)));
        (groups, counts)
    }
}
