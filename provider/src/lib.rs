//! `terraform-provider-compliance`: a Terraform provider that deploys and runs an EC2 compliance
//! monitor on AWS.
//!
//! Layers, each knowing only those below it:
//! - [`desired`]: what the stack should be, as plain values (names, settings, account); no AWS
//!   client, no Terraform value.
//! - [`aws`]: one module per AWS piece (read, drift, ensure, delete), built on [`desired`].
//! - [`protocol`]: Terraform's plugin protocol; knows nothing of AWS.
//! - [`monitor`]: the `compliance_monitor` resource, which maps a block (a [`protocol`] value,
//!   through its typed model) to [`desired`] and drives [`aws`]; [`analyse`] audits a deployed
//!   stack from the command line with the same read.
//! - [`scan_data`]: the `compliance_scan` data source, which reads the newest scan result the
//!   stack stored.

pub mod analyse;
pub mod aws;
pub mod code;
pub mod desired;
pub mod monitor;
pub mod protocol;
pub mod scan_data;
