//! Organisation-wide scanning against a real moto server behind the fidelity proxy: an
//! organization of the scanner's account and five members, each member's role made in its own
//! account (moto keeps a backend per account and serves a request from the account its access key
//! was issued in; AssumeRole issues keys in the account of the role ARN), fleets of known verdicts
//! in three regions of every account. One member has no role, one has a region not enabled, one is
//! closed. The proxy makes AssumeRole follow trust policies and the disabled region answer as AWS
//! does, and its counters prove both happened.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use common::*;
use compliance_rules::result::ScanResult;
use test_support::fidelity::{Fidelity, FidelityProxy};
use test_support::Moto;

const BUCKET: &str = "compliance-results-org";
const OWN: &str = "123456789012";
const REGIONS: [&str; 3] = ["ap-southeast-2", "eu-west-1", "us-east-1"];
const EXTERNAL_ID: &str = "org-scan-7f3a";
const ROLE: &str = "ComplianceScannerMember";
const ALL_TAGS: [(&str, &str); 3] = [
    ("Environment", "prod"),
    ("Owner", "ana"),
    ("CostCenter", "cc-1"),
];

/// What each built instance must be judged: (account, region) and compliant or not.
type Truth = BTreeMap<String, (String, String, bool)>;

async fn sdk_with(
    endpoint: &str,
    region: &str,
    creds: Option<&aws_sdk_sts::types::Credentials>,
) -> SdkConfig {
    let loader = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_string()));
    let loader = match creds {
        Some(c) => loader.credentials_provider(aws_sdk_sts::config::Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            None,
            "member",
        )),
        None => loader.test_credentials(),
    };
    loader.load().await
}

/// Keys of `account` (moto issues them for any role ARN there while the proxy's trust knob is
/// off), through the proxy so that it learns which account they are of.
async fn keys_of(sts: &aws_sdk_sts::Client, account: &str) -> aws_sdk_sts::types::Credentials {
    sts.assume_role()
        .role_arn(format!(
            "arn:aws:iam::{account}:role/OrganizationAccountAccessRole"
        ))
        .role_session_name("setup")
        .send()
        .await
        .expect("AssumeRole into the member for setup")
        .credentials
        .expect("credentials")
}

/// The member role: trusts the scanner's account with the external id.
async fn member_role(iam: &aws_sdk_iam::Client) {
    let trust = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{OWN}:root")},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}}
        }]
    });
    iam.create_role()
        .role_name(ROLE)
        .assume_role_policy_document(trust.to_string())
        .send()
        .await
        .expect("CreateRole in the member account");
}

/// A fleet in one (account, region) whose size depends on both, so per-account and per-region
/// totals tell them apart: `1 + a` compliant instances, `1 + r + a` missing Owner, and one with
/// all tags in a group open to the world on SSH.
async fn fleet(
    ec2: &aws_sdk_ec2::Client,
    account: &str,
    region: &str,
    a: usize,
    r: usize,
    truth: &mut Truth,
) {
    let image = image_id(ec2).await;
    let open = ec2
        .create_security_group()
        .group_name(format!("ssh-{a}-{r}"))
        .description("ssh from anywhere")
        .send()
        .await
        .expect("create group")
        .group_id
        .expect("group id");
    ec2.authorize_security_group_ingress()
        .group_id(&open)
        .ip_permissions(rule("tcp", Some(22), Some(22), &["0.0.0.0/0"]))
        .send()
        .await
        .expect("authorize ssh");
    let mut note = |ids: Vec<String>, ok: bool| {
        for id in ids {
            truth.insert(id, (account.to_string(), region.to_string(), ok));
        }
    };
    note(
        launch(ec2, &image, None, &[], &ALL_TAGS, 1 + a as i32).await,
        true,
    );
    note(
        launch(ec2, &image, None, &[], &ALL_TAGS[..1], (1 + r + a) as i32).await,
        false,
    );
    note(
        launch(ec2, &image, None, &[&open], &ALL_TAGS, 1).await,
        false,
    );
}

fn ec2_in(sdk: &SdkConfig, region: &str) -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(sdk)
            .region(Region::new(region.to_string()))
            .build(),
    )
}

async fn read(moto: &Moto, key: &str) -> ScanResult {
    let aws = Aws::new(moto).await;
    aws.read_result(BUCKET, key).await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_organization_is_scanned_account_by_account_and_a_broken_one_is_an_error_not_a_failure()
{
    let moto = Moto::start();
    let proxy = FidelityProxy::start(&moto, Fidelity::default());
    let own = sdk_with(&proxy.endpoint(), "us-east-1", None).await;
    let aws = Aws::new(&moto).await;
    let topic = aws.stack(BUCKET, "compliance-alerts-org").await;

    // The organization: the scanner's account manages it; five members, one closed later.
    let org = aws_sdk_organizations::Client::new(&own);
    org.create_organization()
        .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
        .send()
        .await
        .expect("CreateOrganization");
    let mut members = Vec::new();
    for n in 0..5 {
        let status = org
            .create_account()
            .account_name(format!("member-{n}"))
            .email(format!("member-{n}@example.com"))
            .send()
            .await
            .expect("CreateAccount")
            .create_account_status
            .expect("status");
        members.push(status.account_id.expect("account id"));
    }
    let (with_role, no_role, disabled, closed) =
        (&members[..2], &members[2], &members[3], &members[4]);

    let sts = aws_sdk_sts::Client::new(&own);
    let mut truth = Truth::new();
    let mut accounts: Vec<(String, Option<aws_sdk_sts::types::Credentials>)> =
        vec![(OWN.to_string(), None)];
    for m in &members {
        accounts.push((m.clone(), Some(keys_of(&sts, m).await)));
    }
    for (a, (account, creds)) in accounts.iter().enumerate() {
        let sdk = sdk_with(&proxy.endpoint(), "us-east-1", creds.as_ref()).await;
        if creds.is_some() && account != no_role {
            member_role(&aws_sdk_iam::Client::new(&sdk)).await;
        }
        for (r, region) in REGIONS.iter().enumerate() {
            fleet(&ec2_in(&sdk, region), account, region, a, r, &mut truth).await;
        }
    }
    org.close_account()
        .account_id(closed)
        .send()
        .await
        .expect("CloseAccount");

    // AWS from here on: roles are assumed only as their trust allows, eu-west-1 is not enabled in
    // one member.
    proxy.set(Fidelity {
        trust_policies: true,
        disabled_regions: BTreeMap::from([(
            disabled.clone(),
            BTreeSet::from(["eu-west-1".to_string()]),
        )]),
        ..Fidelity::default()
    });
    proxy.reset_counters();
    let out = run_scan_with(
        &proxy.aws_env(),
        &[
            ("BUCKET_NAME", BUCKET),
            ("BUCKET_OWNER", OWN),
            ("TOPIC_ARN", &topic),
            ("STACK_NAME", "org"),
            ("SCAN_REGIONS", "us-east-1,eu-west-1,ap-southeast-2"),
            ("ORGANIZATION_ACCOUNTS", "true"),
            ("MEMBER_EXTERNAL_ID", EXTERNAL_ID),
            ("SCAN_CONCURRENCY", "4"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the scan fails as a whole:\n{stderr}");
    let report = stdout_json(&out);
    let keys = aws.scan_keys(BUCKET).await;
    assert_eq!(
        keys.len(),
        1,
        "stored despite the broken accounts: {keys:?}"
    );
    let result = read(&moto, &keys[0]).await;

    // ---- what could not be scanned: exactly the role-less member and the disabled region ----
    let errors: Vec<(String, Option<String>, String, Option<String>)> = result
        .errors
        .iter()
        .map(|e| {
            (
                e.account_id.clone(),
                e.region.clone(),
                e.operation.clone(),
                e.code.clone(),
            )
        })
        .collect();
    let mut expected_errors = vec![
        (
            no_role.clone(),
            None,
            "AssumeRole".to_string(),
            Some("AccessDenied".to_string()),
        ),
        (
            disabled.clone(),
            Some("eu-west-1".to_string()),
            "DescribeSecurityGroups".to_string(),
            Some("AuthFailure".to_string()),
        ),
    ];
    expected_errors.sort();
    assert_eq!(errors, expected_errors, "{:#?}", result.errors);
    let role_error = result
        .errors
        .iter()
        .find(|e| &e.account_id == no_role)
        .unwrap();
    assert!(
        role_error
            .cause
            .contains(&format!("arn:aws:iam::{no_role}:role/{ROLE}"))
            && role_error
                .cause
                .contains("not authorized to perform: sts:AssumeRole"),
        "{}",
        role_error.cause
    );
    let region_error = result
        .errors
        .iter()
        .find(|e| &e.account_id == disabled)
        .unwrap();
    assert!(
        region_error
            .cause
            .contains("AWS was not able to validate the provided access credentials"),
        "{}",
        region_error.cause
    );
    assert_eq!(report["scan_error_count"], 2);

    // ---- every verdict per account and region equals the fleets' truth ----
    let readable = |account: &str, region: &str| {
        account != no_role && account != closed && !(account == disabled && region == "eu-west-1")
    };
    let expected: BTreeMap<&String, (&str, &str, bool)> = truth
        .iter()
        .filter(|(_, (a, r, _))| readable(a, r))
        .map(|(id, (a, r, ok))| (id, (a.as_str(), r.as_str(), *ok)))
        .collect();
    let got: BTreeMap<&String, (&str, &str, bool)> = result
        .instances
        .iter()
        .map(|i| {
            (
                &i.instance_id,
                (i.account_id.as_str(), i.region.as_str(), i.compliant),
            )
        })
        .collect();
    assert_eq!(got, expected);
    assert_eq!(result.instances.len(), expected.len(), "no instance twice");
    // The open group of each readable (account, region), named with its account and attached once.
    let groups: BTreeSet<(String, String, u64)> = result
        .security_groups
        .iter()
        .map(|g| (g.account_id.clone(), g.region.clone(), g.attached_instances))
        .collect();
    let expected_groups: BTreeSet<(String, String, u64)> = accounts
        .iter()
        .flat_map(|(a, _)| REGIONS.iter().map(move |r| (a.clone(), r.to_string(), 1)))
        .filter(|(a, r, _)| readable(a, r))
        .collect();
    assert_eq!(groups, expected_groups);

    // ---- the summary per account and region ----
    let s = &result.summary;
    let by_account: BTreeMap<&str, _> = s
        .accounts
        .iter()
        .map(|a| (a.account_id.as_str(), a))
        .collect();
    let mut listed: Vec<&str> = by_account.keys().copied().collect();
    listed.sort();
    let mut scanned_accounts: Vec<&str> =
        vec![OWN, &with_role[0], &with_role[1], no_role, disabled];
    scanned_accounts.sort();
    assert_eq!(
        listed, scanned_accounts,
        "the closed account is not scanned"
    );
    for (account, _) in accounts.iter().filter(|(a, _)| a != closed) {
        let a = by_account[account.as_str()];
        let truth_of = |region: &str| {
            let ids: Vec<&(String, String, bool)> = truth
                .values()
                .filter(|(ac, r, _)| ac == account && r == region)
                .collect();
            (
                ids.len() as u64,
                ids.iter().filter(|(_, _, ok)| *ok).count() as u64,
            )
        };
        let mut total = (0, 0);
        for region in REGIONS.iter().filter(|r| readable(account, r)) {
            let rs = a
                .regions
                .iter()
                .find(|x| x.region == *region)
                .unwrap_or_else(|| panic!("{account} {region} missing from {:?}", a.regions));
            let (n, ok) = truth_of(region);
            assert_eq!(
                (rs.counts.scanned, rs.counts.compliant),
                (n, ok),
                "{account} {region}"
            );
            assert_eq!(rs.counts.open_rules, 1, "{account} {region}");
            total = (total.0 + n, total.1 + ok);
        }
        assert_eq!((a.counts.scanned, a.counts.compliant), total, "{account}");
        let expected_errors = u64::from(account == no_role || account == disabled);
        assert_eq!(a.errors, expected_errors, "{account}");
    }
    assert_eq!(s.scanned, expected.len() as u64);
    assert_eq!(
        s.compliant,
        expected.values().filter(|(_, _, ok)| *ok).count() as u64
    );
    assert_eq!(result.account_id.as_deref(), Some(OWN));
    assert_eq!(result.regions, REGIONS);

    // ---- what the proxy saw: one AssumeRole per member, the refusals it made ----
    let c = proxy.counters();
    assert_eq!(
        c.requests.get("organizations:ListAccounts"),
        Some(&1),
        "{:?}",
        c.requests
    );
    assert_eq!(
        c.requests.get("sts:AssumeRole"),
        Some(&4),
        "one per active member, cached across its regions: {:?}",
        c.requests
    );
    assert_eq!(
        c.assume_role_denied.keys().cloned().collect::<Vec<_>>(),
        [format!("arn:aws:iam::{no_role}:role/{ROLE}")]
    );
    assert!(
        c.region_not_enabled
            .get(&format!("{disabled}/eu-west-1"))
            .copied()
            .unwrap_or(0)
            >= 1,
        "{c:?}"
    );

    // ---- the metric and the alert name them ----
    assert_eq!(
        aws.metric_value("ComplianceMonitoring", "ScanErrors", "org")
            .await,
        Some(2.0)
    );
    let sent = sent_notifications(&moto, &topic);
    assert_eq!(sent.len(), 1);
    let (_, body) = &sent[0];
    assert!(
        body.contains("5 accounts from account 123456789012"),
        "{body}"
    );
    let accounts_part = body
        .split("Accounts, worst first:")
        .nth(1)
        .unwrap_or_else(|| panic!("no accounts section:\n{body}"));
    // Most non-compliant first: a later account has more offenders in each region; the role-less
    // one, nothing read, comes last.
    let pos = |a: &str| accounts_part.find(&format!("- {a}:")).unwrap_or(usize::MAX);
    assert!(pos(&with_role[1]) < pos(&with_role[0]), "{body}");
    assert!(pos(&with_role[0]) < pos(OWN), "{body}");
    assert!(
        pos(OWN) < pos(no_role) && pos(no_role) < usize::MAX,
        "{body}"
    );
    assert!(
        body.contains(&format!("- account {no_role} (every region): AssumeRole")),
        "{body}"
    );
    assert!(
        body.contains(&format!("- account {disabled} eu-west-1:")),
        "{body}"
    );
    assert!(
        body.contains(&format!("(account {}, us-east-1, running)", with_role[1])),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_enabled_region_of_each_listed_account() {
    let moto = Moto::start();
    let proxy = FidelityProxy::start(&moto, Fidelity::default());
    let own = sdk_with(&proxy.endpoint(), "us-east-1", None).await;
    let aws = Aws::new(&moto).await;
    aws.stack(BUCKET, "compliance-alerts-org").await;
    let sts = aws_sdk_sts::Client::new(&own);
    let (m1, m2) = ("111111111111", "222222222222");
    let mut truth = Truth::new();
    for (a, account) in [m1, m2].iter().enumerate() {
        let creds = keys_of(&sts, account).await;
        let sdk = sdk_with(&proxy.endpoint(), "us-east-1", Some(&creds)).await;
        member_role(&aws_sdk_iam::Client::new(&sdk)).await;
        for (r, region) in REGIONS.iter().enumerate() {
            fleet(&ec2_in(&sdk, region), account, region, a, r, &mut truth).await;
        }
    }
    proxy.set(Fidelity {
        trust_policies: true,
        disabled_regions: BTreeMap::from([(
            m2.to_string(),
            BTreeSet::from(["eu-west-1".to_string()]),
        )]),
        ..Fidelity::default()
    });
    proxy.reset_counters();
    let out = run_scan_with(
        &proxy.aws_env(),
        &[
            ("BUCKET_NAME", BUCKET),
            ("STACK_NAME", "org"),
            ("SCAN_REGIONS", "*"),
            ("MEMBER_ACCOUNTS", &format!("{m1},{m2}")),
            ("MEMBER_EXTERNAL_ID", EXTERNAL_ID),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let keys = aws.scan_keys(BUCKET).await;
    let result = read(&moto, &keys[0]).await;
    // A region an account has not enabled is not one of its regions: no error, nothing read there.
    assert_eq!(result.errors, [], "{:#?}", result.errors);
    let regions_of = |account: &str| -> BTreeSet<String> {
        let a = result
            .summary
            .accounts
            .iter()
            .find(|a| a.account_id == account)
            .unwrap();
        a.regions.iter().map(|r| r.region.clone()).collect()
    };
    assert!(regions_of(m1).contains("eu-west-1") && !regions_of(m2).contains("eu-west-1"));
    assert!(regions_of(m2).contains("ap-southeast-2"));
    assert_eq!(regions_of(m1).len(), regions_of(m2).len() + 1);
    // Only the aws partition's regions (the proxy answers DescribeRegions as EC2 does).
    assert!(result
        .regions
        .iter()
        .all(|r| !r.starts_with("cn-") && !r.starts_with("us-gov-")));
    let got: BTreeSet<&String> = result.instances.iter().map(|i| &i.instance_id).collect();
    let expected: BTreeSet<&String> = truth
        .iter()
        .filter(|(_, (a, r, _))| !(a == m2 && r == "eu-west-1"))
        .map(|(id, _)| id)
        .collect();
    assert_eq!(got, expected);
    let c = proxy.counters();
    assert_eq!(
        c.region_not_enabled,
        BTreeMap::new(),
        "nothing was asked of the disabled region"
    );
    assert_eq!(
        c.requests.get("ec2:DescribeRegions"),
        Some(&3),
        "once per account"
    );
}

/// EC2 throttles per account and region. Two member accounts whose every EC2 call is throttled
/// spend all their attempts (5 per call, in 16 regions each) and fail, each region an error of its
/// own; the others, throttled on 15 % of their calls, retry through it in the meantime and are
/// read whole. (Each (account, region) also has its own SDK retry quota; at this size a shared one
/// would not run dry either, so this shows the outcome, not that quota.)
#[tokio::test(flavor = "multi_thread")]
async fn accounts_throttled_to_a_standstill_do_not_starve_the_others() {
    const SIXTEEN: [&str; 16] = [
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "eu-central-1",
        "eu-north-1",
        "ap-south-1",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-northeast-1",
        "ap-northeast-2",
        "ca-central-1",
        "sa-east-1",
    ];
    let moto = Moto::start();
    let proxy = FidelityProxy::start(&moto, Fidelity::default());
    let own = sdk_with(&proxy.endpoint(), "us-east-1", None).await;
    let aws = Aws::new(&moto).await;
    aws.stack(BUCKET, "compliance-alerts-org").await;
    let sts = aws_sdk_sts::Client::new(&own);
    let (bad1, bad2, good) = ("444444444444", "555555555555", "666666666666");
    let mut truth = Truth::new();
    for (a, account) in [bad1, bad2, good].iter().enumerate() {
        let creds = keys_of(&sts, account).await;
        let sdk = sdk_with(&proxy.endpoint(), "us-east-1", Some(&creds)).await;
        member_role(&aws_sdk_iam::Client::new(&sdk)).await;
        fleet(
            &ec2_in(&sdk, "eu-west-1"),
            account,
            "eu-west-1",
            a,
            0,
            &mut truth,
        )
        .await;
    }
    fleet(
        &ec2_in(&own, "eu-west-1"),
        OWN,
        "eu-west-1",
        3,
        0,
        &mut truth,
    )
    .await;
    proxy.set(Fidelity {
        seed: 7,
        trust_policies: true,
        throttle: BTreeMap::from([
            (format!("ec2@{bad1}"), 1.0),
            (format!("ec2@{bad2}"), 1.0),
            ("ec2".to_string(), 0.15),
        ]),
        ..Fidelity::default()
    });
    proxy.reset_counters();
    let started = std::time::Instant::now();
    let out = run_scan_with(
        &proxy.aws_env(),
        &[
            ("BUCKET_NAME", BUCKET),
            ("STACK_NAME", "org"),
            ("SCAN_REGIONS", &SIXTEEN.join(",")),
            ("MEMBER_ACCOUNTS", &format!("{bad1},{bad2},{good}")),
            ("MEMBER_EXTERNAL_ID", EXTERNAL_ID),
            ("SCAN_CONCURRENCY", "16"),
        ],
    );
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let keys = aws.scan_keys(BUCKET).await;
    let result = read(&moto, &keys[0]).await;
    // Every region of the throttled accounts failed on RequestLimitExceeded after its retries...
    for bad in [bad1, bad2] {
        let failed: BTreeSet<&str> = result
            .errors
            .iter()
            .filter(|e| e.account_id == bad)
            .inspect(|e| assert_eq!(e.code.as_deref(), Some("RequestLimitExceeded"), "{e:?}"))
            .filter_map(|e| e.region.as_deref())
            .collect();
        assert_eq!(failed.len(), 16, "{bad}: {:#?}", result.errors);
    }
    // ...and nothing of the others did: every region read, every instance judged.
    let others: Vec<_> = result
        .errors
        .iter()
        .filter(|e| e.account_id == good || e.account_id == OWN)
        .collect();
    assert_eq!(others, Vec::<&compliance_rules::result::ScanError>::new());
    for account in [good, OWN] {
        let a = result
            .summary
            .accounts
            .iter()
            .find(|a| a.account_id == account)
            .unwrap();
        assert_eq!(a.regions.len(), 16, "{account}");
    }
    let read: BTreeSet<&String> = result.instances.iter().map(|i| &i.instance_id).collect();
    let expected: BTreeSet<&String> = truth
        .iter()
        .filter(|(_, (a, _, _))| a == good || a == OWN)
        .map(|(id, _)| id)
        .collect();
    assert_eq!(read, expected);
    // Each throttled region spent its full 5 attempts (its first call, DescribeSecurityGroups,
    // refused every time); the others were throttled too and retried through it.
    let c = proxy.counters();
    for bad in [bad1, bad2] {
        assert_eq!(
            c.throttled_in.get(&format!("ec2@{bad}")),
            Some(&(16 * 5)),
            "{:?}",
            c.throttled_in
        );
    }
    let others = c
        .throttled_in
        .get(&format!("ec2@{good}"))
        .copied()
        .unwrap_or(0)
        + c.throttled_in
            .get(&format!("ec2@{OWN}"))
            .copied()
            .unwrap_or(0);
    assert!(others > 0, "{:?}", c.throttled_in);
    assert!(elapsed < std::time::Duration::from_secs(90), "{elapsed:?}");
}
