//! Reading whole OData V2 entity sets from SAP, page by page: what reconciliation, backfill
//! and the master-data import share.

use anyhow::{Context, bail};
use serde_json::Value;

/// Reads every entity of an OData V2 entity set, following `__next` when SAP sends it and
/// `$skip` otherwise.
pub async fn fetch_set(
    client: &reqwest::Client,
    base: &str,
    auth: Option<(&str, &str)>,
    path: &str,
    query: &str,
    page: usize,
) -> anyhow::Result<Vec<Value>> {
    let mut all = Vec::new();
    let mut next = Some(format!("{base}{path}?{query}&$top={page}&$skip=0"));
    let mut skip = 0;
    while let Some(url) = next.take() {
        let mut req = client.get(&url).header("accept", "application/json");
        if let Some((user, password)) = auth {
            req = req.basic_auth(user, Some(password));
        }
        let r = req.send().await.with_context(|| format!("reading {url}"))?;
        if !r.status().is_success() {
            bail!("SAP answered {} to {url}", r.status());
        }
        let body: Value = r.json().await.context("SAP's answer is not JSON")?;
        let results = body["d"]["results"]
            .as_array()
            .with_context(|| format!("SAP's answer to {url} has no d.results"))?;
        all.extend(results.iter().cloned());
        if all.len() >= 5000 && all.len() % 5000 < results.len() {
            eprintln!("read {} from SAP's {path}", all.len());
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
    Ok(all)
}
