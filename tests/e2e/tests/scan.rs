//! The configured rules reach a real scan: `terraform apply` a stack with rule settings of its own,
//! read the scanner function's environment as Lambda holds it, run the real scanner binary with
//! exactly that environment against a fleet built in moto, and check the stored result: its
//! `settings` are the configured ones, without loss, and its verdicts follow them.

mod common;

use aws_sdk_ec2::types::{IpPermission, IpRange, ResourceType, Tag, TagSpecification};
use common::{deployed_environment, flat, pieces, s3, scan, sdk, stack_config, stack_workdir};
use e2e::{text, Aws, Workdir};
use serde_json::{json, Value};

/// The keys the first stack requires: one with a comma and one with outer spaces, which a
/// comma-separated or trimmed encoding would change.
const KEYS: [&str; 3] = ["Owner", "cost,center", " Team "];

/// The instances and groups the scans judge.
struct Fleet {
    /// Every configured key, one group open to the world on 3389 only.
    tagged: String,
    /// `Team` without the outer spaces: the key ` Team ` is missing.
    trimmed_team: String,
    /// No tags at all.
    bare: String,
    /// `Skip = true` and nothing else: exempt under the configured key.
    skipped: String,
    /// `ComplianceExempt = true` (the default key) and nothing else: not exempt here.
    default_exempt: String,
    /// Every key, in the group open to the world on 5432.
    postgres: String,
    /// Every key, in the group open to the world on every protocol.
    wide: String,
    /// Open to 0.0.0.0/0 on TCP 5432.
    pg_group: String,
    /// Open to 0.0.0.0/0 on TCP 3389.
    rdp_group: String,
    /// Open to 0.0.0.0/0 on every protocol and port.
    all_group: String,
}

async fn group(ec2: &aws_sdk_ec2::Client, vpc: &str, name: &str, rule: IpPermission) -> String {
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
    ec2.authorize_security_group_ingress()
        .group_id(&id)
        .ip_permissions(rule)
        .send()
        .await
        .expect("authorize ingress");
    id
}

fn world(protocol: &str, port: Option<i32>) -> IpPermission {
    IpPermission::builder()
        .ip_protocol(protocol)
        .set_from_port(port)
        .set_to_port(port)
        .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
        .build()
}

async fn launch(
    ec2: &aws_sdk_ec2::Client,
    image: &str,
    subnet: &str,
    group: &str,
    tags: &[(&str, &str)],
) -> String {
    let mut req = ec2
        .run_instances()
        .image_id(image)
        .min_count(1)
        .max_count(1)
        .subnet_id(subnet)
        .security_group_ids(group);
    if !tags.is_empty() {
        let mut spec = TagSpecification::builder().resource_type(ResourceType::Instance);
        for (k, v) in tags {
            spec = spec.tags(Tag::builder().key(*k).value(*v).build());
        }
        req = req.tag_specifications(spec.build());
    }
    req.send()
        .await
        .expect("run instance")
        .instances()
        .first()
        .and_then(|i| i.instance_id())
        .expect("instance id")
        .to_string()
}

/// Builds the fleet in the emulator's us-east-1 (the region the stack scans).
async fn fleet(cfg: &aws_config::SdkConfig) -> Fleet {
    let ec2 = aws_sdk_ec2::Client::new(cfg);
    let image = ec2
        .describe_images()
        .owners("amazon")
        .send()
        .await
        .expect("describe images")
        .images()
        .iter()
        .find_map(|i| i.image_id())
        .expect("moto ships AMIs")
        .to_string();
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.7.0.0/16")
        .send()
        .await
        .expect("create vpc")
        .vpc
        .and_then(|v| v.vpc_id)
        .expect("vpc id");
    let subnet = ec2
        .create_subnet()
        .vpc_id(&vpc)
        .cidr_block("10.7.1.0/24")
        .send()
        .await
        .expect("create subnet")
        .subnet
        .and_then(|s| s.subnet_id)
        .expect("subnet id");
    let pg_group = group(&ec2, &vpc, "postgres-open", world("tcp", Some(5432))).await;
    let rdp_group = group(&ec2, &vpc, "rdp-open", world("tcp", Some(3389))).await;
    let all_group = group(&ec2, &vpc, "all-open", world("-1", None)).await;
    let all_keys = [("Owner", "ana"), ("cost,center", "cc-1"), (" Team ", "sec")];
    let run = |group: String, tags: Vec<(&'static str, &'static str)>| {
        let (ec2, image, subnet) = (ec2.clone(), image.clone(), subnet.clone());
        async move { launch(&ec2, &image, &subnet, &group, &tags).await }
    };
    Fleet {
        tagged: run(rdp_group.clone(), all_keys.to_vec()).await,
        trimmed_team: run(
            rdp_group.clone(),
            vec![("Owner", "ana"), ("cost,center", "cc-1"), ("Team", "sec")],
        )
        .await,
        bare: run(rdp_group.clone(), vec![]).await,
        skipped: run(rdp_group.clone(), vec![("Skip", "true")]).await,
        default_exempt: run(rdp_group.clone(), vec![("ComplianceExempt", "true")]).await,
        postgres: run(pg_group.clone(), all_keys.to_vec()).await,
        wide: run(all_group.clone(), all_keys.to_vec()).await,
        pg_group,
        rdp_group,
        all_group,
    }
}

/// Applies `body` as the stack `suffix`, with `force_destroy` so destroy may remove the bucket
/// holding the result; returns the folder.
fn applied(aws: &Aws, suffix: &str, body: &str) -> Workdir {
    let main_tf = stack_config(aws, suffix, &format!("{body}\n  force_destroy = true"));
    let w = stack_workdir(aws, &format!("scan-{suffix}"), &main_tf);
    let out = w.run(&["apply", "-auto-approve", "-no-color", "-input=false"]);
    let said = text(&out);
    assert!(
        out.status.success(),
        "apply failed{}:\n{said}",
        if flat(&said).contains("force_destroy") {
            " (is `force_destroy` in the schema yet?)"
        } else {
            ""
        }
    );
    w
}

/// Lifts the bucket's TLS-only policy, which moto evaluates wrongly (it refuses the scanner's
/// HTTPS writes); nothing else about the bucket changes.
async fn lift_policy(cfg: &aws_config::SdkConfig, suffix: &str) {
    s3(cfg)
        .delete_bucket_policy()
        .bucket(format!("compliance-results-{suffix}"))
        .send()
        .await
        .expect("lift policy");
}

fn instance<'a>(result: &'a Value, id: &str) -> &'a Value {
    result["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .find(|i| i["instance_id"] == id)
        .unwrap_or_else(|| panic!("{id} is not in the result: {result:#}"))
}

/// Ids of the groups a verdict lists violations of.
fn violating_groups(verdict: &Value) -> Vec<String> {
    let mut ids: Vec<String> = verdict["violations"]
        .as_array()
        .expect("violations")
        .iter()
        .map(|v| v["group_id"].as_str().expect("group_id").to_string())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

fn result_groups(result: &Value) -> Vec<String> {
    let mut ids: Vec<String> = result["security_groups"]
        .as_array()
        .expect("security_groups")
        .iter()
        .map(|g| g["group_id"].as_str().expect("group_id").to_string())
        .collect();
    ids.sort();
    ids
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

/// Destroys the stack and checks nothing of it is left.
async fn destroyed(aws: &Aws, w: &Workdir, suffix: &str) {
    w.ok(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
    let left = pieces(&aws.moto, suffix).await;
    assert!(left.is_empty(), "left after destroy: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_tags_ports_and_exempt_key_reach_the_scan_without_loss() {
    let aws = Aws::plain();
    let cfg = sdk(&aws.moto).await;
    let s = "rules";
    let w = applied(
        &aws,
        s,
        "  required_tags = [\"Owner\", \"cost,center\", \" Team \"]\n  \
         restricted_ports = [5432, 22]\n  exempt_tag_key = \"Skip\"",
    );
    let fleet = fleet(&cfg).await;
    let env = deployed_environment(&cfg, s).await;
    lift_policy(&cfg, s).await;
    let result = scan(&aws, &cfg, &env).await;

    assert_eq!(
        result["settings"],
        json!({
            "required_tags": KEYS,
            "restricted_ports": [22, 5432],
            "exempt_tag_key": "Skip",
        }),
        "the scan applied other settings than configured (deployed environment: {env:?})"
    );
    assert_eq!(result["stack"], s);

    let tagged = instance(&result, &fleet.tagged);
    assert_eq!(tagged["compliant"], true, "{tagged:#}");
    assert_eq!(tagged["missing_tags"], json!([]), "{tagged:#}");
    // 3389 is not among the configured ports: a group open to the world on it is no violation.
    assert_eq!(tagged["violations"], json!([]), "{tagged:#}");
    let trimmed = instance(&result, &fleet.trimmed_team);
    assert_eq!(trimmed["compliant"], false, "{trimmed:#}");
    assert_eq!(trimmed["missing_tags"], json!([" Team "]), "{trimmed:#}");
    let bare = instance(&result, &fleet.bare);
    assert_eq!(bare["missing_tags"], json!(KEYS), "{bare:#}");
    let skipped = instance(&result, &fleet.skipped);
    assert_eq!(skipped["exempt"], true, "{skipped:#}");
    let default_exempt = instance(&result, &fleet.default_exempt);
    assert_eq!(
        (&default_exempt["exempt"], &default_exempt["compliant"]),
        (&json!(false), &json!(false)),
        "the default key exempts nothing once another is configured: {default_exempt:#}"
    );
    assert_eq!(default_exempt["missing_tags"], json!(KEYS));
    let postgres = instance(&result, &fleet.postgres);
    assert_eq!(postgres["compliant"], false, "{postgres:#}");
    assert_eq!(postgres["missing_tags"], json!([]), "{postgres:#}");
    assert_eq!(violating_groups(postgres), [fleet.pg_group.as_str()]);
    assert!(
        postgres["violations"][0]["ports"]
            .as_array()
            .is_some_and(|p| p.contains(&json!(5432))),
        "{postgres:#}"
    );
    let wide = instance(&result, &fleet.wide);
    assert_eq!(violating_groups(wide), [fleet.all_group.as_str()]);
    assert_eq!(
        result_groups(&result),
        sorted(vec![fleet.pg_group.clone(), fleet.all_group.clone()]),
        "only the 5432 and all-traffic groups violate; {} (3389) does not",
        fleet.rdp_group
    );
    assert_eq!(result["summary"]["scanned"], 7, "{:#}", result["summary"]);
    assert_eq!(result["summary"]["exempt"], 1, "{:#}", result["summary"]);
    assert_eq!(result["summary"]["compliant"], 1, "{:#}", result["summary"]);
    assert_eq!(
        result["summary"]["non_compliant"], 5,
        "{:#}",
        result["summary"]
    );

    destroyed(&aws, &w, s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_port_list_reaches_the_scan_as_empty_not_as_the_defaults() {
    let aws = Aws::plain();
    let cfg = sdk(&aws.moto).await;
    let s = "noports";
    let w = applied(
        &aws,
        s,
        "  required_tags = [\"Owner\", \"cost,center\", \" Team \"]\n  restricted_ports = []",
    );
    let fleet = fleet(&cfg).await;
    let env = deployed_environment(&cfg, s).await;
    lift_policy(&cfg, s).await;
    let result = scan(&aws, &cfg, &env).await;

    assert_eq!(
        result["settings"],
        json!({
            "required_tags": KEYS,
            "restricted_ports": [],
            "exempt_tag_key": "ComplianceExempt",
        }),
        "deployed environment: {env:?}"
    );
    // 5432 and 3389 are among the 16 defaults; with no port restricted, only the group open on
    // every protocol and port remains a violation.
    for id in [&fleet.postgres, &fleet.tagged] {
        let verdict = instance(&result, id);
        assert_eq!(verdict["violations"], json!([]), "{verdict:#}");
        assert_eq!(verdict["compliant"], true, "{verdict:#}");
    }
    let wide = instance(&result, &fleet.wide);
    assert_eq!(wide["compliant"], false, "{wide:#}");
    assert_eq!(violating_groups(wide), [fleet.all_group.as_str()]);
    assert_eq!(
        result_groups(&result),
        [fleet.all_group.as_str()],
        "neither {} (5432) nor {} (3389) is a violation",
        fleet.pg_group,
        fleet.rdp_group
    );
    // The default exempt key applies here.
    assert_eq!(instance(&result, &fleet.default_exempt)["exempt"], true);
    assert_eq!(instance(&result, &fleet.skipped)["exempt"], false);

    destroyed(&aws, &w, s).await;
}
