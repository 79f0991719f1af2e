//! Exemptions end to end: a fleet in moto with active, expiring and expired exemptions and the
//! exempt tag's dated and malformed forms, scanned by the real binary; the stored result, the
//! metric and the alert read back from moto.

mod common;

use std::collections::BTreeMap;

use common::*;
use compliance_rules::contract::encode_exemptions;
use compliance_rules::exemptions::{Check, Exemption};
use compliance_rules::result::{Applied, InstanceResult};
use test_support::Moto;
use time::{Duration, OffsetDateTime};

const ALL_TAGS: [(&str, &str); 3] = [
    ("Environment", "prod"),
    ("Owner", "ana"),
    ("CostCenter", "cc-1"),
];

/// Today in UTC plus `days`, `YYYY-MM-DD`.
fn day(days: i64) -> String {
    let d = (OffsetDateTime::now_utc() + Duration::days(days)).date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
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

fn ids(list: &[Applied]) -> Vec<(Check, &str, Option<&str>)> {
    list.iter()
        .map(|a| (a.check, a.id.as_str(), a.group_id.as_deref()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn active_expiring_and_expired_exemptions_reach_the_result_the_metric_and_the_alert() {
    let moto = Moto::start();
    let aws = Aws::new(&moto).await;
    let bucket = "compliance-results-ex";
    let topic = aws.stack(bucket, "compliance-alerts-ex").await;
    let ec2 = &aws.ec2;
    let image = image_id(ec2).await;
    let (vpc, subnet) = vpc_subnet(ec2, "10.5.0.0/16", "10.5.1.0/24").await;
    let sg_ssh = group(
        ec2,
        &vpc,
        "ssh",
        vec![rule("tcp", Some(22), Some(22), &["0.0.0.0/0"])],
    )
    .await;
    let sg_rdp = group(
        ec2,
        &vpc,
        "rdp",
        vec![rule("tcp", Some(3389), Some(3389), &["0.0.0.0/0"])],
    )
    .await;
    let sg_web = group(
        ec2,
        &vpc,
        "web",
        vec![rule("tcp", Some(443), Some(443), &["0.0.0.0/0"])],
    )
    .await;
    let one = |groups: Vec<String>, tags: Vec<(&'static str, String)>| {
        let (image, subnet) = (image.clone(), subnet.clone());
        async move {
            let g: Vec<&str> = groups.iter().map(String::as_str).collect();
            let t: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (*k, v.as_str())).collect();
            launch(ec2, &image, Some(&subnet), &g, &t, 1)
                .await
                .remove(0)
        }
    };
    let all = |extra: &[(&'static str, String)]| {
        let mut t: Vec<(&'static str, String)> =
            ALL_TAGS.iter().map(|(k, v)| (*k, v.to_string())).collect();
        t.extend_from_slice(extra);
        t
    };
    let legacy = || vec![("Team", "legacy".to_string())];
    let exempt = |v: String| ("ComplianceExempt", v);

    let i_bastion = one(vec![sg_ssh.clone()], all(&[])).await;
    let i_legacy = one(vec![sg_web.clone()], legacy()).await;
    let i_legacy_ssh = one(vec![sg_ssh.clone(), sg_rdp.clone()], legacy()).await;
    let i_rdp = one(vec![sg_rdp.clone()], all(&[])).await;
    let i_last_day = one(vec![sg_rdp.clone()], vec![]).await;
    let i_tag_until = one(
        vec![sg_rdp.clone()],
        vec![exempt(format!("until {}: vendor appliance", day(30)))],
    )
    .await;
    let i_tag_expired = one(
        vec![sg_rdp.clone()],
        all(&[exempt(format!("until {}: old appliance", day(-2)))]),
    )
    .await;
    let i_tag_bad = one(
        vec![sg_web.clone()],
        all(&[exempt("until someday: trust me".into())]),
    )
    .await;

    let mut bastion = exemption("bastion", &[Check::Ingress], day(100), "netops@example.com");
    bastion.groups = vec![sg_ssh.clone()];
    let mut legacy_tags = exemption("legacy-tags", &[Check::Tags], day(5), "ana@example.com");
    legacy_tags.tags = BTreeMap::from([("Team".into(), "legacy".into())]);
    let mut old_rdp = exemption("old-rdp", &[Check::Ingress], day(-1), "bob@example.com");
    old_rdp.instances = vec![i_rdp.clone()];
    let mut last_day = exemption("last-day", &Check::ALL, day(0), "carol@example.com");
    last_day.instances = vec![i_last_day.clone()];
    let configured = vec![bastion, legacy_tags, old_rdp, last_day];

    let out = run_scan(
        &moto,
        &[
            ("BUCKET_NAME", bucket),
            ("TOPIC_ARN", &topic),
            ("STACK_NAME", "ex"),
            ("EXEMPTIONS", &encode_exemptions(&configured)),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "scan failed: {stderr}");
    let report = stdout_json(&out);

    // ---- the stored result ----
    let keys = aws.scan_keys(bucket).await;
    assert_eq!(keys.len(), 1);
    let result = aws.read_result(bucket, &keys[0]).await;
    assert_eq!(
        &result.started_at[..10],
        day(0),
        "the test ran across midnight UTC"
    );
    assert_eq!(
        result.settings.exemptions, configured,
        "settings record them"
    );
    let get = |id: &str| -> &InstanceResult {
        result
            .instances
            .iter()
            .find(|i| i.instance_id == id)
            .unwrap()
    };

    let b = get(&i_bastion);
    assert!(b.compliant && !b.exempt);
    assert_eq!(b.exempted_findings, [Check::Ingress]);
    assert_eq!(
        ids(&b.exemptions),
        [(Check::Ingress, "bastion", Some(sg_ssh.as_str()))]
    );
    assert_eq!(b.exemptions[0].owner.as_deref(), Some("netops@example.com"));
    assert_eq!(b.exemptions[0].expires, Some(day(100)));

    let l = get(&i_legacy);
    assert!(
        l.compliant,
        "tags waived by the selector, nothing else wrong"
    );
    assert_eq!(l.missing_tags.len(), 3);
    assert_eq!(ids(&l.exemptions), [(Check::Tags, "legacy-tags", None)]);
    assert_eq!(l.exemptions[0].expires, Some(day(5)));

    let ls = get(&i_legacy_ssh);
    assert!(!ls.compliant, "the RDP rule is not waived");
    assert_eq!(ls.exempted_findings, [Check::Tags]);
    assert_eq!(
        ids(&ls.exemptions),
        [
            (Check::Tags, "legacy-tags", None),
            (Check::Ingress, "bastion", Some(sg_ssh.as_str()))
        ]
    );

    let r = get(&i_rdp);
    assert!(!r.compliant && r.exemptions.is_empty());
    assert_eq!(
        ids(&r.expired_exemptions),
        [(Check::Ingress, "old-rdp", None)]
    );
    assert_eq!(r.expired_exemptions[0].expires, Some(day(-1)));
    assert_eq!(
        r.expired_exemptions[0].owner.as_deref(),
        Some("bob@example.com")
    );

    let ld = get(&i_last_day);
    assert!(ld.exempt, "active through its last day");
    assert_eq!(ld.exempted_findings, Check::ALL);

    let tu = get(&i_tag_until);
    assert!(tu.exempt && !tu.compliant);
    assert_eq!(
        ids(&tu.exemptions),
        [
            (Check::Tags, "tag:ComplianceExempt", None),
            (Check::Ingress, "tag:ComplianceExempt", None)
        ]
    );
    assert_eq!(tu.exemptions[0].expires, Some(day(30)));
    assert_eq!(tu.exemptions[0].reason.as_deref(), Some("vendor appliance"));

    let te = get(&i_tag_expired);
    assert!(!te.exempt && !te.compliant);
    assert_eq!(te.expired_exemptions.len(), 2);
    assert_eq!(te.expired_exemptions[0].expires, Some(day(-2)));

    let tb = get(&i_tag_bad);
    assert!(tb.compliant && !tb.exempt, "judged, and it passes");
    let why = tb
        .exempt_tag_error
        .as_deref()
        .expect("the value is reported");
    assert!(why.contains("\"until someday: trust me\""), "{why}");

    let group = |id: &str| {
        result
            .security_groups
            .iter()
            .find(|g| g.group_id == id)
            .unwrap()
    };
    assert_eq!(
        ids(&group(&sg_ssh).exemptions),
        [(Check::Ingress, "bastion", None)]
    );
    assert!(group(&sg_rdp).exemptions.is_empty());

    let s = &result.summary;
    assert_eq!(
        (s.scanned, s.exempt, s.compliant, s.non_compliant),
        (8, 2, 3, 3)
    );
    assert_eq!(s.compliance_percentage, 50.0);
    // bastion 1, legacy 1, legacy-ssh 1, last-day 2, tag-until 2, and sg-ssh's one rule.
    assert_eq!(s.exempted_findings, 8);
    assert_eq!(report["exempted_findings"], 8);
    // Every instance missing tags has that finding waived (or is exempt).
    assert_eq!(s.instances_missing_tags, 0);

    // ---- the metric ----
    assert_eq!(
        aws.metric_value("ComplianceMonitoring", "ExemptedFindings", "ex")
            .await,
        Some(8.0)
    );
    let names = aws.metric_names("ComplianceMonitoring").await;
    assert!(
        names
            .iter()
            .any(|(n, d)| n == "ExemptedFindings" && d == &["Stack=ex"]),
        "{names:?}"
    );

    // ---- the alert ----
    let sent = sent_notifications(&moto, &topic);
    assert_eq!(sent.len(), 1);
    let body = &sent[0].1;
    assert!(
        body.contains("8 findings are waived by active exemptions."),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            "- old-rdp (owner bob@example.com): expired, last day {}; ingress on {i_rdp}\n",
            day(-1)
        )),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            "- tag:ComplianceExempt (owner none): expired, last day {}; tags, ingress on {i_tag_expired}\n",
            day(-2)
        )),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            "{sg_ssh} tcp port 22 open to 0.0.0.0/0 (restricted port(s) 22) (waived by bastion)"
        )),
        "{body}"
    );
    // Active exemptions are not named as expired.
    let expired_part = body.split("Full result").next().unwrap();
    for active in ["bastion", "legacy-tags", "last-day"] {
        assert!(!expired_part.contains(active), "{active}: {body}");
    }
    // Only the non-compliant instances are listed.
    for listed in [&i_legacy_ssh, &i_rdp, &i_tag_expired] {
        assert!(body.contains(listed.as_str()), "{listed}: {body}");
    }
    for unlisted in [&i_bastion, &i_legacy, &i_last_day, &i_tag_until, &i_tag_bad] {
        assert!(!body.contains(unlisted.as_str()), "{unlisted}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unreadable_exemptions_stop_the_scan_before_any_call() {
    let moto = Moto::start();
    let aws = Aws::new(&moto).await;
    let bucket = "compliance-results-badex";
    aws.stack(bucket, "compliance-alerts-badex").await;
    for bad in [
        "bastion until friday",
        r#"[{"id":"x","groups":["sg-1"],"checks":["ingress"],"reason":"r","owner":"o","expires":"2027-02-30"}]"#,
    ] {
        let out = run_scan(&moto, &[("BUCKET_NAME", bucket), ("EXEMPTIONS", bad)]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("EXEMPTIONS: ") && err.contains("--exemptions"),
            "{err}"
        );
    }
    assert!(aws.scan_keys(bucket).await.is_empty(), "nothing stored");
    // Blank and [] are no exemptions.
    for none in ["", " [] "] {
        let out = run_scan(&moto, &[("BUCKET_NAME", bucket), ("EXEMPTIONS", none)]);
        assert!(
            out.status.success(),
            "{none:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
