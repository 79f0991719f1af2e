//! Generated gRPC types and services: Terraform's `tfplugin6` protocol, go-plugin's `plugin`
//! services (controller, stdio, broker) and `grpc.health.v1`.

#![allow(clippy::all, missing_docs)]

/// Terraform plugin protocol 6 (messages, `Provider` client and server).
pub mod tfplugin6 {
    tonic::include_proto!("tfplugin6");
}

/// go-plugin's services: `GRPCController`, `GRPCStdio`, `GRPCBroker`.
pub mod plugin {
    tonic::include_proto!("plugin");
}

/// The standard gRPC health service.
pub mod health {
    tonic::include_proto!("grpc.health.v1");
}
