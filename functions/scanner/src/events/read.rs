//! Reads what a batch's changes name in one region, batched: never one call per instance.
//!
//! - network interfaces: `DescribeNetworkInterfaces` by `network-interface-id` filter, for the
//!   instance each is attached to;
//! - a changed group's instances: `DescribeInstances` filtered by `instance.group-id` (and the
//!   scanned states), plus `DescribeNetworkInterfaces` by `group-id` for instances that carry the
//!   group on another interface only;
//! - instances by id: `DescribeInstances` with up to [`IDS_PER_CALL`] `InstanceIds` a call;
//! - the groups of every instance read, and the changed groups: `DescribeSecurityGroups` by
//!   `group-id` filter.
//!
//! Every change that named a resource is remembered with it (its origin), so a call that fails
//! after the SDK's retries marks exactly the changes it concerned as failed, and the rest of the
//! batch is judged.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{Filter, Instance as Ec2Instance, IpPermission as Ec2Permission};
use aws_sdk_ec2::Client;
use compliance_rules::input::{Instance, IpPermission, SecurityGroup};
use serde::{Deserialize, Serialize};

use super::clients::{classify, code, CallError};

/// The instance states the rules page scans.
pub const SCANNED_STATES: [&str; 4] = ["pending", "running", "stopping", "stopped"];

/// `InstanceIds` per `DescribeInstances`: the bound EC2 documents for its instance-id lists
/// (`DescribeInstances` itself names none). This form cannot be paged with `MaxResults` (EC2
/// refuses both together); a `NextToken` is still followed if one comes.
pub const IDS_PER_CALL: usize = 1000;

/// Values per filter. EC2 documents no bound; 200 is a conservative chunk (the figure commonly
/// reported as accepted).
pub const VALUES_PER_FILTER: usize = 200;

/// Page size of the filtered forms, the largest EC2 allows.
pub const PAGE_SIZE: i32 = 1000;

/// What one region's changes name, and which changes named each resource.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    /// Instances named directly.
    pub instances: BTreeSet<String>,
    /// Groups whose rules changed.
    pub groups: BTreeSet<String>,
    /// Network interfaces whose groups changed.
    pub network_interfaces: BTreeSet<String>,
    /// Resource id → the changes (indexes into the batch) that led to it.
    pub origin: HashMap<String, BTreeSet<usize>>,
}

impl Targets {
    /// Notes that change `n` names `id`.
    pub fn note(&mut self, id: &str, n: usize) {
        self.origin.entry(id.to_string()).or_default().insert(n);
    }

    fn origins<'a>(&self, ids: impl IntoIterator<Item = &'a String>) -> BTreeSet<usize> {
        ids.into_iter()
            .filter_map(|id| self.origin.get(id))
            .flatten()
            .copied()
            .collect()
    }

    /// `to` inherits the changes that led to each of `from`.
    fn inherit<'a>(&mut self, to: &str, from: impl IntoIterator<Item = &'a String>) {
        let more = self.origins(from);
        self.origin.entry(to.to_string()).or_default().extend(more);
    }
}

/// A resource a change named that is not judged, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Skipped {
    /// Its id.
    pub id: String,
    /// Its region.
    pub region: String,
    /// Why: `does not exist`, the state it is in (`terminated`, `shutting-down`), or
    /// `attached to no instance`.
    pub reason: String,
}

/// What one region's reads found.
#[derive(Debug, Default)]
pub struct RegionRead {
    /// Instances in a scanned state, with the changes that led to each.
    pub instances: Vec<(Instance, BTreeSet<usize>)>,
    /// Every group those instances use, and the changed groups, as described.
    pub groups: Vec<SecurityGroup>,
    /// Named resources that are gone or have nothing to judge.
    pub skipped: Vec<Skipped>,
    /// Instances EC2 says do not exist, with the changes that named them: gone, or (just
    /// launched) not visible yet, which the caller tells apart by the changes' age.
    pub missing: Vec<(String, BTreeSet<usize>)>,
    /// Changes whose resources could not be read for a retryable reason.
    pub failed: BTreeSet<usize>,
    /// What failed, for the log.
    pub errors: Vec<String>,
}

/// Reads `targets` in `region`. `Err` only for a refused call (see [`CallError::Refused`]).
pub async fn read_region(
    client: &Client,
    region: &str,
    targets: &Targets,
) -> Result<RegionRead, CallError> {
    let mut t = targets.clone();
    let mut out = RegionRead::default();
    let mut found: BTreeMap<String, Instance> = BTreeMap::new();
    let mut direct: BTreeSet<String> = t.instances.clone();
    let fail = |out: &mut RegionRead, t: &Targets, ids: &[String], e: CallError| match e {
        CallError::Retryable(m) => {
            out.failed.extend(t.origins(ids));
            out.errors.push(m);
            Ok(())
        }
        refused => Err(refused),
    };

    // Interfaces and groups lead to instances; neither depends on the other.
    let enis: Vec<String> = t.network_interfaces.iter().cloned().collect();
    let groups: Vec<String> = t.groups.iter().cloned().collect();
    let (by_eni, by_group) = tokio::join!(
        chunked(&enis, VALUES_PER_FILTER, |c| interfaces(
            client,
            region,
            "network-interface-id",
            c
        )),
        chunked(&groups, VALUES_PER_FILTER, |c| async move {
            let (instances, interfaces) = tokio::join!(
                instances_of_groups(client, region, c),
                interfaces(client, region, "group-id", c)
            );
            Ok((instances?, interfaces))
        }),
    );
    for (chunk, result) in by_eni {
        match result {
            // A role without ec2:DescribeNetworkInterfaces (stacks made before the event mode)
            // cannot resolve an interface: those changes are skipped, the rest judged.
            Err(CallError::Refused(m)) => {
                tracing::error!(error = %m, "network interfaces not read");
                for id in &chunk {
                    out.skipped.push(skipped(
                        id,
                        region,
                        "not read: DescribeNetworkInterfaces refused",
                    ));
                }
            }
            Ok(list) => {
                let seen: BTreeSet<&String> = list.iter().map(|i| &i.id).collect();
                for id in chunk.iter().filter(|id| !seen.contains(id)) {
                    out.skipped.push(skipped(id, region, "does not exist"));
                }
                for eni in &list {
                    match &eni.instance {
                        Some(i) => {
                            t.inherit(i, [&eni.id]);
                            direct.insert(i.clone());
                        }
                        None => {
                            out.skipped
                                .push(skipped(&eni.id, region, "attached to no instance"))
                        }
                    }
                }
            }
            Err(e) => fail(&mut out, &t, &chunk, e)?,
        }
    }
    for (chunk, result) in by_group {
        match result {
            Ok((instances, interfaces)) => {
                let interfaces = match interfaces {
                    Ok(list) => list,
                    Err(CallError::Refused(m)) => {
                        // The primary interfaces' groups came with the instances.
                        tracing::error!(error = %m, "secondary interfaces not read");
                        Vec::new()
                    }
                    Err(e) => {
                        fail(&mut out, &t, &chunk, e)?;
                        Vec::new()
                    }
                };
                let named: BTreeSet<&String> = chunk.iter().collect();
                for i in instances {
                    let via: Vec<&String> =
                        i.group_ids.iter().filter(|g| named.contains(g)).collect();
                    t.inherit(&i.id, via);
                    found.insert(i.id.clone(), i);
                }
                // The group on another interface than the instance's primary one.
                for eni in interfaces {
                    if let Some(i) = eni.instance.filter(|i| !found.contains_key(i)) {
                        let via: Vec<&String> =
                            eni.groups.iter().filter(|g| named.contains(g)).collect();
                        t.inherit(&i, via);
                        direct.insert(i);
                    }
                }
            }
            Err(e) => fail(&mut out, &t, &chunk, e)?,
        }
    }

    let ids: Vec<String> = direct
        .into_iter()
        .filter(|i| !found.contains_key(i))
        .collect();
    for chunk in ids.chunks(IDS_PER_CALL) {
        match instances_by_id(client, region, chunk).await {
            Ok((instances, missing)) => {
                for id in missing {
                    let from = t.origin.get(&id).cloned().unwrap_or_default();
                    out.missing.push((id, from));
                }
                for i in instances {
                    if SCANNED_STATES.contains(&i.state.as_str()) {
                        found.insert(i.id.clone(), i);
                    } else {
                        out.skipped.push(skipped(&i.id, region, &i.state));
                    }
                }
            }
            Err(e) => fail(&mut out, &t, chunk, e)?,
        }
    }

    // Every group an instance uses decides its verdict; a changed group is judged even unused.
    let wanted: Vec<String> = found
        .values()
        .flat_map(|i| i.group_ids.iter().cloned())
        .chain(t.groups.iter().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    for chunk in wanted.chunks(VALUES_PER_FILTER) {
        match security_groups(client, region, chunk).await {
            Ok(groups) => {
                let seen: BTreeSet<&String> = groups.iter().map(|g| &g.id).collect();
                for g in chunk
                    .iter()
                    .filter(|g| t.groups.contains(*g) && !seen.contains(g))
                {
                    out.skipped.push(skipped(g, region, "does not exist"));
                }
                out.groups.extend(groups);
            }
            Err(e) => {
                // An instance cannot be judged without all its groups: its changes go back too.
                let unread: BTreeSet<&String> = chunk.iter().collect();
                let blocked: Vec<String> = found
                    .values()
                    .filter(|i| i.group_ids.iter().any(|g| unread.contains(g)))
                    .map(|i| i.id.clone())
                    .collect();
                let mut ids = chunk.to_vec();
                ids.extend(blocked.iter().cloned());
                fail(&mut out, &t, &ids, e)?;
                for id in blocked {
                    found.remove(&id);
                }
            }
        }
    }

    out.instances = found
        .into_values()
        .map(|i| {
            let from = t.origin.get(&i.id).cloned().unwrap_or_default();
            (i, from)
        })
        .collect();
    out.skipped.sort();
    out.skipped.dedup();
    Ok(out)
}

fn skipped(id: &str, region: &str, reason: &str) -> Skipped {
    Skipped {
        id: id.to_string(),
        region: region.to_string(),
        reason: reason.to_string(),
    }
}

/// Runs `call` on each chunk of `ids` in turn, keeping every chunk's outcome.
async fn chunked<'a, T, F, Fut>(
    ids: &'a [String],
    size: usize,
    call: F,
) -> Vec<(Vec<String>, Result<T, CallError>)>
where
    F: Fn(&'a [String]) -> Fut,
    Fut: std::future::Future<Output = Result<T, CallError>>,
{
    let mut out = Vec::new();
    for chunk in ids.chunks(size) {
        out.push((chunk.to_vec(), call(chunk).await));
    }
    out
}

fn filter(name: &str, values: &[String]) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.to_vec()))
        .build()
}

/// Instances in a scanned state that carry one of `groups`.
async fn instances_of_groups(
    client: &Client,
    region: &str,
    groups: &[String],
) -> Result<Vec<Instance>, CallError> {
    let states: Vec<String> = SCANNED_STATES.iter().map(|s| s.to_string()).collect();
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .describe_instances()
            .filters(filter("instance.group-id", groups))
            .filters(filter("instance-state-name", &states))
            .max_results(PAGE_SIZE)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| classify(&format!("DescribeInstances by group in {region}"), &e))?;
        token = page.next_token.filter(|t| !t.is_empty());
        for r in page.reservations.unwrap_or_default() {
            out.extend(
                r.instances
                    .unwrap_or_default()
                    .into_iter()
                    .map(|i| convert_instance(i, region)),
            );
        }
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// The instances of `ids` that exist (in any state), and the ids EC2 says do not exist.
///
/// EC2 fails the whole call when one id does not exist (`InvalidInstanceID.NotFound`, naming
/// the missing ids); those are set aside and the rest asked again. Should the message name none
/// of them, the chunk is halved, so each missing id costs a few calls at most.
pub async fn instances_by_id(
    client: &Client,
    region: &str,
    ids: &[String],
) -> Result<(Vec<Instance>, Vec<String>), CallError> {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    let mut queue: Vec<Vec<String>> = vec![ids.to_vec()];
    while let Some(ids) = queue.pop() {
        if ids.is_empty() {
            continue;
        }
        let mut token: Option<String> = None;
        loop {
            let result = client
                .describe_instances()
                .set_instance_ids(Some(ids.clone()))
                .set_next_token(token.take())
                .send()
                .await;
            let page = match result {
                Ok(page) => page,
                Err(e)
                    if matches!(
                        code(&e).as_deref(),
                        Some("InvalidInstanceID.NotFound" | "InvalidInstanceID.Malformed")
                    ) =>
                {
                    let text = e
                        .as_service_error()
                        .and_then(|s| s.message())
                        .unwrap_or_default();
                    let named: BTreeSet<&str> = text
                        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                        .collect();
                    let (gone, rest): (Vec<String>, Vec<String>) = ids
                        .iter()
                        .cloned()
                        .partition(|i| named.contains(i.as_str()));
                    if !gone.is_empty() {
                        missing.extend(gone);
                        queue.push(rest);
                    } else if ids.len() == 1 {
                        missing.extend(ids.iter().cloned());
                    } else {
                        let (a, b) = ids.split_at(ids.len() / 2);
                        queue.push(a.to_vec());
                        queue.push(b.to_vec());
                    }
                    break;
                }
                Err(e) => {
                    return Err(classify(
                        &format!("DescribeInstances by id in {region}"),
                        &e,
                    ))
                }
            };
            token = page.next_token.filter(|t| !t.is_empty());
            for r in page.reservations.unwrap_or_default() {
                found.extend(
                    r.instances
                        .unwrap_or_default()
                        .into_iter()
                        .map(|i| convert_instance(i, region)),
                );
            }
            if token.is_none() {
                break;
            }
        }
    }
    Ok((found, missing))
}

/// A network interface: its id, the instance it is attached to, its groups.
#[derive(Debug)]
struct Interface {
    id: String,
    instance: Option<String>,
    groups: Vec<String>,
}

/// Interfaces matching `filter_name` = one of `values`.
async fn interfaces(
    client: &Client,
    region: &str,
    filter_name: &str,
    values: &[String],
) -> Result<Vec<Interface>, CallError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .describe_network_interfaces()
            .filters(filter(filter_name, values))
            .max_results(PAGE_SIZE)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| {
                classify(
                    &format!("DescribeNetworkInterfaces by {filter_name} in {region}"),
                    &e,
                )
            })?;
        token = page.next_token.filter(|t| !t.is_empty());
        out.extend(
            page.network_interfaces
                .unwrap_or_default()
                .into_iter()
                .map(|n| Interface {
                    id: n.network_interface_id.unwrap_or_default(),
                    instance: n.attachment.and_then(|a| a.instance_id),
                    groups: n
                        .groups
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|g| g.group_id)
                        .collect(),
                }),
        );
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// The groups of `ids` that exist (a filter, so a missing id fails nothing).
async fn security_groups(
    client: &Client,
    region: &str,
    ids: &[String],
) -> Result<Vec<SecurityGroup>, CallError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .describe_security_groups()
            .filters(filter("group-id", ids))
            .max_results(PAGE_SIZE)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| classify(&format!("DescribeSecurityGroups in {region}"), &e))?;
        token = page.next_token.filter(|t| !t.is_empty());
        out.extend(
            page.security_groups
                .unwrap_or_default()
                .into_iter()
                .map(|g| SecurityGroup {
                    id: g.group_id.unwrap_or_default(),
                    name: g.group_name.unwrap_or_default(),
                    vpc_id: g.vpc_id,
                    region: region.to_string(),
                    ingress: g
                        .ip_permissions
                        .unwrap_or_default()
                        .into_iter()
                        .map(convert_permission)
                        .collect(),
                }),
        );
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// The rules' view of an instance: the groups of every interface, as the scan reads them.
fn convert_instance(i: Ec2Instance, region: &str) -> Instance {
    let mut group_ids: Vec<String> = i
        .security_groups
        .unwrap_or_default()
        .into_iter()
        .filter_map(|g| g.group_id)
        .collect();
    for eni in i.network_interfaces.unwrap_or_default() {
        group_ids.extend(
            eni.groups
                .unwrap_or_default()
                .into_iter()
                .filter_map(|g| g.group_id),
        );
    }
    group_ids.sort();
    group_ids.dedup();
    Instance {
        id: i.instance_id.unwrap_or_default(),
        region: region.to_string(),
        state: i
            .state
            .and_then(|s| s.name)
            .map(|n| n.as_str().to_string())
            .unwrap_or_default(),
        tags: i
            .tags
            .unwrap_or_default()
            .into_iter()
            .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default()))
            .collect(),
        group_ids,
    }
}

fn convert_permission(p: Ec2Permission) -> IpPermission {
    IpPermission {
        protocol: p.ip_protocol.unwrap_or_default(),
        from_port: p.from_port,
        to_port: p.to_port,
        ipv4_cidrs: p
            .ip_ranges
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| r.cidr_ip)
            .collect(),
        ipv6_cidrs: p
            .ipv6_ranges
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| r.cidr_ipv6)
            .collect(),
        from_groups: p.user_id_group_pairs.is_some_and(|v| !v.is_empty()),
        from_prefix_lists: p.prefix_list_ids.is_some_and(|v| !v.is_empty()),
    }
}
