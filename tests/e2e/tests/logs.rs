//! No log level lets credentials through: with `TF_LOG=TRACE` (and any level Terraform knows)
//! the provider's log lines through a whole apply and destroy hold neither the access key id,
//! the secret key nor the session token. The AWS SDK logs signed requests at its trace level;
//! the provider keeps other crates' lines at info and above whatever level is asked for.

use e2e::{text, Aws, Workdir, REQUIRED_PROVIDERS};

const KEY_ID: &str = "AKIAEXAMPLELOGCHECK7";
const SECRET: &str = "secret-key-that-must-never-be-logged";
const TOKEN: &str = "session-token-that-must-never-be-logged";

#[test]
fn no_log_level_prints_credentials() {
    let aws = Aws::plain();
    let main_tf = format!(
        "{REQUIRED_PROVIDERS}\nprovider \"compliance\" {{\n  region = \"us-east-1\"\n  endpoint_url = \"{}\"\n}}\n\n\
         resource \"compliance_monitor\" \"this\" {{\n  environment_suffix = \"logs\"\n}}\n",
        aws.endpoint()
    );
    let mut w = Workdir::new("logs", &main_tf);
    w.env = aws.aws_env();
    w.env.retain(|(k, _)| {
        ![
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
        ]
        .contains(&k.as_str())
    });
    w.env.extend(
        [
            ("AWS_ACCESS_KEY_ID", KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
            ("AWS_SESSION_TOKEN", TOKEN),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    w.init();
    for level in ["TRACE", "DEBUG", "INFO", "JSON", "something-else"] {
        let mut run = w.env.clone();
        run.push(("TF_LOG_PROVIDER".into(), level.into()));
        let leveled = Workdir {
            dir: w.dir.clone(),
            data_dir: w.data_dir.clone(),
            env: run,
        };
        for args in [
            &["apply", "-auto-approve", "-no-color", "-input=false"][..],
            &["destroy", "-auto-approve", "-no-color", "-input=false"][..],
        ] {
            let out = leveled.run(args);
            let logs = text(&out);
            assert!(out.status.success(), "{level} {args:?}:\n{logs}");
            // The provider's own lines are there at this level, so the check saw its logs.
            assert!(
                logs.contains("provider.compliance")
                    && (logs.contains("applying the stack") || logs.contains("deleting the stack")),
                "{level}: no provider log lines captured:\n{logs}"
            );
            for secret in [KEY_ID, SECRET, TOKEN] {
                assert!(
                    !logs.contains(secret),
                    "TF_LOG_PROVIDER={level} {args:?} printed a credential ({secret})"
                );
            }
        }
    }
}
