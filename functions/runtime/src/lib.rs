//! What the scanner and the reporter share at run time: how their AWS clients retry ([`retry`])
//! and how they log ([`logging`]).
//!
//! A crate of its own, so the two functions cannot drift apart and the reporter does not take the
//! scanner's EC2, CloudWatch and STS clients as dependencies.

pub mod logging;
pub mod retry;
