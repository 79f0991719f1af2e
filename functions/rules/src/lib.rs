//! Pure compliance rules and result types of the EC2 compliance monitor.
//!
//! This crate holds no AWS client: the scanner and reporter binaries fetch data, and everything they
//! decide is decided here, so every rule is a fast unit test.

pub mod contract;
pub mod exemptions;
pub mod groups;
pub mod input;
pub mod report;
pub mod result;
pub mod settings;
pub mod sns;
pub mod tags;
pub mod verdict;
