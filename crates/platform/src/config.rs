//! Typed configuration from environment variables.
//!
//! A service builds its configuration with an [`EnvReader`]: each `read*` call parses one
//! variable, and a bad value is recorded instead of aborting, so [`EnvReader::finish`] can report
//! every bad variable in one message. The reader takes its variables from a map so tests can
//! build configurations without touching the process environment.

use std::collections::HashMap;
use std::fmt::Display;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use crate::tls::{ClientConfig, TlsSetupError};

/// Every configuration problem found while loading, reported together.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .problems.join("\n  - "))]
pub struct ConfigError {
    /// One line per bad variable, naming it.
    pub problems: Vec<String>,
}

/// A checked upstream base URL and, for `https://`, the TLS client configuration that reaches it.
#[derive(Debug, Clone)]
pub struct UpstreamUrl {
    /// Scheme, authority and an optional path prefix (no trailing slash).
    pub url: http::Uri,
    /// `Some` exactly when the scheme is `https`.
    pub tls: Option<Arc<ClientConfig>>,
}

impl UpstreamUrl {
    /// The URL as text without a trailing slash, for appending paths to.
    pub fn base(&self) -> String {
        self.url.to_string().trim_end_matches('/').to_owned()
    }
}

/// The schemes an upstream URL may have.
#[derive(Debug, Clone, Copy)]
pub enum UpstreamSchemes<'a> {
    /// `http://` only (services on the inside, where TLS is terminated elsewhere).
    HttpOnly,
    /// `http://` or `https://`; an `https` upstream's certificate is verified against the
    /// certificates in the PEM file named by `ca_file_var` when it is set, else against the
    /// system's CA store (see [`crate::tls`]).
    HttpOrHttps {
        /// The variable naming the CA file (e.g. `SAP_CA_FILE`).
        ca_file_var: &'a str,
    },
}

/// Reads typed values out of a set of environment variables, collecting errors.
#[derive(Debug)]
pub struct EnvReader {
    vars: HashMap<String, String>,
    problems: Vec<String>,
}

impl EnvReader {
    /// A reader over the process environment.
    pub fn from_process() -> Self {
        Self::from_map(std::env::vars().collect())
    }

    /// A reader over an explicit map (tests, or a file loaded by the caller).
    pub fn from_map(vars: HashMap<String, String>) -> Self {
        Self {
            vars,
            problems: Vec::new(),
        }
    }

    /// The raw value of `name`, if set and not empty.
    pub fn raw(&self, name: &str) -> Option<String> {
        self.vars
            .get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// `name` parsed as `T`, or `default` when unset. A value that does not parse is recorded.
    pub fn read<T>(&mut self, name: &str, default: T) -> T
    where
        T: FromStr,
        T::Err: Display,
    {
        self.read_opt(name).unwrap_or(default)
    }

    /// `name` parsed as `T` when set. A value that does not parse is recorded and `None` returned.
    pub fn read_opt<T>(&mut self, name: &str) -> Option<T>
    where
        T: FromStr,
        T::Err: Display,
    {
        let raw = self.raw(name)?;
        match raw.parse::<T>() {
            Ok(v) => Some(v),
            Err(e) => {
                self.problems.push(format!("{name}={raw:?}: {e}"));
                None
            }
        }
    }

    /// A boolean (`true/false/1/0/yes/no/on/off`), or `default` when unset.
    pub fn read_bool(&mut self, name: &str, default: bool) -> bool {
        let Some(raw) = self.raw(name) else {
            return default;
        };
        match raw.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" => false,
            _ => {
                self.problems
                    .push(format!("{name}={raw:?}: expected true or false"));
                default
            }
        }
    }

    /// A string, or `default` when unset.
    pub fn read_string(&mut self, name: &str, default: &str) -> String {
        self.raw(name).unwrap_or_else(|| default.to_owned())
    }

    /// An upstream's base URL from `name` (or `default`), with the TLS configuration an
    /// `https://` URL needs. A wrong scheme, a missing host, and a CA file that is missing, not
    /// PEM or without certificates are recorded, naming the variable. The CA file is checked
    /// whatever the scheme, but the system's store is read only for `https`, and for `http`
    /// nothing about TLS is kept.
    pub fn read_upstream_url(
        &mut self,
        name: &str,
        default: &str,
        schemes: UpstreamSchemes<'_>,
    ) -> UpstreamUrl {
        let fallback = || UpstreamUrl {
            url: default.parse().expect("default URL parses"),
            tls: None,
        };
        let raw = self.read_string(name, default);
        let url = match raw.trim_end_matches('/').parse::<http::Uri>() {
            Ok(u) if u.authority().is_some() => u,
            Ok(_) => {
                self.problems
                    .push(format!("{name}={raw:?}: expected scheme://host:port"));
                return fallback();
            }
            Err(e) => {
                self.problems.push(format!("{name}={raw:?}: {e}"));
                return fallback();
            }
        };
        match (url.scheme_str(), schemes) {
            (Some("http"), UpstreamSchemes::HttpOnly) => UpstreamUrl { url, tls: None },
            (_, UpstreamSchemes::HttpOnly) => {
                self.problems
                    .push(format!("{name}={raw:?}: expected http://host:port"));
                fallback()
            }
            (Some(scheme @ ("http" | "https")), UpstreamSchemes::HttpOrHttps { ca_file_var }) => {
                let ca_file = self.raw(ca_file_var).map(PathBuf::from);
                if scheme == "http" {
                    if let Some(path) = &ca_file
                        && let Err(e) = crate::tls::load_ca_file(path)
                    {
                        self.problems.push(format!("{ca_file_var}: {e}"));
                    }
                    return UpstreamUrl { url, tls: None };
                }
                let host = url.host().unwrap_or_default();
                let host = host.trim_start_matches('[').trim_end_matches(']');
                if rustls::pki_types::ServerName::try_from(host).is_err() {
                    self.problems.push(format!(
                        "{name}={raw:?}: {host:?} is neither a DNS name nor an IP address, so no \
                         certificate can name it"
                    ));
                    return fallback();
                }
                match crate::tls::client_config(ca_file.as_deref()) {
                    Ok(tls) => UpstreamUrl {
                        url,
                        tls: Some(tls),
                    },
                    Err(e @ TlsSetupError::NoSystemRoots { .. }) => {
                        self.problems
                            .push(format!("{name}={raw:?}: {e} ({ca_file_var})"));
                        fallback()
                    }
                    Err(e) => {
                        self.problems.push(format!("{ca_file_var}: {e}"));
                        fallback()
                    }
                }
            }
            (_, UpstreamSchemes::HttpOrHttps { .. }) => {
                self.problems.push(format!(
                    "{name}={raw:?}: expected http://host:port or https://host:port"
                ));
                fallback()
            }
        }
    }

    /// Records a problem found by the caller's own cross-field checks.
    pub fn problem(&mut self, message: impl Into<String>) {
        self.problems.push(message.into());
    }

    /// `Ok(())` when every variable read so far was valid, else all problems at once.
    pub fn finish(self) -> Result<(), ConfigError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                problems: self.problems,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(pairs: &[(&str, &str)]) -> EnvReader {
        EnvReader::from_map(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn every_bad_variable_is_reported_at_once() {
        let mut r = reader(&[("A_PORT", "eighty"), ("B_FLAG", "maybe"), ("C", "7")]);
        let a: u16 = r.read("A_PORT", 1);
        let b = r.read_bool("B_FLAG", false);
        let c: u32 = r.read("C", 0);
        assert_eq!((a, b, c), (1, false, 7));
        let err = r.finish().unwrap_err();
        assert_eq!(err.problems.len(), 2);
        let text = err.to_string();
        assert!(text.contains("A_PORT") && text.contains("B_FLAG"), "{text}");
    }

    #[test]
    fn an_http_upstream_needs_no_tls_and_an_https_one_gets_its_configured_ca() {
        let ca = {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params.self_signed(&key).unwrap().pem()
        };
        let path = std::env::temp_dir().join(format!(
            "platform-config-ca-{}.pem",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(&path, ca).unwrap();
        let schemes = UpstreamSchemes::HttpOrHttps {
            ca_file_var: "X_CA_FILE",
        };
        let mut r = reader(&[("X_URL", "http://sap:8000/")]);
        let plain = r.read_upstream_url("X_URL", "http://127.0.0.1:1", schemes);
        assert!(plain.tls.is_none());
        assert_eq!(plain.base(), "http://sap:8000");
        let mut r = reader(&[
            ("X_URL", "https://sap.example:44300"),
            ("X_CA_FILE", path.to_str().unwrap()),
        ]);
        let secure = r.read_upstream_url("X_URL", "http://127.0.0.1:1", schemes);
        assert!(r.finish().is_ok());
        assert!(secure.tls.is_some());
        assert_eq!(secure.url.scheme_str(), Some("https"));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_bad_ca_file_or_scheme_is_a_problem_naming_the_variable() {
        let schemes = UpstreamSchemes::HttpOrHttps {
            ca_file_var: "X_CA_FILE",
        };
        for (url, ca, named) in [
            ("https://sap:1", "/nonexistent/ca.pem", "X_CA_FILE"),
            // Checked even while the URL is still http, so the switch to https cannot fail.
            ("http://sap:1", "/nonexistent/ca.pem", "X_CA_FILE"),
            ("ftp://sap:1", "", "X_URL"),
            ("https://sap!:1", "", "X_URL"),
        ] {
            let mut r = reader(&[("X_URL", url), ("X_CA_FILE", ca)]);
            let u = r.read_upstream_url("X_URL", "http://127.0.0.1:1", schemes);
            assert!(u.tls.is_none());
            let e = r.finish().unwrap_err();
            assert_eq!(e.problems.len(), 1, "{e}");
            assert!(e.problems[0].starts_with(named), "{e}");
        }
        let mut r = reader(&[("X_URL", "https://sap:1")]);
        r.read_upstream_url("X_URL", "http://127.0.0.1:1", UpstreamSchemes::HttpOnly);
        let e = r.finish().unwrap_err();
        assert!(e.problems[0].contains("expected http://"), "{e}");
    }

    #[test]
    fn unset_and_empty_values_fall_back_to_defaults() {
        let mut r = reader(&[("EMPTY", "  ")]);
        assert_eq!(r.read::<u16>("EMPTY", 5), 5);
        assert_eq!(r.read::<u16>("MISSING", 6), 6);
        assert!(r.finish().is_ok());
    }
}
