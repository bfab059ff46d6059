//! `sap-mock`: an emulator of SAP S/4HANA's sales order API (`API_SALES_ORDER_SRV`, OData V2)
//! that SAP's own client libraries accept unchanged and that misbehaves on demand the way real
//! SAP systems do.
//!
//! It imports only the SAP wire contract (`sap-odata`) and the platform plumbing, never our
//! order logic, so it checks our translation independently. How a request flows:
//!
//! - [`server`]: TCP accept loop on hyper (connection limit, dropping connections on purpose,
//!   graceful drain).
//! - [`fault_layer`] applies the [`faults`] knobs (latency, errors, hangs, outage, lost
//!   responses) to OData requests; [`admin`] changes them at runtime.
//! - [`odata`]: client, logon and CSRF ([`session`]), resource path and query options, then the
//!   operation; answers are shaped by [`render`], refusals by [`error`].
//! - [`master_data_api`]: the [`master_data`] served read-only through SAP's standard product,
//!   business partner and pricing condition APIs, for the master-data import.
//! - [`batch`]: `$batch` (multipart/mixed): each changeset applied all or nothing through the
//!   [`store`]'s changesets, each part answered as its own request would be.
//! - [`sales_order`]: SAP's checks, defaults and pricing against [`master_data`], rejection,
//!   delivery and billing statuses;
//!   [`numbering`]: the internal and external number ranges.
//! - [`store`]: orders in an embedded redb database (durable before the answer), mirrored in
//!   memory.
//! - [`config`]: every `SAP_MOCK_*` variable, read once; [`events`]: what is logged and counted.
//!
//! [`Application::build`] binds the port (0 in tests) and opens the store;
//! [`Application::run_until`] serves until a cancellation token fires and drains.

pub mod admin;
pub mod atom;
pub mod batch;
pub mod config;
pub mod document_flow;
pub mod error;
pub mod events;
pub mod fault_layer;
pub mod faults;
pub mod master_data;
pub mod master_data_api;
pub mod numbering;
pub mod odata;
pub mod render;
pub mod repeatability;
pub mod sales_order;
pub mod server;
pub mod session;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::{any, get};
use platform::shutdown::CancellationToken;
use sap_odata::SERVICE_ROOT_PATH;
use tokio::net::TcpListener;

pub use config::Config;

use crate::error::SapError;
use crate::faults::Faults;
use crate::master_data::MasterData;
use crate::session::Sessions;
use crate::store::Store;

/// Everything a request handler needs.
#[derive(Debug)]
pub struct AppState {
    /// Configuration read at start.
    pub config: Config,
    /// Persistent orders.
    pub store: Store,
    /// Customers, materials, sales areas.
    pub master: Arc<MasterData>,
    /// Live fault knobs.
    pub faults: Arc<Faults>,
    /// Logon sessions and CSRF tokens.
    pub sessions: Sessions,
    /// Fires when the server shuts down (ends hangs and delays early).
    pub shutdown: CancellationToken,
    /// Requests being held by the hang fault right now.
    pub hanging: std::sync::atomic::AtomicUsize,
    /// SAP Gateway's repeatable requests, when enabled.
    pub repeatability: Option<repeatability::Repeatability>,
    /// The SD customizing orders are processed with (rejection reasons, billing relevance).
    pub customizing: Arc<sales_order::Customizing>,
}

/// A built emulator: port bound, store open, not yet serving.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    state: Arc<AppState>,
}

impl Application {
    /// Opens the store, loads master data and binds the port.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        // install the Prometheus recorder before the first request is counted
        platform::http_metrics::prometheus_handle();
        let master = MasterData::load(config.master_data_file.as_deref())?;
        let store = Store::open(
            &config.data_dir,
            config.first_sales_order,
            config.internal_range.to,
        )?;
        let listener = TcpListener::bind(SocketAddr::new(config.bind, config.port)).await?;
        let sessions = Sessions::new(&config.system_id, &config.sap_client, config.users.clone());
        let repeatability = config
            .repeatability
            .then(|| repeatability::Repeatability::new(config.repeatability_window));
        let customizing = Arc::new(sales_order::Customizing {
            rejection_reasons: config.rejection_reasons.clone(),
            billing: config.billing_relevance,
        });
        let state = Arc::new(AppState {
            customizing,
            faults: Arc::new(Faults::new(config.faults.clone())),
            config,
            store,
            master: Arc::new(master),
            sessions,
            shutdown: CancellationToken::new(),
            hanging: std::sync::atomic::AtomicUsize::new(0),
            repeatability,
        });
        Ok(Self { listener, state })
    }

    /// The bound address (the real port when 0 was asked for).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The shared state (tests inspect the store through it).
    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// Serves until `shutdown` fires, then drains open requests for the grace period.
    pub async fn run_until(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let state = self.state.clone();
        let internal = state.shutdown.clone();
        let forward = tokio::spawn({
            let internal = internal.clone();
            async move {
                shutdown.cancelled().await;
                internal.cancel();
            }
        });
        let (orders, _) = state.store.counts().await;
        tracing::info!(
            addr = %self.listener.local_addr()?,
            data_dir = %state.config.data_dir.display(),
            orders,
            users = state.config.users.len(),
            sap_client = %state.config.sap_client,
            customers = state.master.customers.len(),
            materials = state.master.materials.len(),
            faults = ?state.faults.current(),
            "sap_mock_listening"
        );
        server::serve(
            self.listener,
            router(state.clone()),
            state.faults.clone(),
            internal,
            state.config.shutdown_grace,
        )
        .await;
        forward.abort();
        tracing::info!("sap_mock_stopped");
        Ok(())
    }
}

/// The HTTP routes. Layers, outermost first: correlation id (span per request), metrics, then
/// on the OData routes only, the fault layer.
pub fn router(state: Arc<AppState>) -> Router {
    let mut services = Router::new();
    let roots =
        std::iter::once(SERVICE_ROOT_PATH).chain(master_data_api::SERVICES.iter().map(|s| s.root));
    for root in roots {
        services = services
            .route(root, any(odata::handle))
            .route(&format!("{root}/"), any(odata::handle))
            .route(&format!("{root}/{{*rest}}"), any(odata::handle));
    }
    let odata = services.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        fault_layer::apply_faults,
    ));
    let admin = Router::new()
        .route(
            "/sap-mock/admin/faults",
            get(admin::get_faults)
                .put(admin::put_faults)
                .patch(admin::patch_faults)
                .delete(admin::reset_faults),
        )
        .route("/sap-mock/admin/stats", get(admin::stats))
        .route("/sap-mock/admin/master-data", get(admin::master_data))
        .route(
            "/sap-mock/admin/deliveries",
            axum::routing::post(admin::deliver),
        )
        .route("/sap-mock/admin/billing", axum::routing::post(admin::bill))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            admin::require_token,
        ));
    Router::new()
        .merge(admin)
        .route("/sap-mock/health", get(admin::health))
        .route("/metrics", get(platform::http_metrics::render))
        .merge(odata)
        .fallback(|uri: axum::http::Uri| async move {
            use axum::response::IntoResponse;
            SapError::resource_not_found(uri.path()).into_response()
        })
        .layer(axum::middleware::from_fn(
            platform::http_metrics::middleware,
        ))
        .layer(axum::middleware::from_fn(platform::correlation::middleware))
        .with_state(state)
}
