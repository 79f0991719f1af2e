//! The synthetic EC2 endpoint driven by the AWS SDK for Rust: paging returns every instance once,
//! a page costs the same at any fleet size, STS switches accounts, the knobs answer as AWS does,
//! and the same fleet built in a real moto server parses to the same structure.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{
    Filter, Instance, IpPermission, IpRange, Ipv6Range, PrefixListId, ResourceType, SecurityGroup,
    Tag, TagSpecification, UserIdGroupPair,
};
use aws_sdk_sts::config::{Credentials, ProvideCredentials};
use test_support::synthetic_ec2::{State, SyntheticEc2, SyntheticFleet, SyntheticRule};
use test_support::Moto;

/// The states the scanner asks for (functions/scanner/src/fetch.rs).
const SCANNED: [&str; 4] = ["pending", "running", "stopping", "stopped"];

async fn sdk(endpoint: &str, region: &str, attempts: u32) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_string()))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(attempts)
                .with_initial_backoff(Duration::from_millis(5))
                .with_max_backoff(Duration::from_millis(50)),
        )
        .load()
        .await
}

/// `base` with the credentials of `role_arn`, assumed through `base`'s STS.
async fn assumed(base: &SdkConfig, role_arn: &str, external_id: Option<&str>) -> SdkConfig {
    let sts = aws_sdk_sts::Client::new(base);
    let creds = sts
        .assume_role()
        .role_arn(role_arn)
        .role_session_name("compliance-scan")
        .set_external_id(external_id.map(str::to_string))
        .send()
        .await
        .unwrap_or_else(|e| panic!("assume {role_arn}: {:?}", e.into_service_error()))
        .credentials
        .expect("credentials");
    base.to_builder()
        .credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(
            Credentials::new(
                creds.access_key_id,
                creds.secret_access_key,
                Some(creds.session_token),
                None,
                "assumed",
            ),
        ))
        .build()
}

fn ec2_in(cfg: &SdkConfig, region: &str) -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(cfg)
            .region(Region::new(region.to_string()))
            .build(),
    )
}

fn member_arn(account: &str) -> String {
    format!("arn:aws:iam::{account}:role/ComplianceScannerMember")
}

/// Every instance of the client's account and region, page by page; also the page count.
async fn all_instances(
    ec2: &aws_sdk_ec2::Client,
    page: i32,
    states: Option<&[&str]>,
) -> (Vec<Instance>, usize) {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut req = ec2
            .describe_instances()
            .max_results(page)
            .set_next_token(token.take());
        if let Some(states) = states {
            req = req.filters(
                Filter::builder()
                    .name("instance-state-name")
                    .set_values(Some(states.iter().map(|s| s.to_string()).collect()))
                    .build(),
            );
        }
        let answer = req.send().await.expect("describe instances");
        pages += 1;
        for r in answer.reservations.unwrap_or_default() {
            out.extend(r.instances.unwrap_or_default());
        }
        token = answer.next_token.filter(|t| !t.is_empty());
        if token.is_none() {
            return (out, pages);
        }
    }
}

async fn all_groups(ec2: &aws_sdk_ec2::Client, page: i32) -> Vec<SecurityGroup> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let answer = ec2
            .describe_security_groups()
            .max_results(page)
            .set_next_token(token.take())
            .send()
            .await
            .expect("describe security groups");
        out.extend(answer.security_groups.unwrap_or_default());
        token = answer.next_token.filter(|t| !t.is_empty());
        if token.is_none() {
            return out;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn paging_over_ten_thousand_instances_returns_each_once() {
    let fleet = SyntheticFleet {
        instances_per_region: 2500,
        groups_per_region: 40,
        seed: 11,
        ..SyntheticFleet::new(
            SyntheticFleet::account_ids(2),
            vec!["us-east-1".into(), "eu-west-1".into()],
        )
    };
    let server = SyntheticEc2::start(fleet.clone());
    let base = sdk(&server.endpoint(), "us-east-1", 1).await;
    let mut seen = BTreeSet::new();
    let mut scanned = 0;
    for (a, account) in fleet.accounts.iter().enumerate() {
        let cfg = assumed(&base, &member_arn(account), None).await;
        for (r, region) in fleet.regions.iter().enumerate() {
            let ec2 = ec2_in(&cfg, region);
            let (instances, pages) = all_instances(&ec2, 1000, None).await;
            assert_eq!(pages, 3, "2500 instances in pages of 1000");
            let expected: Vec<String> = (0..2500).map(|i| fleet.instance(a, r, i).id).collect();
            let got: Vec<String> = instances
                .iter()
                .map(|i| i.instance_id.clone().unwrap())
                .collect();
            assert_eq!(
                got, expected,
                "{account}/{region}: in index order, each once"
            );
            seen.extend(got);

            // The scanner's filtered walk: every live instance once, in small pages too.
            let (live, _) = all_instances(&ec2, 1000, Some(&SCANNED)).await;
            let (live_small, small_pages) = all_instances(&ec2, 37, Some(&SCANNED)).await;
            let ids = |v: &[Instance]| -> Vec<String> {
                v.iter().map(|i| i.instance_id.clone().unwrap()).collect()
            };
            assert_eq!(ids(&live), ids(&live_small));
            assert_eq!(live.len() as u64, fleet.scanned_per_region(a, r));
            assert!(small_pages >= live.len() / 37);
            assert!(live.iter().all(
                |i| i.state.as_ref().unwrap().name.as_ref().unwrap().as_str() != "terminated"
            ));
            scanned += live.len() as u64;
        }
    }
    assert_eq!(
        seen.len(),
        10_000,
        "every instance exactly once across accounts and regions"
    );
    assert_eq!(scanned, fleet.totals().scanned);
    let counters = server.counters();
    assert_eq!(counters.requests["sts:AssumeRole"], 2);
    assert_eq!(counters.by_account_region.len(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_costs_the_same_at_a_billion_instances() {
    let small = SyntheticFleet {
        instances_per_region: 1000,
        ..SyntheticFleet::new(vec!["200000000000".into()], vec!["us-east-1".into()])
    };
    let huge = SyntheticFleet {
        instances_per_region: 1_000_000_000,
        groups_per_region: 100_000,
        ..small.clone()
    };
    let server = SyntheticEc2::start(small);
    let ec2 = ec2_in(&sdk(&server.endpoint(), "us-east-1", 1).await, "us-east-1");
    let time_page = || async {
        let start = Instant::now();
        let page = ec2
            .describe_instances()
            .max_results(1000)
            .send()
            .await
            .expect("first page");
        (start.elapsed(), page)
    };
    let (small_time, _) = time_page().await;
    server.set(huge.clone());
    let (huge_time, page) = time_page().await;
    let count: usize = page
        .reservations()
        .iter()
        .map(|r| r.instances().len())
        .sum();
    assert_eq!(count, 1000);
    assert!(page.next_token().is_some());
    // A walk of the fleet would take hours; generation by index makes both pages alike.
    assert!(
        huge_time < small_time * 20 + Duration::from_secs(2),
        "page of a billion-instance fleet took {huge_time:?}, of a thousand {small_time:?}"
    );

    // The last instance by id, and the last group, at once.
    let last = huge.instance(0, 0, 999_999_999);
    let by_id = ec2
        .describe_instances()
        .instance_ids(&last.id)
        .send()
        .await
        .expect("by id");
    assert_eq!(
        by_id.reservations()[0].instances()[0].instance_id(),
        Some(last.id.as_str())
    );
    let group = huge.group(0, 0, 99_999);
    let by_id = ec2
        .describe_security_groups()
        .group_ids(&group.id)
        .send()
        .await
        .expect("group by id");
    assert_eq!(
        by_id.security_groups()[0].group_name(),
        Some(group.name.as_str())
    );

    // A filter that matches nothing walks one page's worth, not the fleet: an empty page and a token.
    let start = Instant::now();
    let none = ec2
        .describe_instances()
        .max_results(1000)
        .filters(
            Filter::builder()
                .name("instance-state-name")
                .values("pending")
                .build(),
        )
        .send()
        .await
        .expect("filtered page");
    assert!(none.reservations().is_empty());
    assert!(none.next_token().is_some());
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sdk_reads_what_the_generator_made() {
    let fleet = SyntheticFleet {
        instances_per_region: 300,
        groups_per_region: 60,
        seed: 5,
        ..SyntheticFleet::new(vec!["210987654321".into()], vec!["eu-central-1".into()])
    };
    let server = SyntheticEc2::start(fleet.clone());
    let cfg = sdk(&server.endpoint(), "eu-central-1", 1).await;
    let ec2 = ec2_in(&cfg, "eu-central-1");
    let (instances, _) = all_instances(&ec2, 100, None).await;
    assert_eq!(instances.len(), 300);
    for (n, got) in instances.iter().enumerate() {
        let want = fleet.instance(0, 0, n as u64);
        assert_eq!(got.instance_id(), Some(want.id.as_str()));
        let state = got.state().unwrap();
        assert_eq!(state.name().unwrap().as_str(), want.state.name());
        assert_eq!(state.code(), Some(i32::from(want.state.code())));
        let tags: Vec<(String, String)> = got
            .tags()
            .iter()
            .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
            .collect();
        assert_eq!(tags, want.tags);
        let groups: Vec<(String, String)> = got
            .security_groups()
            .iter()
            .map(|g| (g.group_id().unwrap().into(), g.group_name().unwrap().into()))
            .collect();
        let eni_groups: Vec<String> = got
            .network_interfaces()
            .iter()
            .flat_map(|e| e.groups().iter().map(|g| g.group_id().unwrap().to_string()))
            .collect();
        if want.state == State::Terminated {
            assert!(groups.is_empty() && eni_groups.is_empty() && got.vpc_id().is_none());
        } else {
            assert_eq!(groups, want.groups);
            assert_eq!(
                eni_groups,
                want.groups.iter().map(|g| g.0.clone()).collect::<Vec<_>>()
            );
            assert_eq!(got.vpc_id(), Some(want.vpc_id.as_str()));
            assert_eq!(got.subnet_id(), Some(want.subnet_id.as_str()));
        }
        assert_eq!(
            got.placement().unwrap().availability_zone(),
            Some(want.availability_zone.as_str())
        );
        assert!(got.launch_time().is_some());
    }
    // Reservations hold consecutive instances.
    let page = ec2
        .describe_instances()
        .max_results(8)
        .send()
        .await
        .unwrap();
    assert_eq!(page.reservations().len(), 2);
    assert_eq!(page.reservations()[0].owner_id(), Some("210987654321"));

    let groups = all_groups(&ec2, 7).await;
    assert_eq!(groups.len(), 60);
    for (n, got) in groups.iter().enumerate() {
        let want = fleet.group(0, 0, n as u64);
        assert_eq!(got.group_id(), Some(want.id.as_str()));
        assert_eq!(got.group_name(), Some(want.name.as_str()));
        assert_eq!(got.vpc_id(), Some(want.vpc_id.as_str()));
        assert_eq!(got.owner_id(), Some("210987654321"));
        assert_eq!(
            rules(got.ip_permissions(), &BTreeMap::new()),
            synthetic_rules(&want.ingress)
        );
        assert_eq!(
            rules(got.ip_permissions_egress(), &BTreeMap::new()),
            synthetic_rules(&want.egress)
        );
    }
    // One permission per (protocol, port range), as EC2 answers.
    for g in &groups {
        let ports: Vec<_> = g
            .ip_permissions()
            .iter()
            .map(|p| (p.ip_protocol(), p.from_port(), p.to_port()))
            .collect();
        let distinct: BTreeSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), ports.len(), "{:?}", g.group_name());
    }
    // Every kind of rule the rules page cares about is in this fleet.
    let kinds: BTreeSet<&str> = (0..60)
        .filter_map(|g| fleet.group(0, 0, g).open_violation)
        .collect();
    assert_eq!(kinds.len(), 4, "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn assume_role_switches_account_and_holds_to_the_trust() {
    let accounts = SyntheticFleet::account_ids(3);
    let fleet = SyntheticFleet {
        home_account: "111111111111".into(),
        member_role_name: Some("ComplianceScannerMember".into()),
        external_id: Some("org-scan-7f3a".into()),
        accounts_without_role: BTreeSet::from([accounts[2].clone()]),
        instances_per_region: 20,
        ..SyntheticFleet::new(accounts.clone(), vec!["us-west-2".into()])
    };
    let server = SyntheticEc2::start(fleet.clone());
    let base = sdk(&server.endpoint(), "us-west-2", 1).await;
    let sts = aws_sdk_sts::Client::new(&base);

    let me = sts
        .get_caller_identity()
        .send()
        .await
        .expect("home identity");
    assert_eq!(me.account(), Some("111111111111"));
    // The home account holds no fleet here: its EC2 answers are empty, not errors.
    let home = ec2_in(&base, "us-west-2");
    assert!(all_instances(&home, 1000, None).await.0.is_empty());

    let refused = |arn: String, external: Option<&'static str>| {
        let sts = sts.clone();
        async move {
            let err = sts
                .assume_role()
                .role_arn(&arn)
                .role_session_name("compliance-scan")
                .set_external_id(external.map(str::to_string))
                .send()
                .await
                .expect_err(&arn);
            let err = err.into_service_error();
            assert_eq!(err.code(), Some("AccessDenied"), "{arn}");
            assert!(err.message().unwrap().contains("sts:AssumeRole"));
        }
    };
    refused(member_arn(&accounts[0]), None).await;
    refused(member_arn(&accounts[0]), Some("wrong")).await;
    refused(
        format!("arn:aws:iam::{}:role/SomethingElse", accounts[0]),
        Some("org-scan-7f3a"),
    )
    .await;
    refused(member_arn(&accounts[2]), Some("org-scan-7f3a")).await;
    refused(member_arn("999999999999"), Some("org-scan-7f3a")).await;

    for (a, account) in accounts.iter().enumerate().take(2) {
        let cfg = assumed(&base, &member_arn(account), Some("org-scan-7f3a")).await;
        let id = aws_sdk_sts::Client::new(&cfg)
            .get_caller_identity()
            .send()
            .await
            .expect("member identity");
        assert_eq!(id.account(), Some(account.as_str()));
        assert_eq!(
            id.arn(),
            Some(
                format!(
                    "arn:aws:sts::{account}:assumed-role/ComplianceScannerMember/compliance-scan"
                )
                .as_str()
            )
        );
        let (instances, _) = all_instances(&ec2_in(&cfg, "us-west-2"), 1000, None).await;
        let want: Vec<String> = (0..20).map(|i| fleet.instance(a, 0, i).id).collect();
        let got: Vec<String> = instances
            .into_iter()
            .map(|i| i.instance_id.unwrap())
            .collect();
        assert_eq!(got, want, "the fleet of {account}");
    }
    assert_eq!(server.counters().errors["AccessDenied"], 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn regions_opt_in_and_disabled() {
    let fleet = SyntheticFleet {
        disabled_regions: vec!["me-south-1".into()],
        ..SyntheticFleet::new(
            vec!["200000000000".into()],
            vec!["us-east-1".into(), "af-south-1".into()],
        )
    };
    let server = SyntheticEc2::start(fleet);
    let cfg = sdk(&server.endpoint(), "us-east-1", 1).await;
    let ec2 = ec2_in(&cfg, "us-east-1");
    let listed = |answer: aws_sdk_ec2::operation::describe_regions::DescribeRegionsOutput| {
        answer
            .regions()
            .iter()
            .map(|r| {
                assert_eq!(
                    r.endpoint(),
                    Some(format!("ec2.{}.amazonaws.com", r.region_name().unwrap()).as_str())
                );
                (
                    r.region_name().unwrap().to_string(),
                    r.opt_in_status().unwrap().to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    let enabled = listed(ec2.describe_regions().send().await.unwrap());
    assert_eq!(
        enabled,
        vec![
            ("us-east-1".into(), "opt-in-not-required".into()),
            ("af-south-1".into(), "opted-in".into())
        ]
    );
    let all = listed(
        ec2.describe_regions()
            .all_regions(true)
            .send()
            .await
            .unwrap(),
    );
    assert_eq!(all.len(), 3);
    assert_eq!(all[2], ("me-south-1".into(), "not-opted-in".into()));
    let opted = listed(
        ec2.describe_regions()
            .all_regions(true)
            .filters(
                Filter::builder()
                    .name("opt-in-status")
                    .values("opted-in")
                    .build(),
            )
            .send()
            .await
            .unwrap(),
    );
    assert_eq!(opted, vec![("af-south-1".into(), "opted-in".into())]);

    let err = ec2_in(&cfg, "me-south-1")
        .describe_instances()
        .send()
        .await
        .expect_err("disabled region")
        .into_service_error();
    assert_eq!(err.code(), Some("AuthFailure"));
    // An enabled region this fleet does not populate is empty.
    let (none, _) = all_instances(&ec2_in(&cfg, "ap-northeast-1"), 1000, None).await;
    assert!(none.is_empty());
    assert_eq!(
        all_instances(&ec2_in(&cfg, "af-south-1"), 1000, None)
            .await
            .0
            .len(),
        100
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_are_refused_as_ec2_refuses_them() {
    let server = SyntheticEc2::start(SyntheticFleet::new(
        vec!["200000000000".into()],
        vec!["us-east-1".into()],
    ));
    let ec2 = ec2_in(&sdk(&server.endpoint(), "us-east-1", 1).await, "us-east-1");
    fn code(e: impl Into<aws_sdk_ec2::Error>) -> String {
        e.into().code().unwrap_or_default().to_string()
    }
    let small = ec2
        .describe_instances()
        .max_results(3)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(small), "InvalidParameterValue");
    let token = ec2
        .describe_instances()
        .next_token("not-a-token")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(token), "InvalidParameterValue");
    let filter = ec2
        .describe_instances()
        .filters(Filter::builder().name("tag:Owner").values("x").build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(filter), "InvalidParameterValue");
    let both = ec2
        .describe_instances()
        .instance_ids("i-00000000000000001")
        .max_results(5)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(both), "InvalidParameterCombination");
    let missing = ec2
        .describe_instances()
        .instance_ids("i-0000000ffffffffff")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(missing), "InvalidInstanceID.NotFound");
    let dry = ec2
        .describe_instances()
        .dry_run(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(dry), "DryRunOperation");
    let other = ec2.describe_vpcs().send().await.unwrap_err();
    assert_eq!(code(other), "InvalidAction");
    // A token of one listing is refused by another (the groups', or another filter's).
    let page = ec2
        .describe_instances()
        .max_results(5)
        .send()
        .await
        .unwrap();
    let t = page.next_token().unwrap().to_string();
    let cross = ec2
        .describe_security_groups()
        .next_token(&t)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(cross), "InvalidParameterValue");
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_answers_request_limit_exceeded() {
    let fleet = SyntheticFleet {
        throttle: 1.0,
        ..SyntheticFleet::new(vec!["200000000000".into()], vec!["us-east-1".into()])
    };
    let server = SyntheticEc2::start(fleet.clone());
    let ec2 = ec2_in(&sdk(&server.endpoint(), "us-east-1", 1).await, "us-east-1");
    let err = ec2.describe_instances().send().await.unwrap_err();
    let meta = err.raw_response().map(|r| r.status().as_u16());
    assert_eq!(meta, Some(503));
    assert_eq!(
        err.into_service_error().code(),
        Some("RequestLimitExceeded")
    );

    // Partial throttling: the SDK's standard retries get through, and the counters show both.
    server.set(SyntheticFleet {
        throttle: 0.3,
        ..fleet
    });
    server.reset_counters();
    let ec2 = ec2_in(&sdk(&server.endpoint(), "us-east-1", 10).await, "us-east-1");
    let (all, _) = all_instances(&ec2, 5, None).await;
    assert_eq!(all.len(), 100);
    let c = server.counters();
    assert!(c.errors["RequestLimitExceeded"] > 0);
    assert_eq!(c.instances_sent, 100);
}

// ---------------------------------------------------------------------------------------------
// The same fleet in moto.

/// A rule in comparable form: protocol, ports, sorted sources, group ids mapped through `ids`.
type RuleKey = (
    String,
    Option<i32>,
    Option<i32>,
    Vec<String>,
    Vec<String>,
    Vec<String>,
    usize,
);

fn rules(perms: &[IpPermission], ids: &BTreeMap<String, String>) -> Vec<RuleKey> {
    let map = |id: &str| ids.get(id).cloned().unwrap_or_else(|| id.to_string());
    let mut out: Vec<RuleKey> = perms
        .iter()
        .map(|p| {
            let mut v4: Vec<String> = p
                .ip_ranges()
                .iter()
                .filter_map(|r| r.cidr_ip.clone())
                .collect();
            let mut v6: Vec<String> = p
                .ipv6_ranges()
                .iter()
                .filter_map(|r| r.cidr_ipv6.clone())
                .collect();
            let mut groups: Vec<String> = p
                .user_id_group_pairs()
                .iter()
                .filter_map(|g| g.group_id().map(map))
                .collect();
            v4.sort();
            v6.sort();
            groups.sort();
            (
                p.ip_protocol().unwrap_or_default().to_string(),
                p.from_port(),
                p.to_port(),
                v4,
                v6,
                groups,
                p.prefix_list_ids().len(),
            )
        })
        .collect();
    out.sort();
    out
}

fn synthetic_rules(rules: &[SyntheticRule]) -> Vec<RuleKey> {
    let mut out: Vec<RuleKey> = rules
        .iter()
        .map(|r| {
            let mut groups: Vec<String> = r.from_groups.iter().map(|g| g.0.clone()).collect();
            let (mut v4, mut v6) = (r.ipv4.clone(), r.ipv6.clone());
            groups.sort();
            v4.sort();
            v6.sort();
            (
                r.protocol.clone(),
                r.from_port,
                r.to_port,
                v4,
                v6,
                groups,
                r.prefix_lists.len(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Which of the fields the scanner and a reader of the API rely on are present.
fn instance_fields(i: &Instance) -> BTreeMap<&'static str, bool> {
    let eni = i.network_interfaces().first();
    BTreeMap::from([
        ("instance_id", i.instance_id.is_some()),
        ("image_id", i.image_id.is_some()),
        ("state", i.state.is_some()),
        (
            "state.code",
            i.state.as_ref().is_some_and(|s| s.code.is_some()),
        ),
        (
            "state.name",
            i.state.as_ref().is_some_and(|s| s.name.is_some()),
        ),
        ("private_dns_name", i.private_dns_name.is_some()),
        ("instance_type", i.instance_type.is_some()),
        ("launch_time", i.launch_time.is_some()),
        ("ami_launch_index", i.ami_launch_index.is_some()),
        (
            "placement.availability_zone",
            i.placement
                .as_ref()
                .is_some_and(|p| p.availability_zone.is_some()),
        ),
        (
            "placement.tenancy",
            i.placement.as_ref().is_some_and(|p| p.tenancy.is_some()),
        ),
        ("monitoring", i.monitoring.is_some()),
        ("subnet_id", i.subnet_id.is_some()),
        ("vpc_id", i.vpc_id.is_some()),
        ("private_ip_address", i.private_ip_address.is_some()),
        ("source_dest_check", i.source_dest_check.is_some()),
        ("security_groups", i.security_groups.is_some()),
        (
            "security_groups[].group_id",
            i.security_groups().iter().all(|g| g.group_id.is_some()),
        ),
        (
            "security_groups[].group_name",
            i.security_groups().iter().all(|g| g.group_name.is_some()),
        ),
        ("architecture", i.architecture.is_some()),
        ("root_device_type", i.root_device_type.is_some()),
        ("root_device_name", i.root_device_name.is_some()),
        ("block_device_mappings", i.block_device_mappings.is_some()),
        ("virtualization_type", i.virtualization_type.is_some()),
        ("client_token", i.client_token.is_some()),
        ("tags", i.tags.is_some()),
        ("hypervisor", i.hypervisor.is_some()),
        ("ebs_optimized", i.ebs_optimized.is_some()),
        ("metadata_options", i.metadata_options.is_some()),
        ("network_interfaces", !i.network_interfaces().is_empty()),
        (
            "eni.network_interface_id",
            eni.is_some_and(|e| e.network_interface_id.is_some()),
        ),
        ("eni.subnet_id", eni.is_some_and(|e| e.subnet_id.is_some())),
        ("eni.vpc_id", eni.is_some_and(|e| e.vpc_id.is_some())),
        ("eni.owner_id", eni.is_some_and(|e| e.owner_id.is_some())),
        ("eni.status", eni.is_some_and(|e| e.status.is_some())),
        (
            "eni.mac_address",
            eni.is_some_and(|e| e.mac_address.is_some()),
        ),
        (
            "eni.private_ip_address",
            eni.is_some_and(|e| e.private_ip_address.is_some()),
        ),
        ("eni.groups", eni.is_some_and(|e| !e.groups().is_empty())),
        (
            "eni.attachment",
            eni.is_some_and(|e| e.attachment.is_some()),
        ),
        (
            "eni.private_ip_addresses",
            eni.is_some_and(|e| !e.private_ip_addresses().is_empty()),
        ),
        (
            "eni.interface_type",
            eni.is_some_and(|e| e.interface_type.is_some()),
        ),
    ])
}

fn group_fields(g: &SecurityGroup) -> BTreeMap<&'static str, bool> {
    let perms = g.ip_permissions().iter().chain(g.ip_permissions_egress());
    let all = |f: fn(&IpPermission) -> bool| perms.clone().all(f);
    BTreeMap::from([
        ("group_id", g.group_id.is_some()),
        ("group_name", g.group_name.is_some()),
        ("description", g.description.is_some()),
        ("vpc_id", g.vpc_id.is_some()),
        ("owner_id", g.owner_id.is_some()),
        ("security_group_arn", g.security_group_arn.is_some()),
        ("ip_permissions", g.ip_permissions.is_some()),
        ("ip_permissions_egress", g.ip_permissions_egress.is_some()),
        ("tags", g.tags.is_some()),
        ("perm.ip_protocol", all(|p| p.ip_protocol.is_some())),
        (
            "perm.ports",
            all(|p| (p.ip_protocol() == Some("-1")) == p.from_port.is_none()),
        ),
        ("perm.ip_ranges", all(|p| p.ip_ranges.is_some())),
        ("perm.ipv6_ranges", all(|p| p.ipv6_ranges.is_some())),
        (
            "perm.user_id_group_pairs",
            all(|p| p.user_id_group_pairs.is_some()),
        ),
        (
            "perm.pairs.user_id",
            all(|p| p.user_id_group_pairs().iter().all(|u| u.user_id.is_some())),
        ),
        ("perm.prefix_list_ids", all(|p| p.prefix_list_ids.is_some())),
    ])
}

fn tag_list(tags: &[Tag]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = tags
        .iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().into(),
                t.value().unwrap_or_default().into(),
            )
        })
        .collect();
    v.sort();
    v
}

fn name_of(i: &Instance) -> String {
    i.tags()
        .iter()
        .find(|t| t.key() == Some("Name"))
        .and_then(|t| t.value())
        .expect("every synthetic instance has a Name")
        .to_string()
}

fn to_permission(rule: &SyntheticRule, ids: &BTreeMap<String, String>) -> IpPermission {
    let mut b = IpPermission::builder()
        .ip_protocol(&rule.protocol)
        .set_from_port(rule.from_port)
        .set_to_port(rule.to_port);
    for c in &rule.ipv4 {
        b = b.ip_ranges(IpRange::builder().cidr_ip(c).build());
    }
    for c in &rule.ipv6 {
        b = b.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(c).build());
    }
    for (g, _) in &rule.from_groups {
        b = b.user_id_group_pairs(UserIdGroupPair::builder().group_id(&ids[g]).build());
    }
    for p in &rule.prefix_lists {
        b = b.prefix_list_ids(PrefixListId::builder().prefix_list_id(&ids[p]).build());
    }
    b.build()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_fleet_in_moto_parses_to_the_same_structure() {
    const ACCOUNT: &str = "123456789012"; // moto's default account
    const REGION: &str = "us-east-1";
    let fleet = SyntheticFleet {
        instances_per_region: 24,
        groups_per_region: 30,
        seed: 3,
        missing_tag_percent: 30,
        exempt_percent: 15,
        open_group_percent: 40,
        ..SyntheticFleet::new(vec![ACCOUNT.into()], vec![REGION.into()])
    };
    let groups: Vec<_> = (0..30).map(|g| fleet.group(0, 0, g)).collect();
    let instances: Vec<_> = (0..24).map(|i| fleet.instance(0, 0, i)).collect();
    // The fleet holds every shape the comparison is about.
    assert!(groups
        .iter()
        .any(|g| g.ingress.iter().any(|r| !r.prefix_lists.is_empty())));
    assert!(groups
        .iter()
        .skip(2)
        .any(|g| g.ingress.iter().any(|r| !r.from_groups.is_empty())));
    assert!(instances.iter().any(|i| i.state == State::Stopped));
    assert!(instances.iter().any(|i| i.state == State::Terminated));
    assert!(instances.iter().any(|i| i.groups.len() == 2));
    assert!(
        instances.iter().any(|i| i.exempt) && instances.iter().any(|i| i.missing_tag.is_some())
    );

    let moto = Moto::start();
    let moto_cfg = sdk(&moto.endpoint(), REGION, 3).await;
    let ec2 = ec2_in(&moto_cfg, REGION);
    // synthetic id -> moto id, and back.
    let mut to_moto: BTreeMap<String, String> = BTreeMap::new();
    for v in 0..fleet.vpcs_per_region() {
        let vpc = ec2
            .create_vpc()
            .cidr_block(format!("10.{v}.0.0/16"))
            .send()
            .await
            .unwrap()
            .vpc
            .unwrap()
            .vpc_id
            .unwrap();
        let synthetic_vpc = groups[v as usize].vpc_id.clone();
        for (s, az) in ["a", "b"].iter().enumerate() {
            let subnet = ec2
                .create_subnet()
                .vpc_id(&vpc)
                .cidr_block(format!("10.{v}.{}.0/17", s * 128))
                .availability_zone(format!("{REGION}{az}"))
                .send()
                .await
                .unwrap()
                .subnet
                .unwrap()
                .subnet_id
                .unwrap();
            // Subnet ids encode (account 0, region 0, 2 v + s) in 17 hex digits.
            let synthetic_subnet = format!("subnet-{:017x}", v * 2 + s as u64);
            to_moto.insert(synthetic_subnet, subnet);
        }
        // moto makes each VPC's default group, as EC2 does.
        let default = ec2
            .describe_security_groups()
            .filters(Filter::builder().name("vpc-id").values(&vpc).build())
            .filters(
                Filter::builder()
                    .name("group-name")
                    .values("default")
                    .build(),
            )
            .send()
            .await
            .unwrap()
            .security_groups()[0]
            .group_id()
            .unwrap()
            .to_string();
        to_moto.insert(groups[v as usize].id.clone(), default);
        to_moto.insert(synthetic_vpc, vpc);
    }
    let prefix_lists: BTreeSet<&String> = groups
        .iter()
        .flat_map(|g| g.ingress.iter().flat_map(|r| r.prefix_lists.iter()))
        .collect();
    for pl in prefix_lists {
        let id = ec2
            .create_managed_prefix_list()
            .prefix_list_name(pl)
            .max_entries(5)
            .address_family("IPv4")
            .send()
            .await
            .unwrap()
            .prefix_list
            .unwrap()
            .prefix_list_id
            .unwrap();
        to_moto.insert(pl.clone(), id);
    }
    for g in groups.iter().filter(|g| g.name != "default") {
        let id = ec2
            .create_security_group()
            .group_name(&g.name)
            .description(&g.description)
            .vpc_id(&to_moto[&g.vpc_id])
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::SecurityGroup)
                    .set_tags(Some(
                        g.tags
                            .iter()
                            .map(|(k, v)| Tag::builder().key(k).value(v).build())
                            .collect(),
                    ))
                    .build(),
            )
            .send()
            .await
            .unwrap()
            .group_id
            .unwrap();
        to_moto.insert(g.id.clone(), id);
    }
    for g in &groups {
        ec2.authorize_security_group_ingress()
            .group_id(&to_moto[&g.id])
            .set_ip_permissions(Some(
                g.ingress
                    .iter()
                    .map(|r| to_permission(r, &to_moto))
                    .collect(),
            ))
            .send()
            .await
            .unwrap_or_else(|e| panic!("ingress of {}: {:?}", g.name, e.into_service_error()));
    }
    let image = ec2
        .describe_images()
        .owners("amazon")
        .send()
        .await
        .unwrap()
        .images()[0]
        .image_id()
        .unwrap()
        .to_string();
    for inst in &instances {
        let id = ec2
            .run_instances()
            .image_id(&image)
            .min_count(1)
            .max_count(1)
            .instance_type(inst.instance_type.as_str().into())
            .subnet_id(&to_moto[&inst.subnet_id])
            .set_security_group_ids(Some(
                inst.groups.iter().map(|g| to_moto[&g.0].clone()).collect(),
            ))
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Instance)
                    .set_tags(Some(
                        inst.tags
                            .iter()
                            .map(|(k, v)| Tag::builder().key(k).value(v).build())
                            .collect(),
                    ))
                    .build(),
            )
            .send()
            .await
            .unwrap()
            .instances()[0]
            .instance_id()
            .unwrap()
            .to_string();
        match inst.state {
            State::Stopped => {
                ec2.stop_instances().instance_ids(&id).send().await.unwrap();
            }
            State::Terminated => {
                ec2.terminate_instances()
                    .instance_ids(&id)
                    .send()
                    .await
                    .unwrap();
            }
            State::Running => {}
        }
    }
    let to_synthetic: BTreeMap<String, String> = to_moto
        .iter()
        .map(|(s, m)| (m.clone(), s.clone()))
        .collect();

    let server = SyntheticEc2::start(fleet.clone());
    let synthetic = ec2_in(&sdk(&server.endpoint(), REGION, 1).await, REGION);

    // Instances, all of them and then as the scanner asks.
    for states in [None, Some(&SCANNED[..])] {
        let by_name = |v: Vec<Instance>| -> BTreeMap<String, Instance> {
            v.into_iter().map(|i| (name_of(&i), i)).collect()
        };
        let from_moto = by_name(all_instances(&ec2, 1000, states).await.0);
        let from_synthetic = by_name(all_instances(&synthetic, 1000, states).await.0);
        assert_eq!(
            from_moto.keys().collect::<Vec<_>>(),
            from_synthetic.keys().collect::<Vec<_>>(),
            "the same instances (filter {states:?})"
        );
        for (name, m) in &from_moto {
            let s = &from_synthetic[name];
            let state = |i: &Instance| {
                let st = i.state().unwrap();
                (st.code(), st.name().unwrap().as_str().to_string())
            };
            assert_eq!(state(m), state(s), "{name}");
            assert_eq!(tag_list(m.tags()), tag_list(s.tags()), "{name}");
            assert_eq!(m.instance_type(), s.instance_type(), "{name}");
            assert_eq!(
                m.placement().and_then(|p| p.availability_zone()),
                s.placement().and_then(|p| p.availability_zone()),
                "{name}"
            );
            if state(s).1 == "terminated" {
                continue;
            }
            let mapped =
                |id: Option<&str>| id.map(|id| to_synthetic.get(id).cloned().unwrap_or(id.into()));
            assert_eq!(mapped(m.vpc_id()), s.vpc_id().map(String::from), "{name}");
            assert_eq!(
                mapped(m.subnet_id()),
                s.subnet_id().map(String::from),
                "{name}"
            );
            let group_ids = |i: &Instance, map: bool| -> Vec<String> {
                let mut v: Vec<String> = i
                    .security_groups()
                    .iter()
                    .chain(i.network_interfaces().iter().flat_map(|e| e.groups()))
                    .map(|g| {
                        let id = g.group_id().unwrap().to_string();
                        if map {
                            to_synthetic[&id].clone()
                        } else {
                            id
                        }
                    })
                    .collect();
                v.sort();
                v
            };
            assert_eq!(group_ids(m, true), group_ids(s, false), "{name}");
            assert_eq!(instance_fields(m), instance_fields(s), "fields of {name}");
        }
    }

    // Security groups of the fleet's VPCs (moto's own default VPC has one more).
    let key = |g: &SecurityGroup, map: bool| {
        let vpc = g.vpc_id().unwrap().to_string();
        let vpc = if map {
            to_synthetic.get(&vpc).cloned().unwrap_or(vpc)
        } else {
            vpc
        };
        (vpc, g.group_name().unwrap().to_string())
    };
    let from_moto: BTreeMap<_, SecurityGroup> = all_groups(&ec2, 1000)
        .await
        .into_iter()
        .filter(|g| to_synthetic.contains_key(g.vpc_id().unwrap()))
        .map(|g| (key(&g, true), g))
        .collect();
    let from_synthetic: BTreeMap<_, SecurityGroup> = all_groups(&synthetic, 1000)
        .await
        .into_iter()
        .map(|g| (key(&g, false), g))
        .collect();
    assert_eq!(
        from_moto.keys().collect::<Vec<_>>(),
        from_synthetic.keys().collect::<Vec<_>>()
    );
    for (k, m) in &from_moto {
        let s = &from_synthetic[k];
        assert_eq!(m.description(), s.description(), "{k:?}");
        assert_eq!(tag_list(m.tags()), tag_list(s.tags()), "{k:?}");
        assert_eq!(
            rules(m.ip_permissions(), &to_synthetic),
            rules(s.ip_permissions(), &BTreeMap::new()),
            "ingress of {k:?}"
        );
        assert_eq!(
            rules(m.ip_permissions_egress(), &to_synthetic),
            rules(s.ip_permissions_egress(), &BTreeMap::new()),
            "egress of {k:?}"
        );
        assert_eq!(group_fields(m), group_fields(s), "fields of {k:?}");
        assert_eq!(m.owner_id(), s.owner_id());
    }
}

/// One JSON-protocol request, signed in form only (the endpoint reads the key and scope).
fn json_call(
    server: &SyntheticEc2,
    key: &str,
    target: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: {target}\r\nAuthorization: AWS4-HMAC-SHA256 Credential={key}/20240101/\
         us-east-1/organizations/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("application/x-amz-json-1.1"), "{head}");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn organizations_lists_the_accounts_to_the_management_account() {
    let accounts = SyntheticFleet::account_ids(45);
    let fleet = SyntheticFleet {
        home_account: "111111111111".into(),
        suspended_accounts: BTreeSet::from([accounts[7].clone()]),
        ..SyntheticFleet::new(accounts.clone(), vec!["us-east-1".into()])
    };
    let server = SyntheticEc2::start(fleet);
    let target = "AWSOrganizationsV20161128.ListAccounts";
    let mut listed = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let body = match &token {
            Some(t) => serde_json::json!({"MaxResults": 20, "NextToken": t}),
            None => serde_json::json!({"MaxResults": 20}),
        };
        let (status, page) = json_call(&server, "testing", target, &body.to_string());
        assert_eq!(status, 200, "{page}");
        pages += 1;
        for a in page["Accounts"].as_array().unwrap() {
            let id = a["Id"].as_str().unwrap().to_string();
            assert!(a["Arn"].as_str().unwrap().ends_with(&format!("/{id}")));
            assert!(a["JoinedTimestamp"].is_number());
            assert_eq!(a["State"], a["Status"]);
            listed.push((id, a["Status"].as_str().unwrap().to_string()));
        }
        token = page["NextToken"].as_str().map(String::from);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3, "46 accounts in pages of 20");
    assert_eq!(listed[0], ("111111111111".into(), "ACTIVE".into()));
    assert_eq!(listed.len(), 46);
    let suspended: Vec<&String> = listed
        .iter()
        .filter(|(_, s)| s == "SUSPENDED")
        .map(|(id, _)| id)
        .collect();
    assert_eq!(suspended, [&accounts[7]]);

    // A member account may not list the organisation, and a suspended one cannot be entered.
    let base = sdk(&server.endpoint(), "us-east-1", 1).await;
    let member = assumed(&base, &member_arn(&accounts[0]), None).await;
    let key = member
        .credentials_provider()
        .unwrap()
        .provide_credentials()
        .await
        .unwrap()
        .access_key_id()
        .to_string();
    let (status, err) = json_call(&server, &key, target, "{}");
    assert_eq!(
        (status, err["__type"].as_str()),
        (400, Some("AccessDeniedException"))
    );
    let (status, err) = json_call(&server, "testing", target, r#"{"MaxResults": 50}"#);
    assert_eq!(
        (status, err["__type"].as_str()),
        (400, Some("InvalidInputException"))
    );
    let refused = aws_sdk_sts::Client::new(&base)
        .assume_role()
        .role_arn(member_arn(&accounts[7]))
        .role_session_name("compliance-scan")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(refused.code(), Some("AccessDenied"));
}
