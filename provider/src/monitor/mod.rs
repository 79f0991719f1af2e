//! The compliance monitor provider: its provider block and the `compliance_monitor` resource, which
//! maps configuration to the desired stack.

pub mod exemption;
pub mod import;
pub mod model;
pub mod resource;
pub mod schema;
pub mod settings;
pub mod stack;
pub mod validate;

use std::sync::{Arc, OnceLock};

use crate::protocol::diag::Diagnostics;
use crate::protocol::schema::Schema;
use crate::protocol::service::{DataSource, Provider, Resource};
use crate::protocol::value::Value;
use resource::Configured;
use settings::ProviderSettings;

/// Source address users write in `required_providers`.
pub const SOURCE_ADDRESS: &str = "registry.terraform.io/compliance-monitor/compliance";

/// The provider.
pub struct ComplianceProvider {
    schema: Schema,
    configured: Arc<OnceLock<Configured>>,
}

impl Default for ComplianceProvider {
    fn default() -> Self {
        ComplianceProvider {
            schema: schema::provider_schema(),
            configured: Arc::new(OnceLock::new()),
        }
    }
}

#[tonic::async_trait]
impl Provider for ComplianceProvider {
    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn resources(&self) -> Vec<Arc<dyn Resource>> {
        vec![Arc::new(resource::ComplianceMonitor::new(
            self.configured.clone(),
        ))]
    }

    fn data_sources(&self) -> Vec<Arc<dyn DataSource>> {
        // The same configuration as the resource: one set of clients and one account lookup.
        vec![Arc::new(crate::scan_data::ComplianceScan::new(
            self.configured.clone(),
        ))]
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        settings::validate_provider(config)
    }

    async fn configure(&self, config: Value, terraform_version: &str) -> Diagnostics {
        tracing::info!(terraform_version, "configuring provider");
        let settings = ProviderSettings::from_config(&config);
        // AWS clients are built on first read or apply (see `Configured::clients`): a provider
        // process that only validates or plans never loads the SDK's configuration.
        // Terraform configures each provider process once; a second call keeps the first.
        let _ = self.configured.set(Configured::new(settings));
        Diagnostics::default()
    }
}
