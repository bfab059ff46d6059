//! Reading whole OData V2 entity sets from SAP, page by page: what reconciliation, backfill
//! and the master-data import share.
//!
//! SAP is reached through `platform::http_client`, over TLS when `SAP_URL` is `https` (SAP's
//! certificate verified against `SAP_CA_FILE` or the system's CA store, as in the proxy and
//! sap-sync: the same configuration code).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION};
use http::{HeaderValue, Request};
use platform::config::{EnvReader, UpstreamSchemes};
use platform::http_client::HttpClient;
use serde_json::Value;

/// Longest one SAP page may take.
const PAGE_TIMEOUT: Duration = Duration::from_secs(120);

/// SAP as orderctl reads it: its base URL, the logon, a pooled client.
pub struct SapReader {
    http: HttpClient,
    base: String,
    authorization: Option<HeaderValue>,
}

impl SapReader {
    /// For `sap_url` (`http://` or `https://`) with the CA file an `https` URL is checked
    /// against (unset: the system's CA store). The same rules as the services' `SAP_URL` and
    /// `SAP_CA_FILE`, so the same mistakes are reported in the same words.
    pub fn new(
        sap_url: &str,
        ca_file: Option<&PathBuf>,
        auth: Option<(&str, &str)>,
    ) -> anyhow::Result<Self> {
        let mut vars =
            std::collections::HashMap::from([("SAP_URL".to_owned(), sap_url.to_owned())]);
        if let Some(path) = ca_file {
            vars.insert("SAP_CA_FILE".to_owned(), path.display().to_string());
        }
        let mut r = EnvReader::from_map(vars);
        let sap = r.read_upstream_url(
            "SAP_URL",
            "http://127.0.0.1:8082",
            UpstreamSchemes::HttpOrHttps {
                ca_file_var: "SAP_CA_FILE",
            },
        );
        r.finish()?;
        let authorization = match auth {
            Some((user, password)) => {
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                let mut v = HeaderValue::from_str(&format!("Basic {token}"))
                    .context("SAP_USER / SAP_PASSWORD cannot be sent in a header")?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        Ok(Self {
            base: sap.base(),
            http: HttpClient::new(sap.tls, 8),
            authorization,
        })
    }

    /// One `GET` of an absolute URL below SAP, answered with JSON.
    async fn get_json(&self, url: &str) -> anyhow::Result<Value> {
        let mut req = Request::get(encode_unsafe(url)).header(ACCEPT, "application/json");
        if let Some(a) = &self.authorization {
            req = req.header(AUTHORIZATION, a.clone());
        }
        let req = req
            .body(Bytes::new())
            .with_context(|| format!("{url} is not a URL"))?;
        let r = self
            .http
            .send(req, PAGE_TIMEOUT)
            .await
            .with_context(|| format!("reading {url}"))?;
        if !r.status.is_success() {
            bail!("SAP answered {} to {url}", r.status);
        }
        serde_json::from_slice(&r.body).context("SAP's answer is not JSON")
    }

    /// Reads every entity of an OData V2 entity set, following `__next` when SAP sends it and
    /// `$skip` otherwise.
    pub async fn fetch_set(
        &self,
        path: &str,
        query: &str,
        page: usize,
    ) -> anyhow::Result<Vec<Value>> {
        let base = &self.base;
        let mut all = Vec::new();
        // The first page asks for the total too, for the progress of a long read
        // (`$inlinecount=allpages`, a system query option SAP Gateway serves: help.sap.com,
        // "OData in SAP Gateway - Feature Overview"). Without a `__count` there is no bar.
        let mut next = Some(format!(
            "{base}{path}?{query}&$top={page}&$skip=0&$inlinecount=allpages"
        ));
        let mut skip = 0;
        let mut progress: Option<crate::progress::Progress> = None;
        while let Some(url) = next.take() {
            let body = self.get_json(&url).await?;
            let results = body["d"]["results"]
                .as_array()
                .with_context(|| format!("SAP's answer to {url} has no d.results"))?;
            all.extend(results.iter().cloned());
            if progress.is_none() {
                // SAP writes the count as a string (`"__count": "1234"`).
                let total = body["d"]["__count"]
                    .as_str()
                    .and_then(|c| c.parse::<u64>().ok())
                    .unwrap_or(0);
                // Only a read of more than a few pages is worth a bar.
                if total > 4 * page as u64 {
                    progress = Some(crate::progress::Progress::new("read from SAP", total, true));
                }
            }
            if let Some(p) = &progress {
                p.inc_by(results.len() as u64);
            }
            skip += results.len();
            next = match body["d"]["__next"].as_str() {
                Some(n) if n.starts_with("http") => Some(n.to_owned()),
                Some(n) if n.starts_with('/') => Some(format!("{base}{n}")),
                Some(n) => Some(format!("{base}{path}/{n}")),
                None if results.len() >= page => {
                    Some(format!("{base}{path}?{query}&$top={page}&$skip={skip}"))
                }
                None => None,
            };
        }
        if let Some(p) = &progress {
            p.finish();
        }
        Ok(all)
    }
}

/// `url` with every byte a URI may not hold as is (space, quotes, braces, non-ASCII, ...)
/// percent-encoded; `%` and the reserved characters stay, so an encoded URL is unchanged.
fn encode_unsafe(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    for b in url.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&b);
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bytes_a_uri_cannot_hold_are_encoded() {
        assert_eq!(
            encode_unsafe("http://s/A?$filter=X%20eq%20'a'&$top=5"),
            "http://s/A?$filter=X%20eq%20'a'&$top=5"
        );
        assert_eq!(
            encode_unsafe("http://s/A?$filter=X eq \"ä\""),
            "http://s/A?$filter=X%20eq%20%22%C3%A4%22"
        );
    }

    #[test]
    fn a_bad_ca_file_is_named_before_anything_is_read() {
        let e = SapReader::new(
            "https://sap.example:44300",
            Some(&PathBuf::from("/nonexistent/ca.pem")),
            None,
        )
        .err()
        .expect("refused");
        assert!(e.to_string().contains("SAP_CA_FILE"), "{e}");
        assert!(SapReader::new("http://127.0.0.1:1", None, None).is_ok());
    }
}
