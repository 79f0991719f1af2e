//! The member role a scanned account installs (`examples/cloudformation/member-role.json` and the
//! Terraform module `examples/terraform/member-role/`): the CloudFormation template and the module
//! grant exactly the three Describe calls to exactly the scanner's role, the template deploys in a
//! member account of a real moto server, and with moto's IAM enforcement on, the scanner reaches a
//! member account's fleet through the role and can do nothing else there.
//!
//! moto keeps one backend per account: a request is served from the account its access key belongs
//! to, and `AssumeRole` issues keys in the account named by the role ARN (the role need not exist).
//! moto checks a trust policy only for a role in the caller's own account, and then compares the
//! session ARN with the principal literally, so the trust itself is checked here from the template,
//! not by moto; identity policies (what the role may do) moto does enforce.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_sts::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_sts::error::SdkError;
use serde_json::{json, Value};
use test_support::{terraform_bin, workspace_root, Moto, REGION};

const DESCRIBE: [&str; 3] = [
    "ec2:DescribeInstances",
    "ec2:DescribeRegions",
    "ec2:DescribeSecurityGroups",
];
const SCANNER_ACCOUNT: &str = "123456789012"; // moto's default account: the plain test keys'
const MEMBER_ACCOUNT: &str = "222222222222";
const EXTERNAL_ID: &str = "org-scan-7f3a";

fn template_path() -> PathBuf {
    workspace_root().join("examples/cloudformation/member-role.json")
}

fn module_dir() -> PathBuf {
    workspace_root().join("examples/terraform/member-role")
}

fn template() -> Value {
    let text = std::fs::read_to_string(template_path()).expect("read member-role.json");
    serde_json::from_str(&text).expect("member-role.json is JSON")
}

/// Evaluates the template's intrinsic functions for one set of parameters: `Ref` (parameters and
/// `AWS::NoValue`), `Fn::If`, `Fn::Not`, `Fn::Equals`, `Fn::Sub` of parameters. `None` is NoValue.
fn render(template: &Value, v: &Value, params: &BTreeMap<&str, &str>) -> Option<Value> {
    let resolve = |name: &str| -> Value {
        match params.get(name) {
            Some(value) => json!(value),
            None => template["Parameters"][name]["Default"].clone(),
        }
    };
    match v {
        Value::Object(map) if map.len() == 1 => {
            let (k, arg) = map.iter().next().unwrap();
            match k.as_str() {
                "Ref" if arg == "AWS::NoValue" => None,
                "Ref" => {
                    let name = arg.as_str().unwrap();
                    assert!(
                        template["Parameters"].get(name).is_some(),
                        "Ref to unknown {name}"
                    );
                    Some(resolve(name))
                }
                "Fn::If" => {
                    let cond = arg[0].as_str().unwrap();
                    let holds = render(template, &template["Conditions"][cond], params);
                    let branch = if holds == Some(json!(true)) { 1 } else { 2 };
                    render(template, &arg[branch], params)
                }
                "Fn::Not" => Some(json!(
                    render(template, &arg[0], params) != Some(json!(true))
                )),
                "Fn::Equals" => Some(json!(
                    render(template, &arg[0], params) == render(template, &arg[1], params)
                )),
                "Fn::Sub" => {
                    let mut s = arg.as_str().unwrap().to_string();
                    for name in template["Parameters"].as_object().unwrap().keys() {
                        let value = resolve(name);
                        s = s.replace(&format!("${{{name}}}"), value.as_str().unwrap());
                    }
                    Some(json!(s))
                }
                _ => Some(Value::Object(
                    map.iter()
                        .filter_map(|(k, v)| render(template, v, params).map(|v| (k.clone(), v)))
                        .collect(),
                )),
            }
        }
        Value::Object(map) => Some(Value::Object(
            map.iter()
                .filter_map(|(k, v)| render(template, v, params).map(|v| (k.clone(), v)))
                .collect(),
        )),
        Value::Array(items) => Some(Value::Array(
            items
                .iter()
                .filter_map(|v| render(template, v, params))
                .collect(),
        )),
        other => Some(other.clone()),
    }
}

/// The role's properties for one set of parameters.
fn role(params: &BTreeMap<&str, &str>) -> Value {
    let t = template();
    render(&t, &t["Resources"]["MemberRole"]["Properties"], params).unwrap()
}

/// Every action a policy document's statements name, with `Action` as a string or a list.
fn actions(document: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for s in document["Statement"].as_array().expect("Statement list") {
        assert_eq!(s["Effect"], "Allow");
        assert!(s.get("NotAction").is_none() && s.get("NotResource").is_none());
        match &s["Action"] {
            Value::String(a) => {
                out.insert(a.clone());
            }
            Value::Array(list) => out.extend(list.iter().map(|a| a.as_str().unwrap().to_string())),
            other => panic!("Action {other}"),
        }
    }
    out
}

fn describe_set() -> BTreeSet<String> {
    DESCRIBE.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_template_grants_the_three_describe_calls_to_the_scanner_role_alone() {
    let t = template();
    let names: Vec<&String> = t["Parameters"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["ExternalId", "RoleName", "ScannerRoleArn"]);
    assert_eq!(
        t["Parameters"]["RoleName"]["Default"],
        "ComplianceScannerMember"
    );
    assert_eq!(t["Parameters"]["ExternalId"]["Default"], "");
    assert!(t["Parameters"]["ScannerRoleArn"].get("Default").is_none());
    let resources = t["Resources"].as_object().unwrap();
    assert_eq!(resources.len(), 1, "the role and nothing else");
    assert_eq!(t["Resources"]["MemberRole"]["Type"], "AWS::IAM::Role");
    let props = &t["Resources"]["MemberRole"]["Properties"];
    assert!(props.get("ManagedPolicyArns").is_none());
    assert!(props.get("PermissionsBoundary").is_none());

    let scanner = "arn:aws:iam::111111111111:role/compliance-scanner-prod";
    for external in ["", EXTERNAL_ID] {
        let params = BTreeMap::from([("ScannerRoleArn", scanner), ("ExternalId", external)]);
        let role = role(&params);
        assert_eq!(role["RoleName"], "ComplianceScannerMember");
        let trust = &role["AssumeRolePolicyDocument"];
        let statements = trust["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 1, "{trust}");
        let s = &statements[0];
        assert_eq!(s["Effect"], "Allow");
        assert_eq!(s["Action"], "sts:AssumeRole");
        assert_eq!(
            s["Principal"],
            json!({ "AWS": scanner }),
            "the parameter, alone"
        );
        if external.is_empty() {
            assert!(s.get("Condition").is_none(), "{s}");
        } else {
            assert_eq!(
                s["Condition"],
                json!({ "StringEquals": { "sts:ExternalId": EXTERNAL_ID } })
            );
        }
        let policies = role["Policies"].as_array().unwrap();
        assert_eq!(policies.len(), 1);
        let document = &policies[0]["PolicyDocument"];
        assert_eq!(actions(document), describe_set());
        for statement in document["Statement"].as_array().unwrap() {
            assert_eq!(statement["Resource"], "*");
            assert!(statement.get("Condition").is_none());
        }
    }
    // The unrendered trust names the parameter itself in both branches.
    let raw = &props["AssumeRolePolicyDocument"]["Statement"][0]["Fn::If"];
    assert_eq!(raw[0], "HasExternalId");
    for branch in [&raw[1], &raw[2]] {
        assert_eq!(
            branch["Principal"],
            json!({ "AWS": { "Ref": "ScannerRoleArn" } })
        );
    }
}

/// Double-quoted literals of an HCL file that look like IAM actions or condition keys
/// (`service:Name`).
fn action_like_literals(hcl: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = hcl;
    while let Some(start) = rest.find('"') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('"') else { break };
        let literal = &after[..end];
        let action_like = literal.split_once(':').is_some_and(|(service, name)| {
            !service.is_empty()
                && service
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'*')
        });
        if action_like {
            out.push(literal.to_string());
        }
        rest = &after[end + 1..];
    }
    out
}

#[test]
fn the_terraform_module_grants_the_same_and_is_formatted() {
    let main = std::fs::read_to_string(module_dir().join("main.tf")).expect("read main.tf");
    let literals = action_like_literals(&main);
    let mut expected = describe_set();
    expected.insert("sts:AssumeRole".into());
    expected.insert("sts:ExternalId".into());
    assert_eq!(
        literals.iter().cloned().collect::<BTreeSet<_>>(),
        expected,
        "{literals:?}"
    );
    assert_eq!(literals.len(), expected.len(), "each once: {literals:?}");
    assert_eq!(main.matches("\"ec2:").count(), 3);
    // The template grants the very same calls.
    let t = template();
    let document = &t["Resources"]["MemberRole"]["Properties"]["Policies"][0]["PolicyDocument"];
    assert_eq!(actions(document), describe_set());

    // One role and its inline policy, trusting the variable alone, allowing, on every resource.
    let resources: Vec<&str> = main
        .lines()
        .filter(|l| l.starts_with("resource "))
        .collect();
    assert_eq!(
        resources,
        [
            "resource \"aws_iam_role\" \"member\" {",
            "resource \"aws_iam_role_policy\" \"read_fleet\" {"
        ]
    );
    for needle in [
        "identifiers = [var.scanner_role_arn]",
        "type        = \"AWS\"",
        "variable = \"sts:ExternalId\"",
        "resources = [\"*\"]",
    ] {
        assert_eq!(main.matches(needle).count(), 1, "{needle}");
    }
    for absent in [
        "Deny",
        "not_actions",
        "not_resources",
        "managed_policy_arns",
        "policy_attachment",
    ] {
        assert!(!main.contains(absent), "{absent}");
    }
    let variables =
        std::fs::read_to_string(module_dir().join("variables.tf")).expect("read variables.tf");
    assert!(variables.contains("default     = \"ComplianceScannerMember\""));
    assert!(variables.contains("variable \"scanner_role_arn\""));
    assert!(variables.contains("variable \"external_id\""));
    let outputs =
        std::fs::read_to_string(module_dir().join("outputs.tf")).expect("read outputs.tf");
    assert!(outputs.contains("output \"role_arn\""));

    // `terraform fmt` reads no provider: the module is canonical HCL.
    let fmt = Command::new(terraform_bin())
        .args(["fmt", "-check", "-diff", "-recursive"])
        .arg(module_dir())
        .env("CHECKPOINT_DISABLE", "1")
        .output()
        .expect("run terraform fmt");
    assert!(
        fmt.status.success(),
        "terraform fmt -check: {}{}",
        String::from_utf8_lossy(&fmt.stdout),
        String::from_utf8_lossy(&fmt.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// Against moto.

async fn sdk(moto: &Moto, creds: Credentials) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(moto.endpoint())
        .region(Region::new(REGION))
        .credentials_provider(SharedCredentialsProvider::new(creds))
        .load()
        .await
}

fn test_keys() -> Credentials {
    Credentials::new("testing", "testing", None, None, "test")
}

async fn assume(cfg: &SdkConfig, role_arn: &str, external_id: Option<&str>) -> Credentials {
    let c = aws_sdk_sts::Client::new(cfg)
        .assume_role()
        .role_arn(role_arn)
        .role_session_name("compliance-scan")
        .set_external_id(external_id.map(str::to_string))
        .send()
        .await
        .unwrap_or_else(|e| panic!("assume {role_arn}: {:?}", e.into_service_error()))
        .credentials
        .expect("credentials");
    Credentials::new(
        c.access_key_id,
        c.secret_access_key,
        Some(c.session_token),
        None,
        "assumed",
    )
}

/// Administrator keys in `account`, as the organisation's access role gives them, and their key id.
async fn admin_of(moto: &Moto, account: &str) -> (SdkConfig, String) {
    let base = sdk(moto, test_keys()).await;
    let arn = format!("arn:aws:iam::{account}:role/OrganizationAccountAccessRole");
    let creds = assume(&base, &arn, None).await;
    let key = creds.access_key_id().to_string();
    (sdk(moto, creds).await, key)
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let hex = (b[i] == b'%')
            .then(|| s.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(v) => {
                out.push(v);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// One CloudFormation Query request to moto as the account of `access_key` (moto picks the
/// account from the key in the credential scope and, with its IAM checks off, reads no signature).
/// Keeps the test free of another SDK crate for one call.
fn cloudformation(moto: &Moto, access_key: &str, params: &[(&str, String)]) -> String {
    let body: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect();
    let body = body.join("&");
    let mut stream = TcpStream::connect(("127.0.0.1", moto.port())).expect("connect moto");
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/x-www-form-urlencoded; \
         charset=utf-8\r\nAuthorization: AWS4-HMAC-SHA256 Credential={access_key}/20240101/{REGION}/\
         cloudformation/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        moto.port(),
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"),
        "{answer}"
    );
    answer
}

fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{name}>"))? + name.len() + 2;
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    Some(&xml[start..end])
}

#[tokio::test(flavor = "multi_thread")]
async fn the_template_deploys_in_a_member_account() {
    let moto = Moto::start();
    let (admin, key) = admin_of(&moto, MEMBER_ACCOUNT).await;
    let body = std::fs::read_to_string(template_path()).unwrap();
    let scanner = format!("arn:aws:iam::{SCANNER_ACCOUNT}:role/compliance-scanner-prod");
    for (stack, name, external) in [
        ("member-role", "ComplianceScannerMember", EXTERNAL_ID),
        ("member-role-open", "ComplianceScannerMemberOpen", ""),
    ] {
        fn p<'a>(k: &'a str, v: &str) -> (&'a str, String) {
            (k, v.to_string())
        }
        cloudformation(
            &moto,
            &key,
            &[
                p("Action", "CreateStack"),
                p("Version", "2010-05-15"),
                p("StackName", stack),
                ("TemplateBody", body.clone()),
                p("Capabilities.member.1", "CAPABILITY_NAMED_IAM"),
                p("Parameters.member.1.ParameterKey", "ScannerRoleArn"),
                p("Parameters.member.1.ParameterValue", &scanner),
                p("Parameters.member.2.ParameterKey", "ExternalId"),
                p("Parameters.member.2.ParameterValue", external),
                p("Parameters.member.3.ParameterKey", "RoleName"),
                p("Parameters.member.3.ParameterValue", name),
            ],
        );
        let described = cloudformation(
            &moto,
            &key,
            &[
                p("Action", "DescribeStacks"),
                p("Version", "2010-05-15"),
                p("StackName", stack),
            ],
        );
        assert_eq!(element(&described, "StackStatus"), Some("CREATE_COMPLETE"));
        let arn = format!("arn:aws:iam::{MEMBER_ACCOUNT}:role/{name}");
        assert_eq!(element(&described, "OutputValue"), Some(arn.as_str()));

        // What CloudFormation made, read back through IAM in the member account.
        let iam = aws_sdk_iam::Client::new(&admin);
        let role = iam
            .get_role()
            .role_name(name)
            .send()
            .await
            .unwrap()
            .role
            .unwrap();
        assert_eq!(role.arn(), arn);
        let trust: Value =
            serde_json::from_str(&percent_decode(role.assume_role_policy_document().unwrap()))
                .unwrap();
        let expected = role_document(&scanner, external);
        assert_eq!(
            trust["Statement"],
            expected["AssumeRolePolicyDocument"]["Statement"]
        );
        let policies = iam
            .list_role_policies()
            .role_name(name)
            .send()
            .await
            .unwrap();
        assert_eq!(policies.policy_names(), ["compliance-scanner-read-fleet"]);
        let policy = iam
            .get_role_policy()
            .role_name(name)
            .policy_name("compliance-scanner-read-fleet")
            .send()
            .await
            .unwrap();
        // moto 5 keeps a CloudFormation inline policy as Python text, not JSON: compare its
        // action-like words.
        let text = percent_decode(policy.policy_document());
        let words: BTreeSet<String> = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == ':'))
            .filter(|w| w.starts_with("ec2:") || w.starts_with("sts:") || w.starts_with("iam:"))
            .map(String::from)
            .collect();
        assert_eq!(words, describe_set(), "{text}");
    }
}

fn role_document(scanner: &str, external: &str) -> Value {
    role(&BTreeMap::from([
        ("ScannerRoleArn", scanner),
        ("ExternalId", external),
    ]))
}

/// Turns on moto's IAM checks for every later request (its `reset-auth` API).
fn enforce_iam(moto: &Moto) {
    let mut stream = TcpStream::connect(("127.0.0.1", moto.port())).expect("connect moto");
    write!(
        stream,
        "POST /moto-api/reset-auth HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 1\r\n\
         Connection: close\r\n\r\n0",
        moto.port()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

async fn launch(cfg: &SdkConfig, name: &str) -> String {
    let ec2 = aws_sdk_ec2::Client::new(cfg);
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
    ec2.run_instances()
        .image_id(image)
        .min_count(1)
        .max_count(1)
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key("Name")
                        .value(name)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap()
        .instances()[0]
        .instance_id()
        .unwrap()
        .to_string()
}

/// Whether a call was refused for want of permission. moto answers `AccessDenied` for every
/// service (EC2 itself says `UnauthorizedOperation`), in an `<ErrorResponse><Errors>` body that the
/// STS client cannot read a code from, so the raw body is read too.
fn refused<E: ProvideErrorMetadata>(err: &SdkError<E>) -> bool {
    let by_code = matches!(err.code(), Some("AccessDenied" | "UnauthorizedOperation"));
    let by_body = err
        .raw_response()
        .and_then(|r| r.body().bytes())
        .is_some_and(|b| String::from_utf8_lossy(b).contains("<Code>AccessDenied</Code>"));
    by_code || by_body
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scanner_reads_a_member_fleet_through_the_role_and_nothing_more() {
    let moto = Moto::start();
    let scanner_arn = format!("arn:aws:iam::{SCANNER_ACCOUNT}:role/compliance-scanner-prod");
    let member_arn = format!("arn:aws:iam::{MEMBER_ACCOUNT}:role/ComplianceScannerMember");

    // The scanner's account: its role may assume the member role by name in any account.
    let home = sdk(&moto, test_keys()).await;
    let iam = aws_sdk_iam::Client::new(&home);
    iam.create_role()
        .role_name("compliance-scanner-prod")
        .assume_role_policy_document(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    iam.put_role_policy()
        .role_name("compliance-scanner-prod")
        .policy_name("assume-member-roles")
        .policy_document(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Resource": "arn:aws:iam::*:role/ComplianceScannerMember"}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    launch(&home, "scanner-account-instance").await;

    // The member account installs the role exactly as the template renders it.
    let (admin, _) = admin_of(&moto, MEMBER_ACCOUNT).await;
    let props = role_document(&scanner_arn, EXTERNAL_ID);
    let member_iam = aws_sdk_iam::Client::new(&admin);
    member_iam
        .create_role()
        .role_name(props["RoleName"].as_str().unwrap())
        .assume_role_policy_document(props["AssumeRolePolicyDocument"].to_string())
        .max_session_duration(props["MaxSessionDuration"].as_i64().unwrap() as i32)
        .send()
        .await
        .unwrap();
    let inline = &props["Policies"][0];
    member_iam
        .put_role_policy()
        .role_name("ComplianceScannerMember")
        .policy_name(inline["PolicyName"].as_str().unwrap())
        .policy_document(inline["PolicyDocument"].to_string())
        .send()
        .await
        .unwrap();
    let member_instance = launch(&admin, "member-account-instance").await;

    // The scanner runs as its role (Lambda would hand it these keys).
    let scanner = sdk(&moto, assume(&home, &scanner_arn, None).await).await;
    enforce_iam(&moto);

    // Its own policy stops it short of any other role.
    let other = aws_sdk_sts::Client::new(&scanner)
        .assume_role()
        .role_arn(format!(
            "arn:aws:iam::{MEMBER_ACCOUNT}:role/OrganizationAccountAccessRole"
        ))
        .role_session_name("compliance-scan")
        .send()
        .await
        .expect_err("only the member role");
    assert!(refused(&other), "{other:?}");

    let member = sdk(
        &moto,
        assume(&scanner, &member_arn, Some(EXTERNAL_ID)).await,
    )
    .await;
    let me = aws_sdk_sts::Client::new(&member)
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(me.account(), Some(MEMBER_ACCOUNT));
    assert_eq!(
        me.arn(),
        Some(
            format!(
                "arn:aws:sts::{MEMBER_ACCOUNT}:assumed-role/ComplianceScannerMember/compliance-scan"
            )
            .as_str()
        )
    );

    // The three calls work, and DescribeInstances sees the member's fleet alone.
    let ec2 = aws_sdk_ec2::Client::new(&member);
    let seen: Vec<String> = ec2
        .describe_instances()
        .max_results(1000)
        .send()
        .await
        .unwrap()
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| i.instance_id().map(String::from))
        .collect();
    assert_eq!(seen, [member_instance]);
    assert!(!ec2
        .describe_security_groups()
        .send()
        .await
        .unwrap()
        .security_groups()
        .is_empty());
    assert!(!ec2
        .describe_regions()
        .send()
        .await
        .unwrap()
        .regions()
        .is_empty());

    // Nothing else: another Describe, a change, another service.
    let vpcs = ec2.describe_vpcs().send().await.unwrap_err();
    assert!(refused(&vpcs), "{vpcs:?}");
    let run = ec2
        .terminate_instances()
        .instance_ids(&seen[0])
        .send()
        .await
        .unwrap_err();
    assert!(refused(&run), "{run:?}");
    let roles = aws_sdk_iam::Client::new(&member)
        .list_roles()
        .send()
        .await
        .unwrap_err();
    assert!(refused(&roles), "{roles:?}");
    let buckets = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&member)
            .force_path_style(true)
            .build(),
    )
    .list_buckets()
    .send()
    .await
    .unwrap_err();
    assert!(refused(&buckets), "{buckets:?}");
}
