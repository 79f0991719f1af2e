//! Process start-up as go-plugin expects it: magic cookie, listener, optional AutoMTLS, the one
//! handshake line on stdout, the gRPC services, and a clean exit on GRPCController.Shutdown.

use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tfplugin_proto::{health, plugin, tfplugin6};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;
use tonic::{Request, Response, Status};

use super::service::{Provider, ProviderService};
use super::tls::ServerIdentity;

/// The cookie Terraform sets so that a provider started by hand knows it was not.
pub const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
/// Its value.
pub const MAGIC_COOKIE_VALUE: &str =
    "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
/// go-plugin's core protocol version.
pub const CORE_PROTOCOL_VERSION: u32 = 1;
/// The Terraform plugin protocol major version served.
pub const PROTOCOL_VERSION: u32 = 6;
/// gRPC messages up to this size are accepted and sent (Terraform's own SDKs use 256 MB).
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;
/// How long Shutdown waits for connected clients to close before the process exits anyway.
const SHUTDOWN_DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// How the server was asked to run.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Provider source address, for the `TF_REATTACH_PROVIDERS` text in debug mode.
    pub address: String,
    /// Debug mode: started by hand, plain text, prints how to attach Terraform.
    pub debug: bool,
}

/// Serves until Terraform asks the plugin to shut down. Returns the process exit code.
pub async fn serve<P: Provider>(provider: Arc<P>, options: ServeOptions) -> i32 {
    if !options.debug && std::env::var(MAGIC_COOKIE_KEY).as_deref() != Ok(MAGIC_COOKIE_VALUE) {
        eprintln!(
            "This binary is a plugin. These are not meant to be executed directly.\n\
             Terraform starts it for you: add the provider to a configuration and run terraform.\n\
             To debug it, run it with --debug and set TF_REATTACH_PROVIDERS as it says."
        );
        return 1;
    }
    if let Ok(versions) = std::env::var("PLUGIN_PROTOCOL_VERSIONS") {
        let offered: Vec<&str> = versions.split(',').map(str::trim).collect();
        if !options.debug && !offered.contains(&PROTOCOL_VERSION.to_string().as_str()) {
            eprintln!(
                "This provider speaks plugin protocol {PROTOCOL_VERSION}, but this Terraform offers {versions}. \
                 Use Terraform 1.0 or newer."
            );
            return 1;
        }
    }
    match run(provider, options).await {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("provider server failed: {e}");
            eprintln!("terraform-provider-compliance: {e}");
            1
        }
    }
}

async fn bind() -> Result<TcpListener, String> {
    let min = std::env::var("PLUGIN_MIN_PORT")
        .ok()
        .and_then(|p| p.parse::<u16>().ok());
    let max = std::env::var("PLUGIN_MAX_PORT")
        .ok()
        .and_then(|p| p.parse::<u16>().ok());
    match (min, max) {
        (Some(min), Some(max)) if min <= max && min > 0 => {
            for port in min..=max {
                if let Ok(l) = TcpListener::bind(("127.0.0.1", port)).await {
                    return Ok(l);
                }
            }
            Err(format!(
                "no free port between PLUGIN_MIN_PORT={min} and PLUGIN_MAX_PORT={max}"
            ))
        }
        _ => TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("listen on 127.0.0.1: {e}")),
    }
}

async fn run<P: Provider>(provider: Arc<P>, options: ServeOptions) -> Result<(), String> {
    let listener = bind().await?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let client_cert = std::env::var("PLUGIN_CLIENT_CERT")
        .ok()
        .filter(|c| !c.trim().is_empty());
    let (shutdown_tx, mut shutdown_rx) = watch::channel(false);
    let mut drain_rx = shutdown_tx.subscribe();

    let services = tonic::service::Routes::new(
        tfplugin6::provider_server::ProviderServer::new(ProviderService::new(provider))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
    )
    .add_service(plugin::grpc_controller_server::GrpcControllerServer::new(
        Controller {
            shutdown: shutdown_tx,
        },
    ))
    .add_service(plugin::grpc_stdio_server::GrpcStdioServer::new(Stdio))
    .add_service(plugin::grpc_broker_server::GrpcBrokerServer::new(Broker))
    .add_service(health::health_server::HealthServer::new(Health));

    let shutdown = async move {
        let _ = shutdown_rx.wait_for(|stop| *stop).await;
    };
    let server = tonic::transport::Server::builder().add_routes(services);

    let (cert_text, incoming) = match (&client_cert, options.debug) {
        (Some(pem), false) => {
            let identity = ServerIdentity::generate()?;
            let text = identity.handshake_text();
            let config = Arc::new(identity.server_config(pem)?);
            (text, Incoming::Tls(tls_incoming(listener, config)))
        }
        _ => (String::new(), Incoming::Plain(listener)),
    };

    // The handshake line must be the first thing on stdout.
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "{CORE_PROTOCOL_VERSION}|{PROTOCOL_VERSION}|tcp|{addr}|grpc|{cert_text}"
    )
    .and_then(|()| stdout.flush())
    .map_err(|e| format!("write handshake: {e}"))?;
    if options.debug {
        print_reattach(&mut stdout, &options.address, addr).map_err(|e| e.to_string())?;
    }
    drop(stdout);
    tracing::info!(%addr, tls = client_cert.is_some() && !options.debug, "provider serving");

    let serve = async {
        match incoming {
            Incoming::Plain(listener) => {
                let stream = tokio_stream::wrappers::TcpListenerStream::new(listener);
                server.serve_with_incoming_shutdown(stream, shutdown).await
            }
            Incoming::Tls(rx) => {
                server
                    .serve_with_incoming_shutdown(ReceiverStream::new(rx), shutdown)
                    .await
            }
        }
    };
    // A graceful drain waits for every client to close; one that never answers must not keep
    // the process alive after Shutdown.
    let drain_limit = async move {
        let _ = drain_rx.wait_for(|stop| *stop).await;
        tokio::time::sleep(SHUTDOWN_DRAIN_LIMIT).await;
    };
    tokio::select! {
        result = serve => result.map_err(|e| format!("gRPC server: {e}")),
        () = drain_limit => {
            tracing::warn!("clients still connected {SHUTDOWN_DRAIN_LIMIT:?} after Shutdown; exiting");
            Ok(())
        }
    }
}

fn print_reattach(out: &mut impl Write, address: &str, addr: SocketAddr) -> std::io::Result<()> {
    let reattach = serde_json::json!({
        address: {
            "Protocol": "grpc",
            "ProtocolVersion": PROTOCOL_VERSION,
            "Pid": std::process::id(),
            // go-plugin keeps protocol 6 only for reattached plugins marked as test plugins.
            "Test": true,
            "Addr": {"Network": "tcp", "String": addr.to_string()},
        }
    });
    writeln!(
        out,
        "Provider started in debug mode. In another shell, set:\n\n    export TF_REATTACH_PROVIDERS='{reattach}'\n\n\
         then run terraform there. Stop this process with Ctrl-C when done."
    )?;
    out.flush()
}

enum Incoming {
    Plain(TcpListener),
    Tls(mpsc::Receiver<Result<TlsConn, std::io::Error>>),
}

/// Accepts TCP connections and hands over those whose TLS handshake (client certificate
/// included) succeeds; a refused client is logged and dropped.
fn tls_incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
) -> mpsc::Receiver<Result<TlsConn, std::io::Error>> {
    let (tx, rx) = mpsc::channel(16);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    continue;
                }
            };
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match acceptor.accept(tcp).await {
                    Ok(tls) => {
                        let _ = tx.send(Ok(TlsConn(tls))).await;
                    }
                    Err(e) => tracing::warn!(%peer, "TLS handshake refused: {e}"),
                }
            });
        }
    });
    rx
}

/// A TLS connection, as tonic's server takes it.
struct TlsConn(tokio_rustls::server::TlsStream<TcpStream>);

impl Connected for TlsConn {
    type ConnectInfo = ();
    fn connect_info(&self) {}
}

impl AsyncRead for TlsConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// go-plugin's controller: Shutdown stops the server, and the process exits cleanly.
struct Controller {
    shutdown: watch::Sender<bool>,
}

#[tonic::async_trait]
impl plugin::grpc_controller_server::GrpcController for Controller {
    async fn shutdown(&self, _: Request<plugin::Empty>) -> Result<Response<plugin::Empty>, Status> {
        tracing::debug!("GRPCController.Shutdown: exiting");
        let _ = self.shutdown.send(true);
        Ok(Response::new(plugin::Empty {}))
    }
}

type EmptyStream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

/// Stdout and stderr are not redirected through gRPC: logs go to stderr, which Terraform reads.
struct Stdio;

#[tonic::async_trait]
impl plugin::grpc_stdio_server::GrpcStdio for Stdio {
    async fn stream_stdio(
        &self,
        _: Request<plugin::Empty>,
    ) -> Result<Response<EmptyStream<plugin::StdioData>>, Status> {
        Ok(Response::new(Box::pin(tokio_stream::empty())))
    }
}

/// The provider brokers no extra connections.
struct Broker;

#[tonic::async_trait]
impl plugin::grpc_broker_server::GrpcBroker for Broker {
    async fn start_stream(
        &self,
        _: Request<tonic::Streaming<plugin::ConnInfo>>,
    ) -> Result<Response<EmptyStream<plugin::ConnInfo>>, Status> {
        Ok(Response::new(Box::pin(tokio_stream::empty())))
    }
}

/// Health: the `plugin` service (and the server as a whole) is serving.
struct Health;

fn health_status(service: &str) -> Result<health::HealthCheckResponse, Status> {
    if service.is_empty() || service == "plugin" {
        Ok(health::HealthCheckResponse {
            status: health::health_check_response::ServingStatus::Serving as i32,
        })
    } else {
        Err(Status::not_found(format!("unknown service {service:?}")))
    }
}

#[tonic::async_trait]
impl health::health_server::Health for Health {
    async fn check(
        &self,
        req: Request<health::HealthCheckRequest>,
    ) -> Result<Response<health::HealthCheckResponse>, Status> {
        health_status(&req.into_inner().service).map(Response::new)
    }

    async fn watch(
        &self,
        req: Request<health::HealthCheckRequest>,
    ) -> Result<Response<EmptyStream<health::HealthCheckResponse>>, Status> {
        let status = health_status(&req.into_inner().service)?;
        Ok(Response::new(Box::pin(tokio_stream::once(Ok(status)))))
    }
}
