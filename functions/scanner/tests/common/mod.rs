//! Shared by the integration tests: AWS clients on the moto server, fleet building, running the
//! real binary.

#![allow(dead_code)]

use std::process::{Command, Output};

use aws_config::BehaviorVersion;
use aws_sdk_ec2::types::{
    Filter, IpPermission, IpRange, Ipv6Range, PrefixListId, ResourceType, Tag, TagSpecification,
    UserIdGroupPair,
};
use compliance_rules::result::ScanResult;
use test_support::Moto;

/// Clients of every service the tests touch, pointed at one moto server.
pub struct Aws {
    pub ec2: aws_sdk_ec2::Client,
    pub s3: aws_sdk_s3::Client,
    pub sns: aws_sdk_sns::Client,
    pub cw: aws_sdk_cloudwatch::Client,
    pub sdk: aws_config::SdkConfig,
}

pub async fn sdk_config(moto: &Moto, region: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(moto.endpoint())
        .region(aws_config::Region::new(region.to_string()))
        .test_credentials()
        .load()
        .await
}

impl Aws {
    pub async fn new(moto: &Moto) -> Aws {
        let sdk = sdk_config(moto, test_support::REGION).await;
        Aws {
            ec2: aws_sdk_ec2::Client::new(&sdk),
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&sdk)
                    .force_path_style(true)
                    .build(),
            ),
            sns: aws_sdk_sns::Client::new(&sdk),
            cw: aws_sdk_cloudwatch::Client::new(&sdk),
            sdk,
        }
    }

    /// An EC2 client for another region of the same emulator.
    pub fn ec2_in(&self, region: &str) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::from_conf(
            aws_sdk_ec2::config::Builder::from(&self.sdk)
                .region(aws_config::Region::new(region.to_string()))
                .build(),
        )
    }

    /// Creates the bucket and topic a stack would have; returns the topic ARN.
    pub async fn stack(&self, bucket: &str, topic: &str) -> String {
        self.s3
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .expect("create bucket");
        self.sns
            .create_topic()
            .name(topic)
            .send()
            .await
            .expect("create topic")
            .topic_arn
            .expect("topic arn")
    }

    /// Keys under `scans/` in the bucket.
    pub async fn scan_keys(&self, bucket: &str) -> Vec<String> {
        let out = self
            .s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix("scans/")
            .send()
            .await
            .expect("list scans");
        out.contents
            .unwrap_or_default()
            .into_iter()
            .filter_map(|o| o.key)
            .collect()
    }

    /// The stored scan result at `key`.
    pub async fn read_result(&self, bucket: &str, key: &str) -> ScanResult {
        let obj = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .expect("get scan object");
        let bytes = obj.body.collect().await.expect("read body").into_bytes();
        serde_json::from_slice(&bytes).expect("the object parses as a ScanResult")
    }

    /// The latest value of a metric with dimension Stack=stack.
    pub async fn metric_value(&self, namespace: &str, name: &str, stack: &str) -> Option<f64> {
        self.metric_value_with(namespace, name, &[("Stack", stack)])
            .await
    }

    /// The largest value of a metric with these dimensions in the last hour. moto matches every
    /// metric whose dimensions include these (CloudWatch matches them exactly), so a query of
    /// `Stack` alone also reads the per-(account, region) shares of the same name.
    pub async fn metric_value_with(
        &self,
        namespace: &str,
        name: &str,
        dimensions: &[(&str, &str)],
    ) -> Option<f64> {
        let stack = dimensions;
        let now = aws_smithy_types::DateTime::from_secs(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64,
        );
        let hour = 3600;
        let out = self
            .cw
            .get_metric_statistics()
            .namespace(namespace)
            .metric_name(name)
            .set_dimensions(Some(
                stack
                    .iter()
                    .map(|(k, v)| {
                        aws_sdk_cloudwatch::types::Dimension::builder()
                            .name(*k)
                            .value(*v)
                            .build()
                    })
                    .collect(),
            ))
            .start_time(aws_smithy_types::DateTime::from_secs(now.secs() - hour))
            .end_time(aws_smithy_types::DateTime::from_secs(now.secs() + hour))
            .period(7200)
            .statistics(aws_sdk_cloudwatch::types::Statistic::Maximum)
            .send()
            .await
            .expect("get metric statistics");
        out.datapoints
            .unwrap_or_default()
            .into_iter()
            .filter_map(|d| d.maximum)
            .reduce(f64::max)
    }

    /// Metric names in a namespace, each with its dimensions as `name=value`.
    pub async fn metric_names(&self, namespace: &str) -> Vec<(String, Vec<String>)> {
        let out = self
            .cw
            .list_metrics()
            .namespace(namespace)
            .send()
            .await
            .expect("list metrics");
        let mut names: Vec<_> = out
            .metrics
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                (
                    m.metric_name.unwrap_or_default(),
                    m.dimensions
                        .unwrap_or_default()
                        .into_iter()
                        .map(|d| {
                            format!(
                                "{}={}",
                                d.name.unwrap_or_default(),
                                d.value.unwrap_or_default()
                            )
                        })
                        .collect(),
                )
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// (subject, message) of every notification moto recorded for the topic.
pub fn sent_notifications(moto: &Moto, topic_arn: &str) -> Vec<(String, String)> {
    let data: serde_json::Value =
        serde_json::from_str(&moto.get("/moto-api/data.json").expect("moto data.json"))
            .expect("json");
    let topics = data["sns"]["Topic"].as_array().cloned().unwrap_or_default();
    topics
        .iter()
        .filter(|t| t["arn"] == topic_arn)
        .flat_map(|t| {
            t["sent_notifications"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|n| {
            // moto keeps (message_id, message, subject, attributes, group_id).
            (
                n[2].as_str().unwrap_or_default().to_string(),
                n[1].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// An AMI that moto knows.
pub async fn image_id(ec2: &aws_sdk_ec2::Client) -> String {
    ec2.describe_images()
        .owners("amazon")
        .send()
        .await
        .expect("describe images")
        .images
        .unwrap_or_default()
        .into_iter()
        .find_map(|i| i.image_id)
        .expect("moto ships AMIs")
}

pub async fn vpc_subnet(ec2: &aws_sdk_ec2::Client, cidr16: &str, cidr24: &str) -> (String, String) {
    let vpc = ec2
        .create_vpc()
        .cidr_block(cidr16)
        .send()
        .await
        .expect("create vpc")
        .vpc
        .and_then(|v| v.vpc_id)
        .expect("vpc id");
    let subnet = ec2
        .create_subnet()
        .vpc_id(&vpc)
        .cidr_block(cidr24)
        .send()
        .await
        .expect("create subnet")
        .subnet
        .and_then(|s| s.subnet_id)
        .expect("subnet id");
    (vpc, subnet)
}

/// Creates a group with the given inbound rules; returns its id.
pub async fn group(
    ec2: &aws_sdk_ec2::Client,
    vpc: &str,
    name: &str,
    rules: Vec<IpPermission>,
) -> String {
    let id = ec2
        .create_security_group()
        .group_name(name)
        .description(name)
        .vpc_id(vpc)
        .send()
        .await
        .expect("create group")
        .group_id
        .expect("group id");
    if !rules.is_empty() {
        ec2.authorize_security_group_ingress()
            .group_id(&id)
            .set_ip_permissions(Some(rules))
            .send()
            .await
            .expect("authorize ingress");
    }
    id
}

/// A rule from CIDRs (v4 and v6 told apart by a colon).
pub fn rule(protocol: &str, from: Option<i32>, to: Option<i32>, cidrs: &[&str]) -> IpPermission {
    let mut b = IpPermission::builder()
        .ip_protocol(protocol)
        .set_from_port(from)
        .set_to_port(to);
    for c in cidrs {
        if c.contains(':') {
            b = b.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(*c).build());
        } else {
            b = b.ip_ranges(IpRange::builder().cidr_ip(*c).build());
        }
    }
    b.build()
}

/// A rule whose source is another security group.
pub fn rule_from_group(
    protocol: &str,
    from: Option<i32>,
    to: Option<i32>,
    group: &str,
) -> IpPermission {
    IpPermission::builder()
        .ip_protocol(protocol)
        .set_from_port(from)
        .set_to_port(to)
        .user_id_group_pairs(UserIdGroupPair::builder().group_id(group).build())
        .build()
}

/// A rule whose source is a managed prefix list.
pub fn rule_from_prefix_list(protocol: &str, from: i32, to: i32, list: &str) -> IpPermission {
    IpPermission::builder()
        .ip_protocol(protocol)
        .from_port(from)
        .to_port(to)
        .prefix_list_ids(PrefixListId::builder().prefix_list_id(list).build())
        .build()
}

/// Launches `count` instances in one reservation; returns their ids.
pub async fn launch(
    ec2: &aws_sdk_ec2::Client,
    image: &str,
    subnet: Option<&str>,
    groups: &[&str],
    tags: &[(&str, &str)],
    count: i32,
) -> Vec<String> {
    let mut req = ec2
        .run_instances()
        .image_id(image)
        .min_count(count)
        .max_count(count)
        .set_subnet_id(subnet.map(str::to_string))
        .set_security_group_ids(if groups.is_empty() {
            None
        } else {
            Some(groups.iter().map(|g| g.to_string()).collect())
        });
    if !tags.is_empty() {
        let mut spec = TagSpecification::builder().resource_type(ResourceType::Instance);
        for (k, v) in tags {
            spec = spec.tags(Tag::builder().key(*k).value(*v).build());
        }
        req = req.tag_specifications(spec.build());
    }
    req.send()
        .await
        .expect("run instances")
        .instances
        .unwrap_or_default()
        .into_iter()
        .filter_map(|i| i.instance_id)
        .collect()
}

pub async fn stop(ec2: &aws_sdk_ec2::Client, id: &str) {
    ec2.stop_instances()
        .instance_ids(id)
        .send()
        .await
        .expect("stop instance");
}

pub async fn terminate(ec2: &aws_sdk_ec2::Client, id: &str) {
    ec2.terminate_instances()
        .instance_ids(id)
        .send()
        .await
        .expect("terminate instance");
}

pub async fn prefix_list(ec2: &aws_sdk_ec2::Client) -> String {
    ec2.create_managed_prefix_list()
        .prefix_list_name("office")
        .max_entries(5)
        .address_family("IPv4")
        .send()
        .await
        .expect("create prefix list")
        .prefix_list
        .and_then(|p| p.prefix_list_id)
        .expect("prefix list id")
}

/// The state filter the scanner must send (kept here to check moto honours it).
pub fn state_filter() -> Filter {
    Filter::builder()
        .name("instance-state-name")
        .values("running")
        .build()
}

/// Runs the real binary's `scan` against moto with the given environment.
pub fn run_scan(moto: &Moto, env: &[(&str, &str)]) -> Output {
    run_scan_with(&moto.aws_env(), env)
}

/// Runs the real binary's `scan` with `aws` (an emulator's or a proxy's `aws_env`), then `env`.
pub fn run_scan_with(aws: &[(String, String)], env: &[(&str, &str)]) -> Output {
    scan_command(aws, env)
        .output()
        .expect("run compliance-scanner")
}

/// The real binary's `scan` with `aws`, then `env`, and no setting from the test's own
/// environment; flags may be added.
pub fn scan_command(aws: &[(String, String)], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_compliance-scanner"));
    cmd.arg("scan");
    for var in [
        "AWS_LAMBDA_RUNTIME_API",
        "BUCKET_NAME",
        "BUCKET_OWNER",
        "TOPIC_ARN",
        "REQUIRED_TAGS",
        "RESTRICTED_PORTS",
        "EXEMPT_TAG_KEY",
        "EXEMPTIONS",
        "SCAN_REGIONS",
        "METRIC_NAMESPACE",
        "STACK_NAME",
        "MEMBER_ACCOUNTS",
        "ORGANIZATION_ACCOUNTS",
        "MEMBER_ROLE_NAME",
        "MEMBER_EXTERNAL_ID",
        "SCAN_CONCURRENCY",
        "AWS_PROFILE",
        "AWS_MAX_ATTEMPTS",
        "AWS_RETRY_MODE",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(aws.iter().map(|(k, v)| (k, v)));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

pub fn stdout_json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
