//! TLS to an upstream such as SAP: one way to build the rustls client configuration, used by
//! every service that calls out over `https://`.
//!
//! - The crypto is rustls with the `ring` provider (no aws-lc-rs, so no cmake; no OpenSSL).
//! - The certificates that may sign the upstream's certificate (the trust anchors) are either
//!   the system's CA store (as `rustls-native-certs` finds it: on Linux the distribution's
//!   bundle, or the files named by `SSL_CERT_FILE` / `SSL_CERT_DIR`), or, when the operator
//!   names a CA file, the certificates in that file *instead*. Naming a CA means "this is who
//!   signs SAP": trusting a hundred public CAs besides it would only widen who could
//!   impersonate SAP, and the outcome would depend on the host's store.
//! - Certificate and host-name verification are always on; there is no switch to turn them off.
//! - Only HTTP/1.1 is offered in ALPN (the callers speak nothing else).
//!
//! Everything here runs once at start: a bad CA file is a configuration error then (see
//! [`crate::config::EnvReader::read_upstream_url`]), never a surprise at the first call.

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use rustls::ClientConfig;
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::{self, PemObject, SectionKind};

/// Why no TLS client configuration could be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The CA file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The CA file is not PEM (or its PEM is damaged).
    #[error("{} is not a PEM file of certificates: {reason}", path.display())]
    NotPem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The CA file is PEM but holds no certificate.
    #[error("{} holds no certificate (no `BEGIN CERTIFICATE` section{found})", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
        /// The sections it does hold, as `; found: ...`, or empty.
        found: String,
    },
    /// A certificate in the CA file cannot serve as a trust anchor.
    #[error("{}: certificate {index} cannot be trusted as a CA: {reason}", path.display())]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// 1-based position of the certificate in the file.
        index: usize,
        /// Why (as webpki says it).
        reason: String,
    },
    /// No CA file was named and the system's store holds no usable certificate.
    #[error(
        "the system's CA store holds no usable certificate{detail}: install the CA certificates \
         (Debian: ca-certificates) or name the CA in a file"
    )]
    NoSystemRoots {
        /// What the loader reported, as `; ...`, or empty.
        detail: String,
    },
}

/// The process's crypto provider for TLS clients: rustls's `ring` provider.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads every certificate of a PEM file (one or more `BEGIN CERTIFICATE` sections; other
/// sections are ignored).
pub fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let bytes = std::fs::read(path).map_err(|source| TlsSetupError::Unreadable {
        path: path.to_owned(),
        source,
    })?;
    let mut certs = Vec::new();
    let mut others = Vec::new();
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(&bytes) {
        match section {
            Ok((SectionKind::Certificate, der)) => certs.push(CertificateDer::from(der)),
            Ok((kind, _)) => others.push(format!("{kind:?}")),
            Err(e) => {
                return Err(TlsSetupError::NotPem {
                    path: path.to_owned(),
                    reason: pem_error(&e),
                });
            }
        }
    }
    if certs.is_empty() && others.is_empty() {
        return Err(TlsSetupError::NotPem {
            path: path.to_owned(),
            reason: "no `-----BEGIN ...-----` section in it".into(),
        });
    }
    if certs.is_empty() {
        return Err(TlsSetupError::NoCertificate {
            path: path.to_owned(),
            found: format!("; found: {}", others.join(", ")),
        });
    }
    Ok(certs)
}

fn pem_error(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "a section has no end line `{}`",
            String::from_utf8_lossy(end_marker)
        ),
        pem::Error::IllegalSectionStart { line } => format!(
            "malformed section start `{}`",
            String::from_utf8_lossy(line)
        ),
        other => other.to_string(),
    }
}

/// The trust anchors: the certificates of `ca_file` when given, else the system's CA store.
fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, TlsSetupError> {
    let mut store = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for (i, cert) in load_ca_file(path)?.into_iter().enumerate() {
                store.add(cert).map_err(|e| TlsSetupError::BadCertificate {
                    path: path.to_owned(),
                    index: i + 1,
                    reason: e.to_string(),
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            // A distribution bundle may hold a certificate webpki cannot parse; the others
            // still count (as every TLS client treats the store).
            let (added, _ignored) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let detail = found
                    .errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(TlsSetupError::NoSystemRoots {
                    detail: if detail.is_empty() {
                        String::new()
                    } else {
                        format!(" ({detail})")
                    },
                });
            }
        }
    }
    Ok(store)
}

/// The TLS client configuration for an upstream: the trust anchors of [`roots`], TLS 1.2 and
/// 1.3 with rustls's safe defaults, no client certificate, ALPN `http/1.1`.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let roots = roots(ca_file)?;
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports rustls's default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Whether `error` (or anything in its source chain) is a TLS failure, and if so rustls's
/// words for it (`invalid peer certificate: UnknownIssuer`, ...).
///
/// TLS errors reach callers wrapped in `std::io::Error`, sometimes twice (tokio-rustls wraps
/// rustls's error, hyper-rustls wraps that again), and then in the HTTP client's own error. An
/// `io::Error`'s `source()` skips the error it wraps, so each one is also looked into.
pub fn tls_failure(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    if let Some(t) = error.downcast_ref::<rustls::Error>() {
        return Some(t.to_string());
    }
    if let Some(inner) = error
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        && let Some(found) = tls_failure(inner)
    {
        return Some(found);
    }
    error.source().and_then(tls_failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, content: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "platform-tls-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn a_tls_failure_is_found_inside_nested_io_errors_and_nothing_else_is_one() {
        let rustls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io =
            std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, rustls));
        assert_eq!(
            tls_failure(&io).as_deref(),
            Some("invalid peer certificate: UnknownIssuer")
        );
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(tls_failure(&refused), None);
    }

    #[test]
    fn a_ca_file_with_two_certificates_gives_two_trust_anchors() {
        let p = temp_file("two.pem", format!("{}{}", ca_pem(), ca_pem()).as_bytes());
        assert_eq!(load_ca_file(&p).unwrap().len(), 2);
        let config = client_config(Some(&p)).unwrap();
        assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
    }

    #[test]
    fn a_missing_file_is_unreadable_and_named() {
        let e = client_config(Some(Path::new("/nonexistent/sap-ca.pem"))).unwrap_err();
        assert!(matches!(e, TlsSetupError::Unreadable { .. }), "{e:?}");
        assert!(e.to_string().contains("/nonexistent/sap-ca.pem"), "{e}");
    }

    #[test]
    fn a_file_that_is_not_pem_is_refused() {
        let p = temp_file("der.crt", b"\x30\x82\x01\x0a not pem at all");
        let e = client_config(Some(&p)).unwrap_err();
        assert!(matches!(e, TlsSetupError::NotPem { .. }), "{e:?}");
        let p = temp_file("cut.pem", b"-----BEGIN CERTIFICATE-----\nMIIB\n");
        let e = client_config(Some(&p)).unwrap_err();
        assert!(matches!(e, TlsSetupError::NotPem { .. }), "{e:?}");
    }

    #[test]
    fn a_pem_file_with_only_a_key_holds_no_certificate() {
        let key = rcgen::KeyPair::generate().unwrap().serialize_pem();
        let p = temp_file("key.pem", key.as_bytes());
        let e = client_config(Some(&p)).unwrap_err();
        assert!(matches!(e, TlsSetupError::NoCertificate { .. }), "{e:?}");
        assert!(e.to_string().contains("PrivateKey"), "{e}");
    }

    #[test]
    fn a_certificate_section_that_is_not_a_certificate_is_refused() {
        let p = temp_file(
            "junk.pem",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        let e = client_config(Some(&p)).unwrap_err();
        assert!(
            matches!(e, TlsSetupError::BadCertificate { index: 1, .. }),
            "{e:?}"
        );
    }
}
