//! The provider process as Terraform starts it: magic cookie, handshake line, AutoMTLS with
//! Terraform's kind of client certificate (self-signed ECDSA P-521 CA), health, stop, shutdown.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tfplugin_proto::{health, plugin, tfplugin6};
use tonic::transport::{Channel, Endpoint, Uri};

const BIN: &str = env!("CARGO_BIN_EXE_terraform-provider-compliance");

/// A client identity like Terraform's: go-plugin makes a self-signed P-521 CA certificate.
struct ClientIdentity {
    pem: String,
    der: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

fn terraform_like_client_cert() -> ClientIdentity {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).expect("P-521 key");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
        rcgen::KeyUsagePurpose::KeyCertSign,
    ];
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
    ];
    let cert = params.self_signed(&key).expect("self-signed cert");
    ClientIdentity {
        pem: cert.pem(),
        der: cert.der().clone(),
        key: PrivatePkcs8KeyDer::from(key.serialize_der()),
    }
}

struct Provider {
    child: Child,
    addr: String,
    server_cert: Option<CertificateDer<'static>>,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(client_pem: Option<&str>) -> Provider {
    let mut cmd = Command::new(BIN);
    cmd.env("TF_PLUGIN_MAGIC_COOKIE", test_support::TF_MAGIC_COOKIE)
        .env("PLUGIN_PROTOCOL_VERSIONS", "5,6")
        .env("TF_LOG_PROVIDER", "DEBUG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match client_pem {
        Some(pem) => cmd.env("PLUGIN_CLIENT_CERT", pem),
        None => cmd.env_remove("PLUGIN_CLIENT_CERT"),
    };
    let mut child = cmd.spawn().expect("start provider");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read handshake");
    let fields: Vec<&str> = line.trim_end().split('|').collect();
    assert_eq!(fields.len(), 6, "handshake line {line:?}");
    assert_eq!(&fields[..3], ["1", "6", "tcp"], "{line:?}");
    assert!(fields[3].starts_with("127.0.0.1:"), "{line:?}");
    assert_eq!(fields[4], "grpc");
    let server_cert = (!fields[5].is_empty()).then(|| {
        use base64::Engine;
        assert!(
            !fields[5].ends_with('='),
            "certificate must be base64 without padding"
        );
        let der = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(fields[5])
            .expect("certificate is base64 without padding");
        CertificateDer::from(der)
    });
    Provider {
        child,
        addr: fields[3].to_string(),
        server_cert,
    }
}

/// Trusts exactly the certificate from the handshake line, as go-plugin's client does.
#[derive(Debug)]
struct PinnedServer(CertificateDer<'static>, Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.0.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "unexpected server certificate".into(),
            ))
        }
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.1.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.1.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.1.signature_verification_algorithms.supported_schemes()
    }
}

/// A gRPC channel over TLS, presenting `identity` (or no certificate at all).
async fn tls_channel(p: &Provider, identity: Option<&ClientIdentity>) -> Result<Channel, String> {
    let crypto = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(crypto.clone())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedServer(
            p.server_cert.clone().expect("server certificate"),
            crypto,
        )));
    let mut config = match identity {
        Some(id) => builder
            .with_client_auth_cert(
                vec![id.der.clone()],
                PrivateKeyDer::Pkcs8(id.key.clone_key()),
            )
            .expect("client auth"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let addr = p.addr.clone();
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let connector = connector.clone();
            let addr = addr.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                let tls = connector
                    .connect(ServerName::try_from("localhost").expect("name"), tcp)
                    .await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
        .map_err(|e| e.to_string())
}

async fn health_check(channel: Channel) -> Result<i32, tonic::Status> {
    let mut client = health::health_client::HealthClient::new(channel);
    let resp = client
        .check(health::HealthCheckRequest {
            service: "plugin".into(),
        })
        .await?;
    Ok(resp.into_inner().status)
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn without_the_magic_cookie_it_explains_and_exits_1() {
    let out = Command::new(BIN)
        .env_remove("TF_PLUGIN_MAGIC_COOKIE")
        .output()
        .expect("run provider");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "nothing may reach stdout");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("This binary is a plugin"), "{stderr}");
}

#[test]
fn a_terraform_without_protocol_6_is_refused() {
    let out = Command::new(BIN)
        .env("TF_PLUGIN_MAGIC_COOKIE", test_support::TF_MAGIC_COOKIE)
        .env("PLUGIN_PROTOCOL_VERSIONS", "4,5")
        .output()
        .expect("run provider");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("protocol 6"));
}

// Multi-threaded: `wait_exit` blocks its thread, and the client connection must keep answering
// the server's HTTP/2 shutdown PING meanwhile, as Terraform's does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_terraforms_client_certificate_is_accepted() {
    let id = terraform_like_client_cert();
    let mut p = start(Some(&id.pem));
    let channel = tls_channel(&p, Some(&id)).await.expect("TLS connection");
    assert_eq!(
        health_check(channel.clone())
            .await
            .expect("health over mTLS"),
        health::health_check_response::ServingStatus::Serving as i32
    );

    let mut provider = tfplugin6::provider_client::ProviderClient::new(channel.clone());
    let schema = provider
        .get_provider_schema(tfplugin6::get_provider_schema::Request {})
        .await
        .expect("schema")
        .into_inner();
    assert!(schema.resource_schemas.contains_key("compliance_monitor"));

    // StopProvider cancels work but does not exit.
    provider
        .stop_provider(tfplugin6::stop_provider::Request {})
        .await
        .expect("stop");
    assert_eq!(
        wait_exit(&mut p.child, Duration::from_millis(300)),
        None,
        "StopProvider must not exit"
    );
    assert!(health_check(channel.clone()).await.is_ok());

    // GRPCController.Shutdown exits cleanly.
    let mut controller = plugin::grpc_controller_client::GrpcControllerClient::new(channel);
    let _ = controller.shutdown(plugin::Empty {}).await;
    let status = wait_exit(&mut p.child, Duration::from_secs(10)).expect("exit after Shutdown");
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn tls_without_a_client_certificate_is_refused() {
    let id = terraform_like_client_cert();
    let mut p = start(Some(&id.pem));
    let result = match tls_channel(&p, None).await {
        Ok(channel) => health_check(channel).await.map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    assert!(result.is_err(), "a client without a certificate was served");
    let _ = p.child.kill();
    let mut stderr = String::new();
    p.child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("stderr");
    assert!(stderr.contains("TLS handshake refused"), "{stderr}");
}

#[tokio::test]
async fn tls_with_another_certificate_is_refused() {
    let expected = terraform_like_client_cert();
    let other = terraform_like_client_cert();
    let p = start(Some(&expected.pem));
    let result = match tls_channel(&p, Some(&other)).await {
        Ok(channel) => health_check(channel).await.map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    assert!(
        result.is_err(),
        "a client with the wrong certificate was served"
    );
}

#[test]
fn logs_are_hclog_json_lines_on_stderr() {
    let id = terraform_like_client_cert();
    let mut p = start(Some(&id.pem));
    std::thread::sleep(Duration::from_millis(200));
    let _ = p.child.kill();
    let mut stderr = String::new();
    p.child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("stderr");
    let line = stderr
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no log line: {stderr:?}"));
    let json: serde_json::Value = serde_json::from_str(line).expect("log line is JSON");
    for key in ["@level", "@message", "@timestamp"] {
        assert!(json.get(key).is_some(), "{key} missing in {line}");
    }
    assert_eq!(json["@level"], "info");
}

#[tokio::test]
async fn debug_mode_serves_plain_text_and_prints_reattach_settings() {
    let mut child = Command::new(BIN)
        .arg("--debug")
        .env_remove("TF_PLUGIN_MAGIC_COOKIE")
        .env("PLUGIN_CLIENT_CERT", terraform_like_client_cert().pem)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start --debug");
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    let mut handshake = String::new();
    reader.read_line(&mut handshake).expect("handshake");
    assert!(
        handshake.trim_end().ends_with("|grpc|"),
        "debug mode is plain text: {handshake:?}"
    );
    let addr = handshake.split('|').nth(3).expect("address").to_string();
    let mut text = String::new();
    while !text.contains("TF_REATTACH_PROVIDERS='") || !text.ends_with("}}'\n") {
        let mut l = String::new();
        if reader.read_line(&mut l).expect("read") == 0 {
            break;
        }
        text.push_str(&l);
    }
    let json = text
        .split("TF_REATTACH_PROVIDERS='")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or_else(|| panic!("no TF_REATTACH_PROVIDERS in {text}"));
    let reattach: serde_json::Value = serde_json::from_str(json).expect("reattach JSON");
    let entry = &reattach["registry.terraform.io/compliance-monitor/compliance"];
    assert_eq!(entry["ProtocolVersion"], 6);
    assert_eq!(entry["Test"], true);
    assert_eq!(entry["Pid"], child.id());
    assert_eq!(entry["Addr"]["String"], addr.as_str());

    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("plain connection");
    assert_eq!(
        health_check(channel).await.expect("health"),
        health::health_check_response::ServingStatus::Serving as i32
    );
    let _ = child.kill();
    let _ = child.wait();
}
