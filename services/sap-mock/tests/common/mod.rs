//! Test support: a real emulator router on port 0 in this process, with its own data folder,
//! and a client that speaks to it the way SAP's JavaScript client does.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, Response, StatusCode};
use sap_mock::{AppState, Application, Config};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub const ROOT: &str = "/sap/opu/odata/sap/API_SALES_ORDER_SRV";

pub struct TestEmulator {
    pub base: String,
    pub client: reqwest::Client,
    pub state: Arc<AppState>,
    pub token: CancellationToken,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub dir: tempfile::TempDir,
    pub auth: Option<(String, String)>,
}

/// A deep-insert body like the one SAP's client sends.
pub fn order_body(po: &str, items: &[(&str, &str)]) -> Value {
    json!({
        "SalesOrderType": "OR",
        "SalesOrganization": "1010",
        "DistributionChannel": "10",
        "OrganizationDivision": "00",
        "SoldToParty": "17100001",
        "PurchaseOrderByCustomer": po,
        "CustomerPurchaseOrderDate": "/Date(1795478400000+0000)/",
        "to_Item": items.iter().map(|(m, q)| json!({"Material": m, "RequestedQuantity": q, "RequestedQuantityUnit": "PC"})).collect::<Vec<_>>(),
    })
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

impl TestEmulator {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_tests(dir.path().join("data"));
        tweak(&mut config);
        let auth = config
            .users
            .first()
            .map(|u| (u.name.clone(), u.password.clone()));
        let app = Application::build(config).await.unwrap();
        let addr = app.local_addr().unwrap();
        let state = app.state();
        let token = CancellationToken::new();
        let task = tokio::spawn(app.run_until(token.clone()));
        Self {
            base: format!("http://{addr}"),
            client: client(),
            state,
            token,
            task,
            dir,
            auth,
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{ROOT}{path_and_query}", self.base)
    }

    /// A request with Accept: application/json and the test user's basic auth.
    pub fn request(&self, method: Method, path_and_query: &str) -> reqwest::RequestBuilder {
        let mut r = self
            .client
            .request(method, self.url(path_and_query))
            .header("accept", "application/json");
        if let Some((u, p)) = &self.auth {
            r = r.basic_auth(u, Some(p));
        }
        r
    }

    pub async fn get(&self, path_and_query: &str) -> Response {
        self.request(Method::GET, path_and_query)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, path_and_query: &str) -> Value {
        let r = self.get(path_and_query).await;
        assert_eq!(r.status(), StatusCode::OK, "{path_and_query}");
        r.json().await.unwrap()
    }

    /// CSRF fetch by HEAD on the entity set with a trailing slash, as the SDK does:
    /// returns the token and the `cookie` header value (`a=1;b=2`, no spaces).
    pub async fn csrf(&self) -> (String, String) {
        let r = self
            .request(Method::HEAD, "/A_SalesOrder/")
            .header("x-csrf-token", "Fetch")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let token = r.headers()["x-csrf-token"].to_str().unwrap().to_owned();
        let cookies: Vec<String> = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
            .collect();
        assert!(!cookies.is_empty());
        (token, cookies.join(";"))
    }

    /// A write with a fresh CSRF token and its cookies.
    pub async fn write(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> reqwest::Result<Response> {
        let (token, cookie) = self.csrf().await;
        let mut r = self
            .request(method, path)
            .header("x-csrf-token", token)
            .header("cookie", cookie)
            .header("content-type", "application/json");
        if let Some(b) = body {
            r = r.body(b);
        }
        r.send().await
    }

    pub async fn create(&self, body: &Value) -> Response {
        self.write(
            Method::POST,
            "/A_SalesOrder",
            Some(serde_json::to_vec(body).unwrap()),
        )
        .await
        .unwrap()
    }

    pub async fn create_ok(&self, body: &Value) -> Value {
        let r = self.create(body).await;
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v["d"].clone()
    }

    /// Orders stored, counted through the OData `$count` (what a client would see).
    pub async fn count(&self) -> usize {
        let r = self.get("/A_SalesOrder/$count").await;
        assert_eq!(r.status(), StatusCode::OK);
        r.text().await.unwrap().trim().parse().unwrap()
    }

    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        let mut r = self.client.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.unwrap()
    }

    pub async fn set_faults(&self, faults: Value) {
        let r = self
            .admin(Method::PATCH, "/sap-mock/admin/faults", Some(faults))
            .await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    }

    pub async fn stop(self) {
        self.token.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// Asserts an OData error body with the given status and returns it.
pub async fn assert_odata_error(r: Response, status: StatusCode) -> Value {
    assert_eq!(r.status(), status);
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("application/json"), "{ct}");
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["code"].is_string(), "{v}");
    assert!(
        v["error"]["message"]["value"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    assert_eq!(v["error"]["message"]["lang"], "en");
    v
}

/// Polls `check` until it returns true or the deadline passes.
pub async fn eventually(deadline: Duration, mut check: impl AsyncFnMut() -> bool) {
    let until = Instant::now() + deadline;
    loop {
        if check().await {
            return;
        }
        assert!(
            Instant::now() < until,
            "condition not met within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
