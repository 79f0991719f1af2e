//! End to end with the real scanner: instances created in moto through the EC2 API, scanned twice
//! by `compliance-scanner scan`, then reported by `compliance-reporter report`.

mod common;

use std::path::PathBuf;
use std::process::Command;

use aws_sdk_ec2::types::{IpPermission, IpRange, ResourceType, Tag, TagSpecification};
use common::*;

/// The scanner binary, built next to this package's binary in the shared target dir.
fn scanner_bin() -> PathBuf {
    let bin = reporter_bin().with_file_name("compliance-scanner");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p compliance-scanner`",
        bin.display()
    );
    bin
}

fn scan(world: &World) {
    let mut cmd = Command::new(scanner_bin());
    for var in [
        "AWS_LAMBDA_RUNTIME_API",
        "TOPIC_ARN",
        "REQUIRED_TAGS",
        "RESTRICTED_PORTS",
        "EXEMPT_TAG_KEY",
        "EXEMPTIONS",
        "SCAN_REGIONS",
        "METRIC_NAMESPACE",
    ] {
        cmd.env_remove(var);
    }
    world.moto.configure(&mut cmd);
    let out = cmd
        .env("BUCKET_NAME", &world.bucket)
        .env("STACK_NAME", "e2e")
        .arg("scan")
        .output()
        .expect("run compliance-scanner");
    assert!(
        out.status.success(),
        "the scanner failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn launch(
    ec2: &aws_sdk_ec2::Client,
    image: &str,
    group: &str,
    tags: &[(&str, &str)],
) -> String {
    let tags: Vec<Tag> = tags
        .iter()
        .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
        .collect();
    ec2.run_instances()
        .image_id(image)
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .security_group_ids(group)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Instance)
                .set_tags(Some(tags))
                .build(),
        )
        .send()
        .await
        .expect("run instance")
        .instances()[0]
        .instance_id()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn scans_written_by_the_real_scanner_are_reported() {
    let world = World::start().await;
    let creds = aws_sdk_ec2::config::Credentials::new("testing", "testing", None, None, "test");
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(test_support::REGION))
        .credentials_provider(creds)
        .endpoint_url(world.moto.endpoint())
        .load()
        .await;
    let ec2 = aws_sdk_ec2::Client::new(&shared);
    let image = ec2
        .describe_images()
        .send()
        .await
        .expect("describe images")
        .images()
        .iter()
        .find_map(|i| i.image_id().map(str::to_string))
        .expect("moto ships images");
    let vpc = ec2
        .describe_vpcs()
        .send()
        .await
        .unwrap()
        .vpcs()
        .iter()
        .find(|v| v.is_default() == Some(true))
        .and_then(|v| v.vpc_id().map(str::to_string))
        .expect("a default VPC");
    let closed = ec2
        .create_security_group()
        .group_name("closed")
        .description("nothing from the world")
        .vpc_id(&vpc)
        .send()
        .await
        .unwrap()
        .group_id
        .unwrap();
    let ssh = ec2
        .create_security_group()
        .group_name("ssh-open")
        .description("ssh from anywhere")
        .vpc_id(&vpc)
        .send()
        .await
        .unwrap()
        .group_id
        .unwrap();
    ec2.authorize_security_group_ingress()
        .group_id(&ssh)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(22)
                .to_port(22)
                .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let all_tags = [
        ("Name", "good"),
        ("Environment", "prod"),
        ("Owner", "ops"),
        ("CostCenter", "42"),
    ];
    let good = launch(&ec2, &image, &closed, &all_tags).await;
    let untagged = launch(
        &ec2,
        &image,
        &closed,
        &[
            ("Name", "untagged"),
            ("Environment", "prod"),
            ("CostCenter", "42"),
        ],
    )
    .await;
    let exposed = launch(
        &ec2,
        &image,
        &ssh,
        &[
            ("Name", "exposed"),
            ("Environment", "prod"),
            ("Owner", "ops"),
            ("CostCenter", "42"),
        ],
    )
    .await;

    scan(&world); // good compliant; untagged misses Owner; exposed has SSH open: 1 of 3.
    ec2.create_tags()
        .resources(&untagged)
        .tags(Tag::builder().key("Owner").value("ops").build())
        .send()
        .await
        .unwrap();
    scan(&world); // untagged fixed: 2 of 3.

    // The day the scanner filed its results under (today in UTC, read from the keys).
    let keys: Vec<String> = world
        .s3
        .list_objects_v2()
        .bucket(&world.bucket)
        .prefix("scans/")
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    assert_eq!(keys.len(), 2, "two scans stored: {keys:?}");
    let day = keys[0]
        .split('/')
        .skip(1)
        .take(3)
        .collect::<Vec<_>>()
        .join("-");
    assert!(keys
        .iter()
        .all(|k| k.starts_with(&format!("scans/{}/", day.replace('-', "/")))));

    let outcome = world.report(&day);
    assert_eq!(outcome["scans_analysed"], 2, "{outcome}");
    let r = world
        .get_json(&format!("reports/{}/report.json", day.replace('-', "/")))
        .await;
    assert_eq!(r["stack"], "e2e");
    assert_eq!(r["skipped"], serde_json::json!([]));
    let c = &r["compliance"];
    assert!(close(c["average"].as_f64().unwrap(), 50.0), "{c}");
    assert!(close(c["minimum"].as_f64().unwrap(), 100.0 / 3.0), "{c}");
    assert!(close(c["latest"].as_f64().unwrap(), 200.0 / 3.0), "{c}");
    assert_eq!(r["instances_seen"], 3);
    assert_eq!(r["persistent_offenders"], serde_json::json!([exposed]));
    assert_eq!(r["became_compliant"], serde_json::json!([untagged]));
    assert_eq!(r["new_offenders"], serde_json::json!([]));

    let (_, rows) = parse_csv(
        &world
            .get_text(&format!("reports/{}/report.csv", day.replace('-', "/")))
            .await,
    );
    let row = |id: &str| {
        rows.iter()
            .find(|r| r[0] == id)
            .unwrap_or_else(|| panic!("{id} in the CSV"))
            .clone()
    };
    let e = row(&exposed);
    assert_eq!(
        (e[1].as_str(), e[3].as_str(), e[4].as_str(), e[7].as_str()),
        ("exposed", "2", "2", "yes")
    );
    assert!(
        e[9].contains(&format!("{ssh} tcp port 22 open to 0.0.0.0/0")),
        "{}",
        e[9]
    );
    let u = row(&untagged);
    assert_eq!(
        (u[4].as_str(), u[6].as_str(), u[8].as_str()),
        ("1", "compliant", "Owner")
    );
    let g = row(&good);
    assert_eq!((g[4].as_str(), g[6].as_str()), ("0", "compliant"));
}
