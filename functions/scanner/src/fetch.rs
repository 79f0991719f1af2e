//! Reads the fleet from EC2: one region's instances and security groups, paged, with tags inline.
//!
//! Each page is turned into the rules crate's small input structs at once and the SDK's copy is
//! dropped. Instances are handed on a page at a time ([`instance_pages`]), so a scan holds a page
//! of them, not the region's fleet; groups are read whole (an instance's verdict needs them).

use aws_sdk_ec2::types::{Filter, Instance as Ec2Instance, IpPermission as Ec2Permission};
use aws_sdk_ec2::Client;
use compliance_rules::input::{Instance, IpPermission, SecurityGroup};

/// The instance states the rules page scans.
pub const SCANNED_STATES: [&str; 4] = ["pending", "running", "stopping", "stopped"];

/// Page size: the largest EC2 allows, and the paginated form draws from the larger throttling bucket.
pub const PAGE_SIZE: i32 = 1000;

/// Every instance in a scanned state, by `DescribeInstances` with a server-side state filter, a
/// page at a time into `pages`; stops early (without error) when the receiver is gone. `where_`
/// names the account and region in errors.
pub async fn instance_pages(
    client: &Client,
    region: &str,
    where_: &str,
    pages: tokio::sync::mpsc::Sender<Vec<Instance>>,
) -> Result<(), FetchError> {
    let filter = Filter::builder()
        .name("instance-state-name")
        .set_values(Some(SCANNED_STATES.iter().map(|s| s.to_string()).collect()))
        .build();
    let mut token: Option<String> = None;
    loop {
        let mut out = Vec::new();
        let page = client
            .describe_instances()
            .filters(filter.clone())
            .max_results(PAGE_SIZE)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| FetchError::new("DescribeInstances", where_, &e))?;
        token = page.next_token.filter(|t| !t.is_empty());
        for reservation in page.reservations.unwrap_or_default() {
            out.extend(
                reservation
                    .instances
                    .unwrap_or_default()
                    .into_iter()
                    .map(|i| convert_instance(i, region)),
            );
        }
        if pages.send(out).await.is_err() || token.is_none() {
            return Ok(());
        }
    }
}

/// A failed EC2 read: the operation, AWS's code, and a cause naming where.
#[derive(Debug, Clone)]
pub struct FetchError {
    /// `DescribeInstances` or `DescribeSecurityGroups`.
    pub operation: &'static str,
    /// AWS's error code, when there is one.
    pub code: Option<String>,
    /// `<operation> in <where>: <code>: <message>`.
    pub cause: String,
}

impl FetchError {
    fn new<E>(
        operation: &'static str,
        where_: &str,
        e: &aws_sdk_ec2::error::SdkError<E>,
    ) -> FetchError
    where
        E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        let context = format!("{operation} in {where_}");
        let error = crate::accounts::scan_error("", None, operation, &context, e);
        FetchError {
            operation,
            code: error.code,
            cause: error.cause,
        }
    }
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.cause)
    }
}

impl std::error::Error for FetchError {}

fn convert_instance(i: Ec2Instance, region: &str) -> Instance {
    // Groups of every network interface: a secondary interface can carry a group the primary lacks.
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

/// Every security group of the region, by paginated `DescribeSecurityGroups`.
pub async fn fetch_groups(
    client: &Client,
    region: &str,
    where_: &str,
) -> Result<Vec<SecurityGroup>, FetchError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .describe_security_groups()
            .max_results(PAGE_SIZE)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| FetchError::new("DescribeSecurityGroups", where_, &e))?;
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
