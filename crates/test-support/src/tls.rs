//! TLS for tests, made at test time: a test CA ([`TestCa`], its certificate in a PEM file a
//! service can be pointed at with its CA-file variable) and a TLS-terminating relay
//! ([`TlsTerminator`]) that puts any plain server (the SAP emulator) behind `https` with a
//! certificate the CA signed for `127.0.0.1` and `localhost`.
//!
//! The relay counts the handshakes it completed and keeps the reason of each one that failed
//! (a client that does not trust the CA aborts with an `UnknownCA` alert), so a test can show
//! that a refused client sent nothing past the handshake.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// A certificate authority of one test: its key stays in memory, its certificate is written to
/// a PEM file (removed when the CA is dropped).
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
    dir: PathBuf,
    pem_file: PathBuf,
}

impl TestCa {
    /// A new self-signed CA named `name` (its common name), with its PEM file.
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("generate a CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("self-sign the CA");
        let dir = std::env::temp_dir().join(format!("test-ca-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create the CA's folder");
        let pem_file = dir.join("ca.pem");
        std::fs::write(&pem_file, cert.pem()).expect("write the CA's PEM file");
        TestCa {
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
            dir,
            pem_file,
        }
    }

    /// The PEM file holding the CA's certificate.
    pub fn pem_file(&self) -> &Path {
        &self.pem_file
    }

    /// A TLS server configuration with a certificate for `names` (DNS names or IP addresses)
    /// signed by this CA; the chain sent is the certificate and the CA's.
    pub fn server_config(&self, names: &[&str]) -> Arc<ServerConfig> {
        let key = KeyPair::generate().expect("generate a server key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .expect("server certificate parameters");
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or("test"));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign the server certificate");
        let chain = vec![cert.der().clone(), self.der.clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .expect("a valid certificate and key");
        Arc::new(config)
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TLS-terminating relay on `127.0.0.1`: TLS from the client, plain TCP to the server behind
/// it, bytes copied both ways. Dropped, it stops accepting.
pub struct TlsTerminator {
    port: u16,
    handshakes: Arc<AtomicU64>,
    refusals: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsTerminator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsTerminator {
    /// Serves `https` on a free port with a certificate from `ca` for `127.0.0.1` and
    /// `localhost`, relaying each connection to `127.0.0.1:<upstream>`.
    pub async fn start(ca: &TestCa, upstream: u16) -> TlsTerminator {
        let acceptor = TlsAcceptor::from(ca.server_config(&["127.0.0.1", "localhost"]));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the TLS relay");
        let port = listener.local_addr().expect("relay address").port();
        let handshakes = Arc::new(AtomicU64::new(0));
        let refusals = Arc::new(Mutex::new(Vec::new()));
        let (done, refused) = (handshakes.clone(), refusals.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (acceptor, done, refused) = (acceptor.clone(), done.clone(), refused.clone());
                tokio::spawn(async move {
                    let mut tls = match acceptor.accept(client).await {
                        Ok(tls) => tls,
                        Err(e) => {
                            refused.lock().expect("refusals lock").push(e.to_string());
                            return;
                        }
                    };
                    done.fetch_add(1, Ordering::SeqCst);
                    if let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)).await {
                        let _ = server.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut server).await;
                    }
                });
            }
        });
        TlsTerminator {
            port,
            handshakes,
            refusals,
            task,
        }
    }

    /// The relay's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Handshakes completed so far (connections that reached the server behind).
    pub fn handshakes(&self) -> u64 {
        self.handshakes.load(Ordering::SeqCst)
    }

    /// Why each failed handshake failed, in order (`received fatal alert: UnknownCA`, ...).
    pub fn refusals(&self) -> Vec<String> {
        self.refusals.lock().expect("refusals lock").clone()
    }
}
