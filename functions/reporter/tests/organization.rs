//! The day's report of an organisation-wide scan, end to end: fleets in three accounts of a real
//! moto server (each member reached through its member role, one member without it, behind the
//! fidelity proxy whose trust knob refuses that one), scanned by the real `compliance-scanner`,
//! reported by the real `compliance-reporter`: report.json, the CSV, the page and the summary
//! e-mail give compliance by account and region, worst account first, and name the account that
//! could not be scanned.

mod common;

use std::path::PathBuf;
use std::process::Command;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use common::*;
use test_support::fidelity::{Fidelity, FidelityProxy};

const OWN: &str = "123456789012";
const WORST: &str = "111111111111";
const NO_ROLE: &str = "222222222222";
const EXTERNAL_ID: &str = "org-report-1";

fn scanner_bin() -> PathBuf {
    let bin = reporter_bin().with_file_name("compliance-scanner");
    assert!(
        bin.exists(),
        "{} is missing: build the workspace",
        bin.display()
    );
    bin
}

async fn sdk(endpoint: &str, creds: Option<&aws_sdk_sts::types::Credentials>) -> SdkConfig {
    let loader = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"));
    match creds {
        Some(c) => {
            loader
                .credentials_provider(aws_sdk_sts::config::Credentials::new(
                    c.access_key_id(),
                    c.secret_access_key(),
                    Some(c.session_token().to_string()),
                    None,
                    "member",
                ))
                .load()
                .await
        }
        None => loader.test_credentials().load().await,
    }
}

/// `n` instances in `region`, all tags or none, in the account of `sdk`.
async fn instances(sdk: &SdkConfig, region: &str, n: i32, tagged: bool) {
    let ec2 = aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(sdk)
            .region(Region::new(region.to_string()))
            .build(),
    );
    let image = ec2
        .describe_images()
        .owners("amazon")
        .send()
        .await
        .expect("images")
        .images
        .unwrap_or_default()
        .into_iter()
        .find_map(|i| i.image_id)
        .expect("an AMI");
    let mut req = ec2
        .run_instances()
        .image_id(image)
        .min_count(n)
        .max_count(n);
    if tagged {
        let mut spec = aws_sdk_ec2::types::TagSpecification::builder()
            .resource_type(aws_sdk_ec2::types::ResourceType::Instance);
        for (k, v) in [
            ("Environment", "prod"),
            ("Owner", "ana"),
            ("CostCenter", "1"),
        ] {
            spec = spec.tags(aws_sdk_ec2::types::Tag::builder().key(k).value(v).build());
        }
        req = req.tag_specifications(spec.build());
    }
    req.send().await.expect("run instances");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_report_and_the_summary_give_compliance_by_account_worst_first() {
    let world = World::start().await;
    let topic = world
        .sns
        .create_topic()
        .name("compliance-alerts-org")
        .send()
        .await
        .expect("topic")
        .topic_arn
        .expect("arn");
    let proxy = FidelityProxy::start(&world.moto, Fidelity::default());
    let own = sdk(&proxy.endpoint(), None).await;
    let sts = aws_sdk_sts::Client::new(&own);
    // Own account: 3 compliant in us-east-1. WORST: 1 compliant and 2 untagged in us-east-1, 1
    // untagged in eu-west-1. NO_ROLE: a fleet the scanner cannot reach.
    instances(&own, "us-east-1", 3, true).await;
    for (account, role) in [(WORST, true), (NO_ROLE, false)] {
        let keys = sts
            .assume_role()
            .role_arn(format!(
                "arn:aws:iam::{account}:role/OrganizationAccountAccessRole"
            ))
            .role_session_name("setup")
            .send()
            .await
            .expect("setup AssumeRole")
            .credentials
            .expect("credentials");
        let member = sdk(&proxy.endpoint(), Some(&keys)).await;
        if role {
            let trust = serde_json::json!({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{OWN}:root")},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}}}]});
            aws_sdk_iam::Client::new(&member)
                .create_role()
                .role_name("ComplianceScannerMember")
                .assume_role_policy_document(trust.to_string())
                .send()
                .await
                .expect("member role");
        }
        instances(&member, "us-east-1", 1, true).await;
        instances(&member, "us-east-1", 2, false).await;
        instances(&member, "eu-west-1", 1, false).await;
    }
    proxy.set(Fidelity {
        trust_policies: true,
        ..Fidelity::default()
    });

    let mut scan = Command::new(scanner_bin());
    for var in [
        "AWS_LAMBDA_RUNTIME_API",
        "TOPIC_ARN",
        "EXEMPTIONS",
        "BUCKET_OWNER",
    ] {
        scan.env_remove(var);
    }
    proxy.configure(&mut scan);
    let out = scan
        .arg("scan")
        .env("BUCKET_NAME", &world.bucket)
        .env("STACK_NAME", "org")
        .env("SCAN_REGIONS", "us-east-1,eu-west-1")
        .env("MEMBER_ACCOUNTS", format!("{WORST},{NO_ROLE}"))
        .env("MEMBER_EXTERNAL_ID", EXTERNAL_ID)
        .output()
        .expect("run the scanner");
    assert_success(&out);
    assert_eq!(
        proxy.counters().assume_role_denied.len(),
        1,
        "the role-less member was refused"
    );

    let date = time::OffsetDateTime::now_utc().date().to_string();
    let out = world
        .reporter()
        .env("TOPIC_ARN", &topic)
        .args(["report", "--date", &date])
        .output()
        .unwrap();
    assert_success(&out);
    let prefix = format!("reports/{}/", date.replace('-', "/"));
    let r = world.get_json(&format!("{prefix}report.json")).await;

    // ---- report.json: by account, worst first, with regions and what was not scanned ----
    let accounts = r["accounts"].as_array().expect("accounts");
    let ids: Vec<&str> = accounts
        .iter()
        .map(|a| a["account_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [WORST, OWN, NO_ROLE]);
    let worst = &accounts[0];
    assert_eq!(worst["latest"]["scanned"], 4);
    assert_eq!(worst["latest"]["non_compliant"], 3);
    assert_eq!(worst["latest"]["compliance_percentage"], 25.0);
    let regions: Vec<(&str, u64)> = worst["regions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["region"].as_str().unwrap(),
                g["non_compliant"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(regions, [("eu-west-1", 1), ("us-east-1", 2)]);
    assert_eq!(accounts[1]["latest"]["compliance_percentage"], 100.0);
    let missing = accounts[2]["not_scanned"].as_array().unwrap();
    assert_eq!(missing.len(), 1);
    assert!(
        missing[0]
            .as_str()
            .unwrap()
            .starts_with("every region: AssumeRole")
            && missing[0].as_str().unwrap().contains("AccessDenied"),
        "{missing:?}"
    );
    assert_eq!(accounts[2]["scans"], 0);
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains(&format!("3 accounts, the worst {WORST} at 25.00% (3 non-compliant); 1 account not wholly scanned")),
        "{}",
        r["message"]
    );

    // ---- the CSV names each instance's account ----
    let (header, rows) = parse_csv(&world.get_text(&format!("{prefix}report.csv")).await);
    let col = header
        .iter()
        .position(|h| h == "account_id")
        .expect("account_id column");
    let mut per_account = std::collections::BTreeMap::new();
    for row in &rows {
        *per_account.entry(row[col].clone()).or_insert(0) += 1;
    }
    assert_eq!(
        per_account,
        std::collections::BTreeMap::from([(OWN.to_string(), 3), (WORST.to_string(), 4)])
    );

    // ---- the page has the table, worst account first ----
    let page = world.get_text(&format!("{prefix}report.html")).await;
    let table = page
        .split("<table id=\"accounts\">")
        .nth(1)
        .expect("the accounts table");
    let at = |a: &str| table.find(a).unwrap_or(usize::MAX);
    assert!(at(WORST) < at(OWN) && at(OWN) < at(NO_ROLE) && at(NO_ROLE) < usize::MAX);
    assert!(
        table.contains("<td>eu-west-1</td><td>0.00%</td>"),
        "{table}"
    );

    // ---- the summary e-mail names the accounts, worst first ----
    let data: serde_json::Value =
        serde_json::from_str(&world.moto.get("/moto-api/data.json").unwrap()).unwrap();
    let sent = data["sns"]["Topic"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["arn"] == topic.as_str())
        .expect("the topic")["sent_notifications"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(sent.len(), 1);
    let body = sent[0][1].as_str().unwrap();
    let section = body
        .split("Compliance by account, worst first (latest scan):\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no accounts section:\n{body}"));
    assert!(
        section.starts_with(&format!("- {WORST}: 25.00% (3 of 4 non-compliant)")),
        "{body}"
    );
    assert!(
        section.contains(&format!("- {NO_ROLE}: 100.00% (0 of 0 non-compliant)"))
            && section.contains("  not scanned: every region: AssumeRole"),
        "{body}"
    );
    assert!(
        body.contains(&format!(" in {WORST}/us-east-1: 1/1 scans non-compliant")),
        "{body}"
    );
}
