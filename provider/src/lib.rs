//! `terraform-provider-compliance`: a Terraform provider that deploys and runs an EC2 compliance
//! monitor on AWS.
//!
//! Layers, each knowing only the one below: [`protocol`] speaks Terraform's plugin protocol and
//! knows nothing of AWS; [`monitor`] maps a `compliance_monitor` block to the desired stack.
//! [`analyse`] audits a deployed stack from the command line with the same read.

pub mod analyse;
pub mod aws;
pub mod code;
pub mod monitor;
pub mod protocol;
