//! AWS SDK clients for the end-to-end tests, pointed at the test's emulator.

use aws_config::BehaviorVersion;
use test_support::Moto;

/// SDK configuration for the emulator. The test process trusts its certificate through
/// `SSL_CERT_FILE`.
pub async fn sdk(moto: &Moto) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(moto.endpoint())
        .region(aws_config::Region::new(test_support::REGION))
        .credentials_provider(aws_sdk_lambda::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await
}

/// An S3 client with path-style addressing, which every endpoint accepts.
pub fn s3(cfg: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(cfg)
            .force_path_style(true)
            .build(),
    )
}
