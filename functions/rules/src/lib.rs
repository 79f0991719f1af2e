//! Pure compliance rules and result types of the EC2 compliance monitor.
//!
//! This crate holds no AWS client: the scanner and reporter binaries fetch data, and everything they
//! decide is decided here, so every rule is a fast unit test.

pub mod result;
