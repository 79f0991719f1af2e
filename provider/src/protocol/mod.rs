//! The Terraform plugin protocol, with no knowledge of AWS: handshake, TLS, gRPC services,
//! msgpack values, schemas and diagnostics.

pub mod diag;
pub mod log;
pub mod schema;
pub mod server;
pub mod service;
pub mod tls;
pub mod value;
