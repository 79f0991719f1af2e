//! Exemptions from the fleet to the daily report: instances and groups in moto, scanned by the
//! real scanner with active, expiring and expired exemptions and the exempt tag's dated and
//! malformed forms; then `compliance-reporter report` for that day, read back from moto.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use aws_sdk_ec2::types::{IpPermission, IpRange, ResourceType, Tag, TagSpecification};
use common::*;
use compliance_rules::contract::encode_exemptions;
use compliance_rules::exemptions::{Check, Exemption};
use serde_json::json;
use time::{Duration, OffsetDateTime};

/// Today in UTC plus `days`, `YYYY-MM-DD`.
fn day(days: i64) -> String {
    let d = (OffsetDateTime::now_utc() + Duration::days(days)).date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

fn scanner_bin() -> PathBuf {
    let bin = reporter_bin().with_file_name("compliance-scanner");
    assert!(bin.exists(), "{} is missing", bin.display());
    bin
}

fn scan(world: &World, exemptions: &str) {
    let mut cmd = Command::new(scanner_bin());
    for var in [
        "AWS_LAMBDA_RUNTIME_API",
        "TOPIC_ARN",
        "REQUIRED_TAGS",
        "RESTRICTED_PORTS",
        "EXEMPT_TAG_KEY",
        "SCAN_REGIONS",
        "METRIC_NAMESPACE",
        "BUCKET_OWNER",
    ] {
        cmd.env_remove(var);
    }
    world.moto.configure(&mut cmd);
    let out = cmd
        .env("BUCKET_NAME", &world.bucket)
        .env("STACK_NAME", "ex")
        .env("EXEMPTIONS", exemptions)
        .arg("scan")
        .output()
        .expect("run compliance-scanner");
    assert!(
        out.status.success(),
        "the scanner failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn open_group(ec2: &aws_sdk_ec2::Client, vpc: &str, name: &str, port: i32) -> String {
    let id = ec2
        .create_security_group()
        .group_name(name)
        .description(name)
        .vpc_id(vpc)
        .send()
        .await
        .unwrap()
        .group_id
        .unwrap();
    ec2.authorize_security_group_ingress()
        .group_id(&id)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(port)
                .to_port(port)
                .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    id
}

async fn launch(
    ec2: &aws_sdk_ec2::Client,
    image: &str,
    group: &str,
    tags: &[(&str, String)],
) -> String {
    let tags: Vec<Tag> = tags
        .iter()
        .map(|(k, v)| Tag::builder().key(*k).value(v).build())
        .collect();
    ec2.run_instances()
        .image_id(image)
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

fn exemption(id: &str, checks: &[Check], expires: String, owner: &str) -> Exemption {
    Exemption {
        id: id.into(),
        instances: vec![],
        groups: vec![],
        tags: BTreeMap::new(),
        checks: checks.to_vec(),
        reason: format!("reason of {id}"),
        owner: owner.into(),
        expires,
    }
}

#[tokio::test]
async fn the_report_lists_active_expiring_and_expired_exemptions() {
    let world = World::start().await;
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(test_support::REGION))
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .endpoint_url(world.moto.endpoint())
        .load()
        .await;
    let ec2 = aws_sdk_ec2::Client::new(&shared);
    let image = ec2
        .describe_images()
        .send()
        .await
        .unwrap()
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
    let sg_ssh = open_group(&ec2, &vpc, "ssh", 22).await;
    let sg_rdp = open_group(&ec2, &vpc, "rdp", 3389).await;
    let sg_web = open_group(&ec2, &vpc, "web", 443).await;
    let all: Vec<(&str, String)> = [
        ("Environment", "prod"),
        ("Owner", "ops"),
        ("CostCenter", "42"),
    ]
    .iter()
    .map(|(k, v)| (*k, v.to_string()))
    .collect();
    let with = |extra: (&'static str, String)| {
        let mut t = all.clone();
        t.push(extra);
        t
    };

    let i_bastion = launch(&ec2, &image, &sg_ssh, &all).await;
    let i_legacy = launch(&ec2, &image, &sg_web, &[("Team", "legacy".into())]).await;
    let i_old = launch(&ec2, &image, &sg_rdp, &all).await;
    let i_tag_soon = launch(
        &ec2,
        &image,
        &sg_web,
        &[(
            "ComplianceExempt",
            format!("until {}: vendor appliance", day(3)),
        )],
    )
    .await;
    let i_tag_gone = launch(
        &ec2,
        &image,
        &sg_rdp,
        &with((
            "ComplianceExempt",
            format!("until {}: old appliance", day(-4)),
        )),
    )
    .await;
    let i_tag_bad = launch(
        &ec2,
        &image,
        &sg_web,
        &with(("ComplianceExempt", "until whenever: trust me".into())),
    )
    .await;

    let mut bastion = exemption("bastion", &[Check::Ingress], day(60), "netops@example.com");
    bastion.groups = vec![sg_ssh.clone()];
    let mut legacy = exemption("legacy", &[Check::Tags], day(7), "ana@example.com");
    legacy.tags = BTreeMap::from([("Team".into(), "legacy".into())]);
    let mut old = exemption("old", &Check::ALL, day(-1), "bob@example.com");
    old.instances = vec![i_old.clone()];
    scan(&world, &encode_exemptions(&[bastion, legacy, old]));

    let today = day(0);
    let topic = world
        .sns
        .create_topic()
        .name("compliance-alerts-ex")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let out = world
        .reporter()
        .env("TOPIC_ARN", &topic)
        .args(["report", "--date", &today])
        .output()
        .unwrap();
    assert_success(&out);
    let outcome: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(outcome["scans_analysed"], 1, "{outcome}");
    assert_eq!(
        (
            &outcome["expiring_exemptions"],
            &outcome["expired_exemptions"]
        ),
        (&json!(2), &json!(2)),
        "{outcome}"
    );

    // ---- report.json ----
    let prefix = format!("reports/{}/", today.replace('-', "/"));
    let r = world.get_json(&format!("{prefix}report.json")).await;
    let active = r["active_exemptions"].as_array().unwrap();
    let summary: Vec<(&str, i64, bool)> = active
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap(),
                e["days_left"].as_i64().unwrap(),
                e["expiring_soon"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("tag:ComplianceExempt", 3, true),
            ("legacy", 7, true),
            ("bastion", 60, false),
        ]
    );
    assert_eq!(
        active[2],
        json!({
            "id": "bastion", "source": "configuration", "checks": ["ingress"],
            "instances": [], "groups": [sg_ssh], "tags": {},
            "owner": "netops@example.com", "reason": "reason of bastion",
            "expires": day(60), "days_left": 60, "expiring_soon": false,
            "matched_instances": [i_bastion], "matched_groups": [sg_ssh],
        })
    );
    assert_eq!(active[1]["tags"], json!({"Team": "legacy"}));
    assert_eq!(active[1]["matched_instances"], json!([i_legacy]));
    assert_eq!(active[0]["source"], "tag");
    assert_eq!(active[0]["owner"], serde_json::Value::Null);
    assert_eq!(active[0]["reason"], "vendor appliance");
    assert_eq!(active[0]["matched_instances"], json!([i_tag_soon]));

    let expired = r["expired_exemptions"].as_array().unwrap();
    let summary: Vec<(&str, i64, &serde_json::Value)> = expired
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap(),
                e["days_left"].as_i64().unwrap(),
                &e["matched_instances"],
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("tag:ComplianceExempt", -4, &json!([i_tag_gone])),
            ("old", -1, &json!([i_old])),
        ]
    );
    assert_eq!(expired[1]["owner"], "bob@example.com");
    assert!(
        r["message"].as_str().unwrap().ends_with(
            "; 3 exemptions active, 2 expiring within 14 days, 2 expired still configured."
        ),
        "{}",
        r["message"]
    );
    let row = |id: &str| {
        r["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["instance_id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(
        row(&i_bastion)["exemptions"],
        json!([format!("bastion (ingress via {sg_ssh})")])
    );
    assert_eq!(row(&i_old)["latest_verdict"], "non-compliant");
    assert_eq!(row(&i_tag_bad)["latest_verdict"], "compliant");

    // ---- report.csv ----
    let (header, rows) = parse_csv(&world.get_text(&format!("{prefix}report.csv")).await);
    assert_eq!(header[10], "exemptions");
    assert_eq!(header.last().map(String::as_str), Some("account_id"));
    let legacy_row = rows.iter().find(|r| r[0] == i_legacy).unwrap();
    assert_eq!(legacy_row[10], "legacy (tags)");
    assert_eq!(legacy_row[6], "compliant");

    // ---- report.html ----
    let html = world.get_text(&format!("{prefix}report.html")).await;
    for needle in [
        "data-figure=\"exemptions-expiring\"><div class=\"value warn\">2<".to_string(),
        "data-figure=\"exemptions-expired\"><div class=\"value bad\">2<".to_string(),
        "2 exemptions expire within 14 days: tag:ComplianceExempt, legacy.".to_string(),
        format!(
            "<td>bastion</td><td>groups {sg_ssh}</td><td>ingress</td><td>netops@example.com</td>"
        ),
        format!(
            "<td>old</td><td>instances {i_old}</td><td>tags, ingress</td><td>bob@example.com</td>"
        ),
    ] {
        assert!(html.contains(&needle), "report.html lacks {needle:?}");
    }

    // ---- the summary message ----
    let data: serde_json::Value =
        serde_json::from_str(&world.moto.get("/moto-api/data.json").unwrap()).unwrap();
    let sent = data["sns"]["Topic"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["arn"] == topic.as_str())
        .unwrap()["sent_notifications"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(sent.len(), 1);
    let body = sent[0][1].as_str().unwrap();
    for needle in [
        "Exemptions: 3 active, 2 expiring within 14 days, 2 expired but still configured.\n"
            .to_string(),
        format!(
            "- legacy (owner ana@example.com): last day {}, 7 days left; matched 1 instance and 0 groups in the latest scan\n",
            day(7)
        ),
        format!(
            "- old (owner bob@example.com): last day {}; matched 1 instance and 0 groups in the latest scan\n",
            day(-1)
        ),
        format!(
            "- tag:ComplianceExempt (owner none): last day {}; matched 1 instance and 0 groups in the latest scan\n",
            day(-4)
        ),
    ] {
        assert!(body.contains(&needle), "{needle:?} not in:\n{body}");
    }
}
