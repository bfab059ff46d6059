//! Startup in the house shape: [`Application::build`] binds both listeners (port 0 works, so
//! tests can run many proxies), opens the durable state and wires the parts;
//! [`Application::run`] serves until the shutdown token fires, then drains.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminState};
use crate::config::ProxyConfig;
use crate::dual_write::keys::Keys;
use crate::dual_write::replay::ReplayWorker;
use crate::dual_write::shadow::ShadowStats;
use crate::dual_write::store::Store;
use crate::routing::routes::RouteTable;
use crate::routing::sales_orders::SalesOrders;
use crate::serve::server::{self, ProxyState};
use crate::shared_state::{ReplicaIdentity, RouteSync, SharedState};
use crate::upstreams::order_client::{HttpOrderService, OrderService};
use crate::upstreams::sap_client::SapClient;
use crate::upstreams::upstream::{Upstream, UpstreamSettings};

/// A built, not yet running, proxy.
pub struct Application {
    listener: TcpListener,
    admin_listener: TcpListener,
    state: Arc<ProxyState>,
    admin: AdminState,
    worker: ReplayWorker,
    /// Keeps the route table in step with the shared one (with `PROXY_STATE_DATABASE_URL`).
    route_sync: Option<RouteSync>,
    config: Arc<ProxyConfig>,
}

impl Application {
    /// Binds the listeners and opens the data folder.
    pub async fn build(config: ProxyConfig) -> anyhow::Result<Self> {
        // The recorder first: metric handles registered while wiring must reach it.
        platform::http_metrics::prometheus_handle();
        let config = Arc::new(config);
        let store = Store::open(&config.data_dir)?;
        let routes =
            RouteTable::open(&config.data_dir, config.initial_mode, config.initial_policy)?;
        let listener = bind_client_listener(config.listen, config.workers > 1)?;
        let admin_listener = TcpListener::bind(config.admin_listen).await?;
        let boot_id = uuid::Uuid::now_v7().to_string();
        // With shared state the table in memory follows the database's; the local file keeps
        // the last modes seen.
        let shared = match &config.state_database_url {
            None => None,
            Some(url) => {
                let me = ReplicaIdentity {
                    id: boot_id.clone(),
                    name: config.replica_name.clone(),
                    address: listener.local_addr()?.to_string(),
                    admin_address: admin_listener.local_addr()?.to_string(),
                };
                let shared = SharedState::connect(url.expose(), me, config.state_sync)
                    .await
                    .map_err(|e| anyhow::anyhow!("shared state database: {e}"))?;
                shared.adopt_routes(&routes).await?;
                shared.heartbeat(&routes).await;
                Some(shared)
            }
        };
        let keys = match &shared {
            Some(s) => Keys::Shared(s.clone()),
            None => Keys::Local(store.clone()),
        };
        let sap = Arc::new(Upstream::new(UpstreamSettings {
            name: "sap",
            base: config.sap_url.clone(),
            timeout: config.sap_timeout,
            breaker_failures: config.breaker_failures,
            breaker_cooldown: config.breaker_cooldown,
            max_concurrency: config.upstream_max_concurrency,
            tls: config.sap_tls.clone(),
        }));
        let order_upstream = Arc::new(Upstream::new(UpstreamSettings {
            name: "order-service",
            base: config.order_service_url.clone(),
            timeout: config.order_service_timeout,
            breaker_failures: config.breaker_failures,
            breaker_cooldown: config.breaker_cooldown,
            max_concurrency: config.upstream_max_concurrency,
            tls: None,
        }));
        let orders: Arc<dyn OrderService> = Arc::new(HttpOrderService::new(order_upstream.clone()));
        let sap_client = SapClient::new(sap.clone(), config.sap_credentials.clone());
        let wakeup = Arc::new(Notify::new());
        let shadow = Arc::new(ShadowStats::default());
        let inflight = Arc::new(Semaphore::new(config.max_concurrency));
        let numbers = crate::dual_write::numbers::Numbers::new(
            store.clone(),
            orders.clone(),
            config.order_number_block,
        );
        // The first creates should not wait for a reservation.
        numbers.refill_in_background();
        let sales_orders = Arc::new(SalesOrders {
            config: config.clone(),
            sap: sap.clone(),
            sap_client: sap_client.clone(),
            orders: orders.clone(),
            store: store.clone(),
            keys: keys.clone(),
            replay_wakeup: wakeup.clone(),
            boot_id,
            numbers,
            writes: tokio_util::task::TaskTracker::new(),
        });
        let state = Arc::new(ProxyState {
            config: config.clone(),
            sap: sap.clone(),
            routes: routes.clone(),
            sales_orders,
            inflight: inflight.clone(),
            orders: orders.clone(),
            shadow: shadow.clone(),
            sap_face: Arc::new(crate::face::session::SapFace::build(&config.sap_face)?),
        });
        let admin = AdminState {
            routes: routes.clone(),
            shared: shared.clone(),
            store: store.clone(),
            orders: orders.clone(),
            sap,
            order_upstream,
            token: config.admin_token.clone(),
            replay_wakeup: wakeup.clone(),
            reconciliation: Default::default(),
            shadow,
            sap_sync: config.sap_sync_url.clone().map(|base| {
                Arc::new(Upstream::new(UpstreamSettings {
                    name: "sap-sync",
                    base,
                    timeout: std::time::Duration::from_secs(5),
                    breaker_failures: u32::MAX,
                    breaker_cooldown: std::time::Duration::from_secs(1),
                    max_concurrency: 4,
                    tls: None,
                }))
            }),
            sap_sync_token: config.sap_sync_token.clone(),
            sap_sync_max_lag: config.sap_sync_max_lag,
            shadow_min_samples: config.shadow_min_samples,
            shadow_min_match_rate: config.shadow_min_match_rate,
            inflight,
            max_concurrency: config.max_concurrency,
            returns: Default::default(),
            return_poll: config.return_poll,
            console: Arc::new(crate::console::Console::new(
                config.order_service_url.clone(),
            )),
            insight: crate::insight::Insight {
                tail: config.event_tail.clone().map_or_else(
                    crate::insight::EventTail::disabled,
                    crate::insight::EventTail::start,
                ),
                sap: Some(sap_client.clone()),
            },
        };
        let worker = ReplayWorker {
            store,
            keys,
            orders,
            sap: sap_client,
            wakeup,
            base: config.replay_base,
            max: config.replay_max,
            poll: config.replay_poll,
            idempotency_ttl: config.idempotency_ttl,
            rejection_reasons: config.rejection_reasons.clone(),
        };
        let route_sync = shared.map(|shared| RouteSync {
            shared,
            table: routes,
        });
        if config.admin_token.is_none() {
            tracing::warn!("ADMIN_TOKEN is not set: every admin change will be refused");
        }
        Ok(Self {
            listener,
            admin_listener,
            state,
            admin,
            worker,
            route_sync,
            config,
        })
    }

    /// The client-facing address actually bound.
    pub fn address(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// The admin address actually bound.
    pub fn admin_address(&self) -> SocketAddr {
        self.admin_listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Serves until `shutdown` fires, then drains.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(
            listen = %self.address(),
            admin = %self.admin_address(),
            sap = %self.config.sap_url,
            sap_tls = self.config.sap_tls.is_some(),
            lean_path = self.config.fast_path,
            order_service = %self.config.order_service_url,
            "proxy started"
        );
        let returner = tokio::spawn(
            admin::Returner {
                state: self.admin.clone(),
            }
            .run(shutdown.clone()),
        );
        let sampler = tokio::spawn(crate::console::series::run(
            self.admin.console.history.clone(),
            shutdown.clone(),
        ));
        let tail = self.admin.insight.tail.clone();
        let admin_router = admin::router(self.admin);
        let admin_shutdown = shutdown.clone();
        let admin_task = tokio::spawn(async move {
            axum::serve(
                self.admin_listener,
                admin_router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move { admin_shutdown.cancelled().await })
            .await
        });
        let worker_task = tokio::spawn(self.worker.run(shutdown.clone()));
        let sync_task = self
            .route_sync
            .map(|sync| tokio::spawn(sync.run(shutdown.clone())));
        serve_on_workers(self.listener, self.state, shutdown, &self.config).await?;
        tail.stop();
        let _ = worker_task.await;
        let _ = returner.await;
        let _ = sampler.await;
        if let Some(t) = sync_task {
            let _ = t.await;
        }
        admin_task.await??;
        tracing::info!("proxy stopped");
        Ok(())
    }
}

/// Binds the client-facing listener, with `SO_REUSEPORT` when several workers will share the
/// port.
fn bind_client_listener(addr: SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if reuse_port {
        socket.set_reuseport(true)?;
    }
    socket.bind(addr)?;
    socket.listen(1024)
}

/// How often a worker's timer anchor fires (see [`timer_anchor`]).
const TIMER_ANCHOR_PERIOD: Duration = Duration::from_millis(250);

/// Keeps a near timer registered on the worker's event loop at all times.
///
/// Every request arms timers (hyper's header-read timeout, the upstream timeout) and most are
/// cancelled milliseconds later. Tokio wakes its own event loop through an eventfd whenever a
/// new timer is due earlier than the earliest one it knows, which with no other timer
/// registered is every new one: one `write` to the eventfd, plus the `epoll_wait` and `read`
/// it causes, for about one request in four (measured with `perf` under the throughput
/// bench). With this anchor due within 250 ms, a request's multi-second timers are never the
/// earliest, and arming them costs no system call. Four wake-ups a second per worker.
async fn timer_anchor(shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(TIMER_ANCHOR_PERIOD) => {}
        }
    }
}

/// Thread per core, like nginx's worker processes: each worker thread runs its own
/// single-threaded event loop accepting from the shared listener, and uses its own upstream
/// connection pools. A request never hops threads, which on a small machine saves the
/// cross-thread wake-ups a work-stealing scheduler pays on every proxied request. Shared state
/// (routes, breakers, concurrency limits, the replay log) is the same for all workers.
async fn serve_on_workers(
    listener: TcpListener,
    state: Arc<ProxyState>,
    shutdown: CancellationToken,
    config: &ProxyConfig,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let mut first = Some(listener.into_std()?);
    let mut threads = Vec::with_capacity(config.workers);
    for index in 0..config.workers {
        let own = first.take();
        let state = state.clone();
        let shutdown = shutdown.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("proxy-worker-{index}"))
                .spawn(move || -> anyhow::Result<()> {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    rt.block_on(async move {
                        // Worker 0 keeps the socket bound at build time; the others bind their
                        // own to the same port with SO_REUSEPORT, so the kernel spreads new
                        // connections evenly over the workers (one shared socket lets whichever
                        // thread wakes first take every connection of a burst).
                        let listener = match own {
                            Some(l) => TcpListener::from_std(l)?,
                            None => bind_client_listener(addr, true)?,
                        };
                        tokio::spawn(timer_anchor(shutdown.clone()));
                        server::serve(listener, state, shutdown).await;
                        anyhow::Ok(())
                    })
                })?,
        );
    }
    tokio::task::spawn_blocking(move || {
        for t in threads {
            match t.join() {
                Ok(Err(e)) => tracing::error!(error = %e, "proxy worker failed"),
                Err(_) => tracing::error!("proxy worker panicked"),
                Ok(Ok(())) => {}
            }
        }
    })
    .await?;
    Ok(())
}
