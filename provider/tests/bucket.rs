//! Emptying the results bucket on destroy, against moto: it stops when Terraform sends
//! StopProvider (the cancellation token) before deleting anything more, and it stops at the first
//! key DeleteObjects reports it could not delete (through the fidelity proxy), naming it.

use terraform_provider_compliance::aws::{bucket, Account, Clients};
use terraform_provider_compliance::monitor::model::MonitorModel;
use terraform_provider_compliance::monitor::resource::desired_from;
use terraform_provider_compliance::monitor::settings::ProviderSettings;
use test_support::fidelity::{Fidelity, FidelityProxy};
use test_support::Moto;
use tokio_util::sync::CancellationToken;

/// The stack's clients and desired stack for `suffix` at `endpoint`, with a bucket holding
/// `keys` (made straight in moto, not through any proxy).
async fn bucket_with(
    moto: &Moto,
    endpoint: String,
    suffix: &str,
    keys: &[&str],
) -> (Clients, terraform_provider_compliance::aws::Desired) {
    for (k, v) in moto.aws_env() {
        std::env::set_var(k, v);
    }
    let settings = ProviderSettings {
        region: Some(test_support::REGION.into()),
        endpoint_url: Some(endpoint),
        max_retries: Some(2),
        ..ProviderSettings::default()
    };
    let clients = Clients::new(&settings).await.expect("clients");
    let d = desired_from(
        &MonitorModel::defaults(suffix),
        &settings,
        test_support::REGION,
        &Account::new("123456789012", "aws"),
    );
    let direct = Clients::new(&ProviderSettings {
        endpoint_url: Some(moto.endpoint()),
        ..settings.clone()
    })
    .await
    .expect("direct clients");
    direct
        .s3
        .create_bucket()
        .bucket(&d.names.bucket)
        .send()
        .await
        .expect("bucket");
    for key in keys {
        direct
            .s3
            .put_object()
            .bucket(&d.names.bucket)
            .key(*key)
            .body(b"{}".to_vec().into())
            .send()
            .await
            .expect("object");
    }
    (clients, d)
}

async fn count(c: &Clients, bucket: &str) -> usize {
    c.s3.list_object_versions()
        .bucket(bucket)
        .send()
        .await
        .expect("list")
        .versions()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_destroy_deletes_nothing_more() {
    let moto = Moto::start();
    let (c, d) = bucket_with(&moto, moto.endpoint(), "stop", &["a", "b"]).await;
    let cancel = CancellationToken::new();
    cancel.cancel();
    let e = bucket::delete(&c, &d, &cancel).await.unwrap_err();
    assert!(e.message.contains("stopped by Terraform"), "{e}");
    assert_eq!(count(&c, &d.names.bucket).await, 2, "nothing was deleted");
    bucket::delete(&c, &d, &CancellationToken::new())
        .await
        .expect("a destroy that is not stopped empties and deletes the bucket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_s3_keeps_stops_the_emptying_naming_it() {
    let moto = Moto::start();
    let proxy = FidelityProxy::start(
        &moto,
        Fidelity {
            undeletable_prefixes: vec!["held/".into()],
            ..Fidelity::default()
        },
    );
    let (c, d) = bucket_with(&moto, proxy.endpoint(), "held", &["a", "held/b", "c"]).await;
    let start = std::time::Instant::now();
    let e = bucket::delete(&c, &d, &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(e.piece, format!("bucket {}", d.names.bucket));
    assert!(
        e.message.contains("\"held/b\"") && e.message.contains("AccessDenied"),
        "{e}"
    );
    assert_eq!(proxy.counters().undeletable, 1);
    assert_eq!(
        c.s3.list_buckets()
            .send()
            .await
            .expect("buckets")
            .buckets()
            .len(),
        1,
        "the bucket is not deleted"
    );
}

/// S3 bucket names are global: a name another account holds answers CreateBucket with
/// BucketAlreadyExists and HeadBucket with 403 (through the fidelity proxy). Either way the error
/// names the bucket and says whose it is, instead of reading as "missing" or as a denied read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_another_account_holds_is_refused_naming_it() {
    let moto = Moto::start();
    let proxy = FidelityProxy::start(
        &moto,
        Fidelity {
            foreign_buckets: ["compliance-results-theirs".to_string()].into(),
            ..Fidelity::default()
        },
    );
    for (k, v) in moto.aws_env() {
        std::env::set_var(k, v);
    }
    let settings = ProviderSettings {
        region: Some(test_support::REGION.into()),
        endpoint_url: Some(proxy.endpoint()),
        max_retries: Some(2),
        ..ProviderSettings::default()
    };
    let c = Clients::new(&settings).await.expect("clients");
    let d = desired_from(
        &MonitorModel::defaults("theirs"),
        &settings,
        test_support::REGION,
        &Account::new("123456789012", "aws"),
    );
    use terraform_provider_compliance::aws::functions::Code;
    use terraform_provider_compliance::aws::{Ensure, Found, Piece, ScannerReporter};
    let package = terraform_provider_compliance::code::scanner();
    let code = Code {
        zip: package.zip,
        sha256: &package.sha256_base64,
    };
    let read = bucket::Bucket.read(&c, &d).await.unwrap_err();
    assert!(
        read.message.contains("belongs to another AWS account"),
        "{read}"
    );
    let made = bucket::Bucket
        .ensure(
            &c,
            &d,
            &Found::Missing,
            &Ensure {
                codes: ScannerReporter {
                    scanner: code,
                    reporter: code,
                },
                prior_alert_email: None,
                cancel: &CancellationToken::new(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(made.piece, format!("bucket {}", d.names.bucket));
    assert!(
        made.message.contains("BucketAlreadyExists")
            && made.message.contains("another AWS account"),
        "{made}"
    );
    assert_eq!(proxy.counters().bucket_taken, 2);
}
