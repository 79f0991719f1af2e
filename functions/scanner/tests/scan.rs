//! The local scan against a fleet built in a real moto server: every verdict, the summary, the
//! stored object, the metrics and the SNS message, all read back from moto.

mod common;

use common::*;
use compliance_rules::result::{InstanceResult, Reason};
use test_support::Moto;

const ALL_TAGS: [(&str, &str); 3] = [
    ("Environment", "prod"),
    ("Owner", "ana"),
    ("CostCenter", "cc-1"),
];

fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut t = ALL_TAGS.to_vec();
    t.extend_from_slice(extra);
    t
}

#[tokio::test(flavor = "multi_thread")]
async fn scans_a_mixed_fleet_across_vpcs_and_regions() {
    let moto = Moto::start();
    let aws = Aws::new(&moto).await;
    let topic = aws
        .stack("compliance-results-it", "compliance-alerts-it")
        .await;
    let ec2 = &aws.ec2;
    let image = image_id(ec2).await;
    let (vpc_a, subnet_a) = vpc_subnet(ec2, "10.1.0.0/16", "10.1.1.0/24").await;
    let (vpc_b, subnet_b) = vpc_subnet(ec2, "10.2.0.0/16", "10.2.1.0/24").await;
    let plist = prefix_list(ec2).await;

    let sg_web = group(
        ec2,
        &vpc_a,
        "web",
        vec![
            rule("tcp", Some(80), Some(80), &["0.0.0.0/0", "::/0"]),
            rule("tcp", Some(443), Some(443), &["0.0.0.0/0", "::/0"]),
            rule("icmp", Some(-1), Some(-1), &["0.0.0.0/0"]),
            rule("tcp", Some(3306), Some(3306), &["10.0.0.0/8"]),
        ],
    )
    .await;
    let sg_ssh6 = group(
        ec2,
        &vpc_a,
        "ssh-v6",
        vec![rule("tcp", Some(22), Some(22), &["::/0"])],
    )
    .await;
    let sg_range = group(
        ec2,
        &vpc_a,
        "udp-range",
        vec![rule("17", Some(5000), Some(6000), &["0.0.0.0/0"])],
    )
    .await;
    let sg_spare = group(
        ec2,
        &vpc_a,
        "spare",
        vec![rule("tcp", Some(20), Some(23), &["0.0.0.0/0"])],
    )
    .await;
    let sg_all = group(
        ec2,
        &vpc_b,
        "all-traffic",
        vec![rule("-1", None, None, &["0.0.0.0/0"])],
    )
    .await;
    let sg_ports = group(
        ec2,
        &vpc_b,
        "all-ports",
        vec![rule("6", Some(0), Some(65535), &["0.0.0.0/0"])],
    )
    .await;
    let sg_src = group(ec2, &vpc_b, "sources", vec![]).await;
    ec2.authorize_security_group_ingress()
        .group_id(&sg_src)
        .ip_permissions(rule_from_group("-1", None, None, &sg_all))
        .ip_permissions(rule_from_prefix_list("tcp", 3389, 3389, &plist))
        .ip_permissions(rule(
            "tcp",
            Some(22),
            Some(22),
            &["192.168.0.0/16", "fd00::/8"],
        ))
        .send()
        .await
        .expect("authorize sources");

    let (image_ref, sa, sb) = (image.as_str(), subnet_a.as_str(), subnet_b.as_str());
    let one = |subnet: &'static str,
               groups: Vec<String>,
               tags: Vec<(&'static str, &'static str)>| async move {
        let g: Vec<&str> = groups.iter().map(String::as_str).collect();
        let subnet = if subnet == "a" { sa } else { sb };
        launch(ec2, image_ref, Some(subnet), &g, &tags, 1)
            .await
            .remove(0)
    };
    let i_ok = one("a", vec![sg_web.clone()], with(&[("Name", "web-1")])).await;
    let i_stopped_ok = one("b", vec![sg_src.clone()], with(&[])).await;
    stop(ec2, &i_stopped_ok).await;
    let i_blank = one(
        "a",
        vec![sg_web.clone()],
        vec![
            ("Environment", "prod"),
            ("Owner", "  "),
            ("CostCenter", "cc-1"),
        ],
    )
    .await;
    let i_near = one(
        "a",
        vec![sg_web.clone()],
        vec![
            ("Environment", "prod"),
            ("owner", "ana"),
            ("CostCenter ", "cc-1"),
        ],
    )
    .await;
    let i_notags = one("a", vec![sg_web.clone()], vec![]).await;
    let i_exempt = one(
        "b",
        vec![sg_all.clone()],
        vec![("ComplianceExempt", "TRUE")],
    )
    .await;
    let i_ssh6 = one("a", vec![sg_web.clone(), sg_ssh6.clone()], with(&[])).await;
    let i_all = one("b", vec![sg_all.clone()], with(&[])).await;
    let i_ports = one("b", vec![sg_ports.clone()], with(&[])).await;
    stop(ec2, &i_ports).await;
    let i_range = one("a", vec![sg_range.clone()], with(&[])).await;
    let i_gone = one("b", vec![sg_all.clone()], vec![]).await;
    terminate(ec2, &i_gone).await;
    // A second region: its default VPC and default group.
    let west = aws.ec2_in("us-west-2");
    let i_west = launch(&west, &image_id(&west).await, None, &[], &ALL_TAGS, 1)
        .await
        .remove(0);

    let out = run_scan(
        &moto,
        &[
            ("BUCKET_NAME", "compliance-results-it"),
            ("TOPIC_ARN", &topic),
            ("SCAN_REGIONS", "us-east-1,us-west-2"),
            ("STACK_NAME", "it"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "scan failed: {stderr}");
    let report = stdout_json(&out);

    // ---- the stored object ----
    let keys = aws.scan_keys("compliance-results-it").await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let key = &keys[0];
    assert_eq!(report["result_key"], key.as_str());
    let parts: Vec<&str> = key.split('/').collect();
    assert_eq!(parts[0], "scans");
    assert!(
        parts[1].len() == 4 && parts[2].len() == 2 && parts[3].len() == 2,
        "{key}"
    );
    assert!(
        parts[4].starts_with(&format!("{}{}{}T", parts[1], parts[2], parts[3]))
            && key.ends_with("Z.json"),
        "{key}"
    );
    let result = aws.read_result("compliance-results-it", key).await;
    assert_eq!(result.schema_version, 1);
    assert_eq!(result.stack, "it");
    assert_eq!(result.account_id.as_deref(), Some("123456789012"));
    assert_eq!(result.regions, ["us-east-1", "us-west-2"]);
    assert_eq!(
        result.settings.required_tags,
        ["Environment", "Owner", "CostCenter"]
    );
    assert!(result.started_at <= result.finished_at);

    // ---- every verdict ----
    let get = |id: &str| -> &InstanceResult {
        result
            .instances
            .iter()
            .find(|i| i.instance_id == id)
            .unwrap_or_else(|| panic!("{id} not in the result"))
    };
    assert!(
        result.instances.iter().all(|i| i.instance_id != i_gone),
        "terminated instances are not scanned"
    );
    assert_eq!(result.instances.len(), 11);

    let ok = get(&i_ok);
    assert!(ok.compliant && !ok.exempt && ok.violations.is_empty());
    assert_eq!(ok.name.as_deref(), Some("web-1"));
    assert_eq!(
        (ok.state.as_str(), ok.region.as_str()),
        ("running", "us-east-1")
    );
    assert_eq!(ok.security_groups, std::slice::from_ref(&sg_web));

    let stopped = get(&i_stopped_ok);
    assert!(
        stopped.compliant,
        "group and prefix-list sources and private CIDRs are fine"
    );
    assert_eq!(stopped.state, "stopped");

    assert_eq!(get(&i_blank).missing_tags, ["Owner"]);
    assert!(!get(&i_blank).compliant);

    let near = get(&i_near);
    assert_eq!(near.missing_tags, ["Owner", "CostCenter"]);
    let found: Vec<(&str, &str)> = near
        .near_misses
        .iter()
        .map(|n| (n.required.as_str(), n.found.as_str()))
        .collect();
    assert_eq!(found, [("Owner", "owner"), ("CostCenter", "CostCenter ")]);

    assert_eq!(
        get(&i_notags).missing_tags,
        ["Environment", "Owner", "CostCenter"]
    );

    let exempt = get(&i_exempt);
    assert!(exempt.exempt && !exempt.compliant);
    assert_eq!(exempt.violations.len(), 1);

    let ssh6 = get(&i_ssh6);
    assert!(!ssh6.compliant && ssh6.missing_tags.is_empty());
    assert_eq!(ssh6.violations.len(), 1);
    let v = &ssh6.violations[0];
    assert_eq!(
        (
            v.group_id.as_str(),
            v.protocol.as_str(),
            v.from_port,
            v.to_port,
            v.cidr.as_str(),
            v.reason,
            v.ports.as_slice()
        ),
        (
            sg_ssh6.as_str(),
            "tcp",
            Some(22),
            Some(22),
            "::/0",
            Reason::RestrictedPorts,
            &[22u16][..]
        )
    );

    let all = &get(&i_all).violations;
    assert_eq!(all.len(), 1);
    assert_eq!(
        (all[0].reason, all[0].protocol.as_str(), all[0].from_port),
        (Reason::AllTraffic, "all", None)
    );

    let ports = get(&i_ports);
    assert_eq!(ports.state, "stopped");
    assert_eq!(
        (
            ports.violations[0].reason,
            ports.violations[0].protocol.as_str()
        ),
        (Reason::AllPorts, "tcp")
    );

    let range = &get(&i_range).violations[0];
    assert_eq!(
        (range.protocol.as_str(), range.reason),
        ("udp", Reason::RestrictedPorts)
    );
    assert_eq!(range.ports, [5432, 5900]);

    let west_r = get(&i_west);
    assert!(west_r.compliant);
    assert_eq!(west_r.region, "us-west-2");

    // ---- the summary ----
    let s = &result.summary;
    assert_eq!(
        (s.scanned, s.exempt, s.compliant, s.non_compliant),
        (11, 1, 3, 7)
    );
    assert!(
        (s.compliance_percentage - 30.0).abs() < 1e-9,
        "{}",
        s.compliance_percentage
    );
    assert_eq!(s.instances_missing_tags, 3);
    assert_eq!(s.open_rules, 5);
    assert_eq!(report["scanned"], 11);
    assert_eq!(report["non_compliant"], 7);
    assert_eq!(report["compliance_percentage"], 30.0);
    assert_eq!(report["alert_sent"], true);
    // One paged DescribeInstances per region (well under 1000 instances), no per-instance call.
    assert_eq!(
        report["api_calls"]["EC2:DescribeInstances"], 2,
        "{}",
        report["api_calls"]
    );
    assert!(
        stderr.contains("11 instances, 7 non-compliant") && stderr.contains("30.0% compliant"),
        "{stderr}"
    );

    // ---- the violating groups, attached or not ----
    let groups: Vec<(&str, u64)> = result
        .security_groups
        .iter()
        .map(|g| (g.group_id.as_str(), g.attached_instances))
        .collect();
    let mut expected = vec![
        (sg_ssh6.as_str(), 1),
        (sg_range.as_str(), 1),
        (sg_spare.as_str(), 0),
        (sg_all.as_str(), 2),
        (sg_ports.as_str(), 1),
    ];
    expected.sort();
    let mut got = groups.clone();
    got.sort();
    assert_eq!(got, expected);
    let spare = result
        .security_groups
        .iter()
        .find(|g| g.group_id == sg_spare)
        .unwrap();
    assert_eq!(spare.group_name, "spare");
    assert_eq!(spare.vpc_id.as_deref(), Some(vpc_a.as_str()));
    assert_eq!(spare.violations[0].ports, [20, 21, 22, 23]);

    // ---- the metrics ----
    let names = aws.metric_names("ComplianceMonitoring").await;
    let expected_names = [
        "CompliancePercentage",
        "CompliantInstances",
        "ExemptInstances",
        "ExemptedFindings",
        "InstancesMissingTags",
        "NonCompliantInstances",
        "OpenSecurityGroupRules",
        "ScanErrors",
        "ScannedInstances",
    ];
    let stack_only: Vec<&str> = names
        .iter()
        .filter(|(_, d)| d == &["Stack=it"])
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(stack_only, expected_names);
    // Two regions scanned: each (account, region) share has its percentage and offenders too.
    let mut shares: Vec<(&str, Vec<String>)> = names
        .iter()
        .filter(|(_, d)| d != &["Stack=it"])
        .map(|(n, d)| {
            let mut d = d.clone();
            d.sort();
            (n.as_str(), d)
        })
        .collect();
    shares.sort();
    let share = |n: &'static str, region: &str| {
        (
            n,
            vec![
                "Account=123456789012".to_string(),
                format!("Region={region}"),
                "Stack=it".to_string(),
            ],
        )
    };
    assert_eq!(
        shares,
        [
            share("CompliancePercentage", "us-east-1"),
            share("CompliancePercentage", "us-west-2"),
            share("NonCompliantInstances", "us-east-1"),
            share("NonCompliantInstances", "us-west-2"),
        ],
        "{names:?}"
    );
    let metric = |name: &'static str| aws.metric_value("ComplianceMonitoring", name, "it");
    let aws_ref = &aws;
    let share_of = move |name: &'static str, region: &'static str| async move {
        let dimensions = [
            ("Stack", "it"),
            ("Account", "123456789012"),
            ("Region", region),
        ];
        aws_ref
            .metric_value_with("ComplianceMonitoring", name, &dimensions)
            .await
    };
    // The stack's 30 % is in the run report above; moto reads a Stack-only query across the
    // shares too (CloudWatch would not), so the shares are read by their own dimensions.
    let east = share_of("CompliancePercentage", "us-east-1").await.unwrap();
    assert!((east - 200.0 / 9.0).abs() < 1e-9, "{east}");
    assert_eq!(
        share_of("CompliancePercentage", "us-west-2").await,
        Some(100.0)
    );
    assert_eq!(
        share_of("NonCompliantInstances", "us-east-1").await,
        Some(7.0)
    );
    assert_eq!(
        share_of("NonCompliantInstances", "us-west-2").await,
        Some(0.0)
    );
    assert_eq!(metric("NonCompliantInstances").await, Some(7.0));
    assert_eq!(metric("ExemptInstances").await, Some(1.0));
    assert_eq!(metric("OpenSecurityGroupRules").await, Some(5.0));
    // The exempt instance's missing tags and its open rule.
    assert_eq!(metric("ExemptedFindings").await, Some(2.0));
    assert_eq!(report["api_calls"]["CloudWatch:PutMetricData"], 1);

    // ---- the alert ----
    let sent = sent_notifications(&moto, &topic);
    assert_eq!(sent.len(), 1, "one message a scan");
    let (subject, body) = &sent[0];
    assert_eq!(
        subject,
        "[it] EC2 compliance: 7 of 10 instances non-compliant (30.0% compliant)"
    );
    assert!(subject.len() < 100);
    assert!(
        body.contains(&format!("s3://compliance-results-it/{key}")),
        "{body}"
    );
    let pos = |id: &str| body.find(id).unwrap_or(usize::MAX);
    assert!(
        pos(&i_all) < pos(&i_ports),
        "all traffic before all ports:\n{body}"
    );
    assert!(pos(&i_ports) < pos(&i_ssh6).min(pos(&i_range)), "{body}");
    assert!(pos(&i_ssh6).max(pos(&i_range)) < pos(&i_notags), "{body}");
    assert!(pos(&i_notags) < pos(&i_near).min(pos(&i_blank)), "{body}");
    assert!(
        body.contains("near miss: tag \"owner\" looks like Owner"),
        "{body}"
    );
    let offenders = body.split("Security groups with").next().unwrap();
    assert!(
        !offenders.contains(&i_ok) && !offenders.contains(&i_exempt),
        "{body}"
    );
    assert!(
        body.contains(&sg_spare),
        "unattached violating groups are named: {body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_account_stores_a_result_publishes_100_and_sends_no_alert() {
    let moto = Moto::start();
    let aws = Aws::new(&moto).await;
    let topic = aws
        .stack("compliance-results-empty", "compliance-alerts-empty")
        .await;
    let out = run_scan(
        &moto,
        &[
            ("BUCKET_NAME", "compliance-results-empty"),
            ("TOPIC_ARN", &topic),
            ("STACK_NAME", "empty"),
            ("METRIC_NAMESPACE", "Custom/Compliance"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = stdout_json(&out);
    assert_eq!(report["scanned"], 0);
    assert_eq!(report["compliance_percentage"], 100.0);
    assert_eq!(report["alert_sent"], false);

    let keys = aws.scan_keys("compliance-results-empty").await;
    assert_eq!(keys.len(), 1);
    let result = aws.read_result("compliance-results-empty", &keys[0]).await;
    assert!(result.instances.is_empty());
    assert_eq!(result.summary.compliance_percentage, 100.0);
    assert_eq!(
        result.regions,
        ["us-east-1"],
        "the configured region by default"
    );

    assert_eq!(
        aws.metric_value("Custom/Compliance", "CompliancePercentage", "empty")
            .await,
        Some(100.0)
    );
    assert_eq!(
        aws.metric_value("Custom/Compliance", "ScannedInstances", "empty")
            .await,
        Some(0.0)
    );
    assert!(sent_notifications(&moto, &topic).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alert_failure_keeps_the_stored_result_and_fails_the_run() {
    let moto = Moto::start();
    let aws = Aws::new(&moto).await;
    aws.stack("compliance-results-fail", "compliance-alerts-fail")
        .await;
    let image = image_id(&aws.ec2).await;
    launch(&aws.ec2, &image, None, &[], &[("Owner", "x")], 1).await;
    let missing_topic = "arn:aws:sns:us-east-1:123456789012:no-such-topic";
    let out = run_scan(
        &moto,
        &[
            ("BUCKET_NAME", "compliance-results-fail"),
            ("TOPIC_ARN", missing_topic),
            ("STACK_NAME", "fail"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a failed alert must fail the run: {stderr}"
    );
    assert!(
        stderr.contains("FAILED") && stderr.contains("no-such-topic"),
        "{stderr}"
    );
    let report = stdout_json(&out);
    let keys = aws.scan_keys("compliance-results-fail").await;
    assert_eq!(keys.len(), 1, "the result is stored before the alert");
    assert_eq!(report["result_key"], keys[0].as_str());
    let result = aws.read_result("compliance-results-fail", &keys[0]).await;
    assert_eq!(result.summary.non_compliant, 1);
    // Metrics are still published: the alert failure does not hide them.
    assert_eq!(
        aws.metric_value("ComplianceMonitoring", "NonCompliantInstances", "fail")
            .await,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_come_from_flags_and_a_missing_bucket_stores_nothing() {
    let moto = Moto::start();
    let aws = Aws::new(&moto).await;
    aws.stack("compliance-results-flags", "compliance-alerts-flags")
        .await;
    let image = image_id(&aws.ec2).await;
    let (vpc, subnet) = vpc_subnet(&aws.ec2, "10.3.0.0/16", "10.3.1.0/24").await;
    let sg = group(
        &aws.ec2,
        &vpc,
        "alt",
        vec![rule("tcp", Some(8080), Some(8080), &["0.0.0.0/0"])],
    )
    .await;
    launch(
        &aws.ec2,
        &image,
        Some(&subnet),
        &[&sg],
        &[("Team", "a"), ("Skip", "true")],
        1,
    )
    .await;
    let id = launch(&aws.ec2, &image, Some(&subnet), &[&sg], &[("Team", "a")], 1)
        .await
        .remove(0);

    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_compliance-scanner"));
    moto.configure(&mut cmd);
    cmd.env_remove("AWS_LAMBDA_RUNTIME_API")
        .env_remove("TOPIC_ARN")
        .args([
            "scan",
            "--bucket-name",
            "compliance-results-flags",
            "--required-tags",
            "Team",
            "--restricted-ports",
            "8080,9090",
            "--exempt-tag-key",
            "Skip",
            "--stack-name",
            "flags",
        ]);
    let out = cmd.output().expect("run scanner");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = stdout_json(&out);
    assert_eq!(
        (report["scanned"].as_u64(), report["exempt"].as_u64()),
        (Some(2), Some(1))
    );
    let keys = aws.scan_keys("compliance-results-flags").await;
    let result = aws.read_result("compliance-results-flags", &keys[0]).await;
    assert_eq!(result.settings.required_tags, ["Team"]);
    assert_eq!(result.settings.restricted_ports, [8080, 9090]);
    let judged = result
        .instances
        .iter()
        .find(|i| i.instance_id == id)
        .unwrap();
    assert!(judged.missing_tags.is_empty());
    assert_eq!(judged.violations[0].ports, [8080]);

    let out = run_scan(&moto, &[("BUCKET_NAME", "no-such-bucket")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing stored"));
}
