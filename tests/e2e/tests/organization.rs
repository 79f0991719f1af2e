//! Organisation-wide scanning end to end: `terraform apply` with `member_accounts` and
//! `scan_regions`, the deployed scanner's settings and role read back, a real scan with exactly
//! those settings against moto (one member with the member role, one without), import, destroy.

mod common;

use aws_config::{BehaviorVersion, Region};
use common::{deployed_environment, pieces, s3, scan, sdk, stack_config, stack_workdir};
use compliance_rules::contract::ScannerSettings;
use e2e::{text, Aws};
use test_support::fidelity::Fidelity;

const MEMBER: &str = "111111111111";
const NO_ROLE: &str = "222222222222";
const ROLE: &str = "ComplianceScannerMember";

fn plan_code(w: &e2e::Workdir) -> (i32, String) {
    let out = w.run(&["plan", "-no-color", "-input=false", "-detailed-exitcode"]);
    (out.status.code().unwrap_or(-1), text(&out))
}

/// Clients through the proxy, with test credentials or `creds`.
async fn through(
    aws: &Aws,
    region: &str,
    creds: Option<aws_sdk_sts::types::Credentials>,
) -> aws_config::SdkConfig {
    let loader = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(aws.endpoint())
        .region(Region::new(region.to_string()));
    match creds {
        Some(c) => loader.credentials_provider(aws_sdk_sts::config::Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            None,
            "member",
        )),
        None => loader.test_credentials(),
    }
    .load()
    .await
}

/// Clients in `account` (moto serves a request from the account its keys were issued in, and
/// AssumeRole issues keys in the account of the role ARN; through the proxy, so that it learns
/// whose keys they are).
async fn in_account(aws: &Aws, account: &str, region: &str) -> aws_config::SdkConfig {
    let base = through(aws, region, None).await;
    let creds = aws_sdk_sts::Client::new(&base)
        .assume_role()
        .role_arn(format!(
            "arn:aws:iam::{account}:role/OrganizationAccountAccessRole"
        ))
        .role_session_name("setup")
        .send()
        .await
        .expect("assume a role in the member account")
        .credentials
        .expect("credentials");
    through(aws, region, Some(creds)).await
}

/// One untagged instance in `cfg`'s account and region; returns its id.
async fn untagged_instance(cfg: &aws_config::SdkConfig) -> String {
    let ec2 = aws_sdk_ec2::Client::new(cfg);
    let image = ec2
        .describe_images()
        .send()
        .await
        .expect("images")
        .images()
        .first()
        .and_then(|i| i.image_id())
        .expect("an image")
        .to_string();
    ec2.run_instances()
        .image_id(image)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .expect("run instance")
        .instances()
        .first()
        .and_then(|i| i.instance_id())
        .expect("instance id")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_accounts_and_regions_reach_the_scanner_and_a_real_scan() {
    // Behind the proxy, whose trust knob makes AssumeRole follow trust policies as AWS does
    // (moto issues keys for any role ARN); it is turned on once the setup is done.
    let aws = Aws::behind(Fidelity::default());
    let s = "org";
    let body = format!(
        "  member_accounts = [\"{MEMBER}\", \"{NO_ROLE}\"]\n  scan_regions = [\"eu-west-1\", \"us-east-1\"]\n  \
         scan_concurrency = 4\n  force_destroy = true\n  event_driven = false"
    );
    let w = stack_workdir(&aws, "organization", &stack_config(&aws, s, &body));
    w.ok(&["apply", "-auto-approve", "-no-color", "-input=false"]);
    let cfg = sdk(&aws.moto).await;

    // The deployed settings are the configured ones, read as the scanner reads them.
    let env = deployed_environment(&cfg, s).await;
    let settings = ScannerSettings::from_vars(|k| env.get(k).cloned(), None).expect("settings");
    assert_eq!(settings.regions, ["eu-west-1", "us-east-1"]);
    assert_eq!(settings.members.accounts, [MEMBER, NO_ROLE]);
    assert_eq!(settings.members.role_name, ROLE);
    assert_eq!(settings.concurrency, 4);
    // The scanner's role may assume exactly those two member roles.
    let policy = aws_sdk_iam::Client::new(&cfg)
        .get_role_policy()
        .role_name(format!("compliance-scanner-{s}"))
        .policy_name("compliance-monitor")
        .send()
        .await
        .expect("scanner policy");
    let doc: serde_json::Value =
        serde_json::from_str(&percent_decode(policy.policy_document())).expect("policy JSON");
    let assume: Vec<&serde_json::Value> = doc["Statement"]
        .as_array()
        .expect("statements")
        .iter()
        .filter(|st| st["Action"] == "sts:AssumeRole")
        .collect();
    assert_eq!(assume.len(), 1, "{doc}");
    assert_eq!(
        assume[0]["Resource"],
        serde_json::json!([
            format!("arn:aws:iam::{MEMBER}:role/{ROLE}"),
            format!("arn:aws:iam::{NO_ROLE}:role/{ROLE}")
        ])
    );

    // The member with a role, an untagged instance in each of its scanned regions; the member
    // without one; and one in the stack's own account.
    let member_east = in_account(&aws, MEMBER, "us-east-1").await;
    aws_sdk_iam::Client::new(&member_east)
        .create_role()
        .role_name(ROLE)
        .assume_role_policy_document(
            serde_json::json!({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                    "Principal": {"AWS": format!("arn:aws:iam::123456789012:role/compliance-scanner-{s}")}}]
            })
            .to_string(),
        )
        .send()
        .await
        .expect("member role");
    let east = untagged_instance(&member_east).await;
    let west = untagged_instance(&in_account(&aws, MEMBER, "eu-west-1").await).await;
    let own = untagged_instance(&cfg).await;
    aws.proxy.as_ref().expect("proxy").set(Fidelity {
        trust_policies: true,
        ..Fidelity::default()
    });
    s3(&cfg)
        .delete_bucket_policy()
        .bucket(format!("compliance-results-{s}"))
        .send()
        .await
        .expect("lift the TLS-only policy moto mis-evaluates");

    let result = scan(&aws, &cfg, &env).await;
    let account_of = |id: &str| {
        result["instances"]
            .as_array()
            .expect("instances")
            .iter()
            .find(|i| i["instance_id"] == id)
            .map(|i| (i["account_id"].clone(), i["region"].clone()))
    };
    assert_eq!(
        account_of(&east),
        Some((MEMBER.into(), "us-east-1".into())),
        "{result}"
    );
    assert_eq!(account_of(&west), Some((MEMBER.into(), "eu-west-1".into())));
    assert_eq!(
        account_of(&own),
        Some(("123456789012".into(), "us-east-1".into()))
    );
    let errors = result["errors"].as_array().expect("errors[]");
    assert!(
        errors.iter().any(|e| e["account_id"] == NO_ROLE),
        "the account without the role is in errors[]: {errors:?}"
    );
    assert!(
        !errors.iter().any(|e| e["account_id"] == MEMBER),
        "{errors:?}"
    );
    assert!(
        aws.counters().assume_role_denied.values().sum::<u64>() > 0,
        "the refusal happened: {:?}",
        aws.counters()
    );
    aws.proxy.as_ref().expect("proxy").set(Fidelity::default());

    // analyse names the member account the scan could not read, and the role to install there.
    let output = w.dir.join("analysis.json");
    let mut cmd = std::process::Command::new(test_support::provider_bin());
    aws.moto.configure(&mut cmd);
    let out = cmd
        .current_dir(&w.dir)
        .args(["analyse", "--state", "terraform.tfstate"])
        .args([
            "--endpoint-url",
            &aws.moto.endpoint(),
            "--region",
            "us-east-1",
        ])
        .args(["--output", output.to_str().expect("utf-8 path")])
        .output()
        .expect("run analyse");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&output).expect("analysis.json"))
            .expect("JSON");
    let member_role = report["scanner_results"]["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["check"] == "member role")
        .unwrap_or_else(|| panic!("no member role finding:\n{}", text(&out)));
    assert_eq!(member_role["resource"], format!("account {NO_ROLE}"));
    assert!(
        member_role["fix"]
            .as_str()
            .is_some_and(|f| f.contains(ROLE)),
        "{member_role}"
    );

    // Import reads the scope back: no change.
    w.ok(&["state", "rm", "compliance_monitor.this"]);
    w.ok(&[
        "import",
        "-no-color",
        "-input=false",
        "compliance_monitor.this",
        s,
    ]);
    let (code, out) = plan_code(&w);
    // force_destroy is not kept on any piece: an import sets it false, the only change.
    assert!(
        code == 0
            || (code == 2 && out.contains("~ force_destroy") && !out.contains("member_accounts")),
        "{out}"
    );
    w.ok(&["apply", "-auto-approve", "-no-color", "-input=false"]);
    // That apply put the TLS-only policy back; moto mis-evaluates it for DeleteObjects too.
    s3(&cfg)
        .delete_bucket_policy()
        .bucket(format!("compliance-results-{s}"))
        .send()
        .await
        .expect("lift the policy again");
    w.ok(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
    assert_eq!(pieces(&aws.moto, s).await, Vec::<String>::new());
}

/// IAM returns policy documents URL-encoded.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
