//! State shared by several proxy replicas, in PostgreSQL (`PROXY_STATE_DATABASE_URL`): the
//! route table with its audit trail, a heartbeat per replica, and the idempotency keys.
//!
//! Without that variable none of this runs and each proxy keeps its state in its data folder
//! (`routes.json`, `routes-audit.jsonl`, `proxy.redb`), as a single proxy always did. The
//! replay log and the reserved order numbers stay local in either case: the replay log is each
//! replica's durable promise on its own volume, and each replica reserves its own numbers from
//! the order service (blocks never overlap).
//!
//! # How a switch reaches every replica
//!
//! A change is one transaction on the route's row (`SELECT ... FOR UPDATE`, the audit row, the
//! new row with its `version` bumped, `pg_notify`), decided by the replica that received the
//! admin call (readiness as for one proxy). On commit every replica's [`RouteSync`] task hears
//! the notification on its own `LISTEN` connection, re-reads the (few) route rows and installs
//! what is newer than what it has into its in-memory [`RouteTable`], bumping the generation: the
//! request path keeps reading its per-thread cache and never calls the database. A periodic
//! re-read (`PROXY_STATE_SYNC_MS`, default 2 s) and a re-read after every reconnect of the
//! listener cover a lost notification. The receiving replica installs its own change at once.
//!
//! Each replica writes a heartbeat row (`proxy_replicas`: id, name, addresses, the mode and
//! version of each route it runs, its table generation, `seen_at`) on every sync, listed by
//! `GET /admin/v1/replicas` with whether each is alive and current.
//!
//! # When the database is unreachable
//!
//! Replicas keep serving the modes they last installed (also written to `routes.json`);
//! switches are refused with 503 (the transaction cannot commit, so no replica changes); creates
//! that carry an idempotency key (or a configured natural key) are refused with 500, as with a
//! failing local store, since no replica could tell whether another took the same key. At start
//! the database must be reachable (the proxy exits otherwise and is restarted).
//!
//! # Idempotency keys across replicas
//!
//! A claim inserts the key's record with `INSERT ... ON CONFLICT DO NOTHING`; when the key
//! exists it reads the row `FOR UPDATE` and decides as the local store does
//! ([`decide_claim`]): a finished key answers what was stored (with its order number); a key in
//! flight on a replica that is alive (its heartbeat is fresh, and the attempt is younger than
//! [`IN_FLIGHT_LIMIT`]) is in progress (409, as a duplicate in flight on one proxy); one in
//! flight on a replica that is gone is retried under the same order number, so SAP refuses a
//! second create and the order service's create (idempotent by number) makes none either.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgListener, PgPoolOptions};
use tokio_util::sync::CancellationToken;

use crate::dual_write::store::{
    Claim, IdemRecord, IdemState, StoreError, StoredResponse, decide_claim,
};
use crate::routing::routes::{AuditEntry, Route, RouteChange, RouteError, RouteTable};

/// The channel a committed route change is announced on (payload: the route's name).
const CHANNEL: &str = "proxy_routes";

/// An attempt in flight longer than this is taken for lost even while its replica lives
/// (far beyond any SAP or order-service timeout): a retry of its key goes ahead.
pub const IN_FLIGHT_LIMIT: Duration = Duration::from_secs(600);

/// Heartbeat rows not seen for this long are removed.
const FORGET_REPLICA_AFTER: Duration = Duration::from_secs(3600);

/// Who this replica is, as its heartbeat names it.
#[derive(Debug, Clone)]
pub struct ReplicaIdentity {
    /// Unique per process (the boot id that marks its idempotency keys in flight).
    pub id: String,
    /// Operator-facing name (`PROXY_REPLICA_NAME`, default the host name).
    pub name: String,
    /// Client-facing address as bound.
    pub address: String,
    /// Admin address as bound.
    pub admin_address: String,
}

/// The shared state store: a connection pool and this replica's identity.
pub struct SharedState {
    pool: PgPool,
    me: ReplicaIdentity,
    sync_every: Duration,
    /// The runtime the pool's connections live on. Creates run on the worker threads' own
    /// event loops; their key calls are run here, so a connection is never driven by a
    /// runtime other than the one it was opened on.
    home: tokio::runtime::Handle,
    /// The version of each route as installed here: an older read never overwrites a newer
    /// change.
    versions: Mutex<HashMap<String, i64>>,
}

impl std::fmt::Debug for SharedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedState")
            .field("replica", &self.me.id)
            .finish_non_exhaustive()
    }
}

fn shared(e: impl std::fmt::Display) -> RouteError {
    RouteError::SharedState(e.to_string())
}

fn key_store(e: impl std::fmt::Display) -> StoreError {
    StoreError::other(format!("shared state database: {e}"))
}

/// One replica as its heartbeat shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaView {
    /// Process id ([`ReplicaIdentity::id`]).
    pub replica_id: String,
    /// Name.
    pub name: String,
    /// Client-facing address.
    pub address: String,
    /// Admin address.
    pub admin_address: String,
    /// Mode per route it runs.
    pub modes: BTreeMap<String, String>,
    /// Version per route it runs.
    pub versions: BTreeMap<String, i64>,
    /// Its route table's generation (local counter).
    pub generation: i64,
    /// When it started.
    pub started_at: chrono::DateTime<Utc>,
    /// When it last wrote its heartbeat.
    pub seen_at: chrono::DateTime<Utc>,
    /// Seconds since then (by the database's clock).
    pub seen_seconds_ago: f64,
    /// Whether its heartbeat is fresh.
    pub alive: bool,
    /// Alive, and running every route at the version the shared table holds.
    pub current: bool,
    /// The replica that answered.
    pub this: bool,
}

impl SharedState {
    /// Connects, creates the proxy's tables if missing (under an advisory lock, so replicas
    /// starting at once do not race on the catalog) and returns the store.
    pub async fn connect(
        url: &str,
        me: ReplicaIdentity,
        sync_every: Duration,
    ) -> Result<Arc<Self>, sqlx::Error> {
        let pool = PgPoolOptions::new()
            .max_connections(6)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        create_tables(&pool).await?;
        Ok(Arc::new(Self {
            pool,
            me,
            sync_every,
            home: tokio::runtime::Handle::current(),
            versions: Mutex::new(HashMap::new()),
        }))
    }

    /// This replica's id.
    pub fn replica_id(&self) -> &str {
        &self.me.id
    }

    /// How long a heartbeat stays fresh: three sync periods, at least 3 s.
    fn liveness(&self) -> Duration {
        (self.sync_every * 3).max(Duration::from_secs(3))
    }

    /// Adopts the shared table at start: routes missing there are seeded from the local table
    /// (its file, or the configured initial mode on a first start), then the shared rows are
    /// installed locally. So the first replica decides the initial modes, and a replica that
    /// starts after a switch comes up in the switched mode.
    pub async fn adopt_routes(&self, table: &RouteTable) -> Result<(), RouteError> {
        for r in table.list() {
            sqlx::query(
                "INSERT INTO proxy_routes (name, route, version) VALUES ($1, $2, 1) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(&r.name)
            .bind(serde_json::to_value(&r)?)
            .execute(&self.pool)
            .await
            .map_err(shared)?;
        }
        self.reload(table).await
    }

    /// Reads every route row and installs what is newer than what this replica runs.
    pub async fn reload(&self, table: &RouteTable) -> Result<(), RouteError> {
        let rows: Vec<(Value, i64)> = sqlx::query_as("SELECT route, version FROM proxy_routes")
            .fetch_all(&self.pool)
            .await
            .map_err(shared)?;
        for (route, version) in rows {
            let route: Route = serde_json::from_value(route)?;
            self.install(table, route, version)?;
        }
        Ok(())
    }

    fn install(&self, table: &RouteTable, route: Route, version: i64) -> Result<(), RouteError> {
        let mut versions = self.versions.lock().expect("versions lock poisoned");
        if versions.get(&route.name).is_some_and(|v| *v >= version) {
            return Ok(());
        }
        let name = route.name.clone();
        if table.install(route)? {
            tracing::info!(route = %name, version, "route change installed from the shared state");
        }
        versions.insert(name, version);
        Ok(())
    }

    /// Applies one change in a transaction on the route's row, announces it to every replica
    /// and installs it here. `None`: nothing to change (the row said otherwise).
    pub async fn apply(
        &self,
        table: &RouteTable,
        route: &str,
        who: &str,
        forced: bool,
        change: RouteChange,
    ) -> Result<Option<(Route, Route)>, RouteError> {
        let mut tx = self.pool.begin().await.map_err(shared)?;
        let row: Option<(Value, i64)> =
            sqlx::query_as("SELECT route, version FROM proxy_routes WHERE name = $1 FOR UPDATE")
                .bind(route)
                .fetch_optional(&mut *tx)
                .await
                .map_err(shared)?;
        let Some((current, version)) = row else {
            return Err(RouteError::UnknownRoute(route.to_owned()));
        };
        let mut r: Route = serde_json::from_value(current)?;
        let old = r.clone();
        let Some((from, to)) = change.apply_to(&mut r, who) else {
            tx.rollback().await.map_err(shared)?;
            // What the row holds is at least as new as what this replica runs.
            self.install(table, old, version)?;
            return Ok(None);
        };
        let now = Utc::now();
        if change.bumps_updated_at() {
            r.updated_at = now;
            r.updated_by = who.to_owned();
        }
        let entry = AuditEntry {
            at: now,
            route: route.to_owned(),
            who: who.to_owned(),
            field: change.field().to_owned(),
            from,
            to,
            forced,
        };
        sqlx::query("INSERT INTO proxy_route_audit (route, entry, replica_id) VALUES ($1, $2, $3)")
            .bind(route)
            .bind(serde_json::to_value(&entry)?)
            .bind(&self.me.id)
            .execute(&mut *tx)
            .await
            .map_err(shared)?;
        let (version,): (i64,) = sqlx::query_as(
            "UPDATE proxy_routes SET route = $2, version = version + 1, updated_at = now() \
             WHERE name = $1 RETURNING version",
        )
        .bind(route)
        .bind(serde_json::to_value(&r)?)
        .fetch_one(&mut *tx)
        .await
        .map_err(shared)?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(route)
            .execute(&mut *tx)
            .await
            .map_err(shared)?;
        tx.commit().await.map_err(shared)?;
        self.install(table, r.clone(), version)?;
        self.heartbeat(table).await;
        Ok(Some((old, r)))
    }

    /// The audit trail of `route`, oldest first.
    pub async fn audit(&self, route: &str) -> Result<Vec<AuditEntry>, RouteError> {
        let rows: Vec<(Value,)> =
            sqlx::query_as("SELECT entry FROM proxy_route_audit WHERE route = $1 ORDER BY id")
                .bind(route)
                .fetch_all(&self.pool)
                .await
                .map_err(shared)?;
        rows.into_iter()
            .map(|(e,)| serde_json::from_value(e).map_err(RouteError::from))
            .collect()
    }

    /// Writes this replica's heartbeat (failures are logged: the next sync tries again).
    pub async fn heartbeat(&self, table: &RouteTable) {
        let versions = self
            .versions
            .lock()
            .expect("versions lock poisoned")
            .clone();
        let modes: BTreeMap<String, Value> = table
            .list()
            .into_iter()
            .map(|r| {
                let v = versions.get(&r.name).copied();
                (r.name.clone(), json!({"mode": r.mode, "version": v}))
            })
            .collect();
        let written = sqlx::query(
            "INSERT INTO proxy_replicas \
               (replica_id, name, address, admin_address, modes, generation, started_at, seen_at) \
             VALUES ($1, $2, $3, $4, $5, $6, now(), now()) \
             ON CONFLICT (replica_id) DO UPDATE SET modes = EXCLUDED.modes, \
               generation = EXCLUDED.generation, seen_at = now()",
        )
        .bind(&self.me.id)
        .bind(&self.me.name)
        .bind(&self.me.address)
        .bind(&self.me.admin_address)
        .bind(json!(modes))
        .bind(i64::try_from(table.generation()).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await;
        if let Err(e) = written {
            tracing::warn!(error = %e, "shared state: heartbeat failed");
            return;
        }
        let _ = sqlx::query(
            "DELETE FROM proxy_replicas WHERE seen_at < now() - make_interval(secs => $1)",
        )
        .bind(FORGET_REPLICA_AFTER.as_secs_f64())
        .execute(&self.pool)
        .await;
    }

    /// Every replica's heartbeat, with whether it is alive and runs the shared table's versions.
    pub async fn replicas(&self) -> Result<Vec<ReplicaView>, RouteError> {
        let routes: Vec<(String, i64)> = sqlx::query_as("SELECT name, version FROM proxy_routes")
            .fetch_all(&self.pool)
            .await
            .map_err(shared)?;
        type Row = (
            String,
            String,
            String,
            String,
            Value,
            i64,
            chrono::DateTime<Utc>,
            chrono::DateTime<Utc>,
            f64,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT replica_id, name, address, admin_address, modes, generation, started_at, \
                    seen_at, extract(epoch from now() - seen_at)::float8 \
             FROM proxy_replicas ORDER BY started_at, replica_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(shared)?;
        let liveness = self.liveness().as_secs_f64();
        Ok(rows
            .into_iter()
            .map(
                |(
                    id,
                    name,
                    address,
                    admin_address,
                    modes,
                    generation,
                    started_at,
                    seen_at,
                    ago,
                )| {
                    let mut mode_of = BTreeMap::new();
                    let mut version_of = BTreeMap::new();
                    if let Some(m) = modes.as_object() {
                        for (route, v) in m {
                            if let Some(mode) = v["mode"].as_str() {
                                mode_of.insert(route.clone(), mode.to_owned());
                            }
                            if let Some(version) = v["version"].as_i64() {
                                version_of.insert(route.clone(), version);
                            }
                        }
                    }
                    let alive = ago <= liveness;
                    let current = alive
                        && routes
                            .iter()
                            .all(|(route, v)| version_of.get(route) == Some(v));
                    ReplicaView {
                        this: id == self.me.id,
                        replica_id: id,
                        name,
                        address,
                        admin_address,
                        modes: mode_of,
                        versions: version_of,
                        generation,
                        started_at,
                        seen_at,
                        seen_seconds_ago: ago,
                        alive,
                        current,
                    }
                },
            )
            .collect())
    }

    /// Runs `f` on the runtime the pool lives on (see [`SharedState::home`]).
    async fn at_home<T: Send + 'static>(
        &self,
        f: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.home
            .spawn(f)
            .await
            .map_err(|e| key_store(format!("task failed: {e}")))?
    }

    /// Claims `key` for a new attempt, shared by every replica (see the module's docs).
    pub async fn claim_key(
        &self,
        key: String,
        fingerprint: String,
        boot_id: String,
        number: Option<String>,
    ) -> Result<(Claim, Option<String>), StoreError> {
        let pool = self.pool.clone();
        let liveness = self.liveness();
        self.at_home(async move {
            claim_key(&pool, liveness, key, fingerprint, boot_id, number)
                .await
                .map_err(key_store)
        })
        .await
    }

    /// Records the end of an attempt (see [`crate::dual_write::store::Store::finish_key`]).
    pub async fn finish_key(
        &self,
        key: String,
        fingerprint: String,
        attempt: u32,
        response: Option<StoredResponse>,
        number: Option<String>,
    ) -> Result<(), StoreError> {
        let pool = self.pool.clone();
        self.at_home(async move {
            let rec = IdemRecord::finished(fingerprint, attempt, response, number);
            sqlx::query(
                "INSERT INTO proxy_idempotency (key, record, in_flight, created_at) \
                 VALUES ($1, $2, false, $3) \
                 ON CONFLICT (key) DO UPDATE SET record = EXCLUDED.record, in_flight = false, \
                   created_at = EXCLUDED.created_at",
            )
            .bind(&key)
            .bind(serde_json::to_value(&rec).map_err(key_store)?)
            .bind(rec.created_at)
            .execute(&pool)
            .await
            .map_err(key_store)?;
            Ok(())
        })
        .await
    }

    /// Forgets `number` on the key's record (see
    /// [`crate::dual_write::store::Store::release_key_number`]).
    pub async fn release_key_number(
        &self,
        key: String,
        number: String,
    ) -> Result<bool, StoreError> {
        let pool = self.pool.clone();
        self.at_home(async move {
            let mut tx = pool.begin().await.map_err(key_store)?;
            let row: Option<(Value,)> =
                sqlx::query_as("SELECT record FROM proxy_idempotency WHERE key = $1 FOR UPDATE")
                    .bind(&key)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(key_store)?;
            let rec: Option<IdemRecord> = row.and_then(|(v,)| serde_json::from_value(v).ok());
            let released = match rec {
                Some(mut r) if r.number.as_deref() == Some(number.as_str()) => {
                    if matches!(r.state, IdemState::Unknown) {
                        r.number = None;
                        sqlx::query("UPDATE proxy_idempotency SET record = $2 WHERE key = $1")
                            .bind(&key)
                            .bind(serde_json::to_value(&r).map_err(key_store)?)
                            .execute(&mut *tx)
                            .await
                            .map_err(key_store)?;
                        true
                    } else {
                        false
                    }
                }
                _ => true,
            };
            tx.commit().await.map_err(key_store)?;
            Ok(released)
        })
        .await
    }

    /// Removes finished records older than `ttl`; keys in flight stay.
    pub async fn expire_keys(&self, ttl: chrono::Duration) -> Result<usize, StoreError> {
        let pool = self.pool.clone();
        self.at_home(async move {
            let done = sqlx::query(
                "DELETE FROM proxy_idempotency WHERE NOT in_flight AND created_at < $1",
            )
            .bind(Utc::now() - ttl)
            .execute(&pool)
            .await
            .map_err(key_store)?;
            Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
        })
        .await
    }
}

async fn create_tables(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    // Two replicas starting at once would race on the catalog with `IF NOT EXISTS` alone.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('proxy_shared_state_schema'))")
        .execute(&mut *tx)
        .await?;
    for ddl in [
        "CREATE TABLE IF NOT EXISTS proxy_routes (
            name TEXT PRIMARY KEY,
            route JSONB NOT NULL,
            version BIGINT NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        "CREATE TABLE IF NOT EXISTS proxy_route_audit (
            id BIGSERIAL PRIMARY KEY,
            route TEXT NOT NULL,
            entry JSONB NOT NULL,
            replica_id TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS proxy_route_audit_route ON proxy_route_audit (route, id)",
        "CREATE TABLE IF NOT EXISTS proxy_replicas (
            replica_id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            address TEXT NOT NULL,
            admin_address TEXT NOT NULL,
            modes JSONB NOT NULL,
            generation BIGINT NOT NULL,
            started_at TIMESTAMPTZ NOT NULL,
            seen_at TIMESTAMPTZ NOT NULL)",
        "CREATE TABLE IF NOT EXISTS proxy_idempotency (
            key TEXT PRIMARY KEY,
            record JSONB NOT NULL,
            in_flight BOOLEAN NOT NULL,
            created_at TIMESTAMPTZ NOT NULL)",
        "CREATE INDEX IF NOT EXISTS proxy_idempotency_expiry \
            ON proxy_idempotency (created_at) WHERE NOT in_flight",
    ] {
        sqlx::query(ddl).execute(&mut *tx).await?;
    }
    tx.commit().await
}

async fn claim_key(
    pool: &PgPool,
    liveness: Duration,
    key: String,
    fingerprint: String,
    boot_id: String,
    number: Option<String>,
) -> Result<(Claim, Option<String>), sqlx::Error> {
    let in_flight = |attempt: u32, number: Option<String>| IdemRecord {
        fingerprint: fingerprint.clone(),
        state: IdemState::InFlight {
            boot_id: boot_id.clone(),
        },
        created_at: Utc::now(),
        attempt,
        number,
    };
    let encode =
        |r: &IdemRecord| serde_json::to_value(r).map_err(|e| sqlx::Error::Encode(e.into()));
    // A record expired between the insert and the read: insert again (bounded).
    for _ in 0..3 {
        let mut tx = pool.begin().await?;
        let fresh = in_flight(0, number.clone());
        let inserted = sqlx::query(
            "INSERT INTO proxy_idempotency (key, record, in_flight, created_at) \
             VALUES ($1, $2, true, $3) ON CONFLICT (key) DO NOTHING",
        )
        .bind(&key)
        .bind(encode(&fresh)?)
        .bind(fresh.created_at)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 1 {
            tx.commit().await?;
            return Ok((Claim::Fresh, number));
        }
        let row: Option<(Value,)> =
            sqlx::query_as("SELECT record FROM proxy_idempotency WHERE key = $1 FOR UPDATE")
                .bind(&key)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((record,)) = row else {
            tx.rollback().await?;
            continue;
        };
        let existing: Option<IdemRecord> = serde_json::from_value(record).ok();
        // Whether the attempt in flight still runs: here, or on a replica that is alive.
        let running = match &existing {
            Some(IdemRecord {
                state: IdemState::InFlight { boot_id: b },
                created_at,
                ..
            }) => {
                let young = Utc::now() - *created_at
                    < chrono::Duration::from_std(IN_FLIGHT_LIMIT).unwrap_or_default();
                let alive = *b == boot_id || {
                    let seen: Option<(bool,)> = sqlx::query_as(
                        "SELECT seen_at > now() - make_interval(secs => $2) \
                         FROM proxy_replicas WHERE replica_id = $1",
                    )
                    .bind(b)
                    .bind(liveness.as_secs_f64())
                    .fetch_optional(&mut *tx)
                    .await?;
                    seen.is_some_and(|(alive,)| alive)
                };
                young && alive
            }
            _ => false,
        };
        let (claim, number, attempt) = decide_claim(existing, &fingerprint, number, |_| running);
        if let Some(attempt) = attempt {
            let rec = in_flight(attempt, number.clone());
            sqlx::query(
                "UPDATE proxy_idempotency SET record = $2, in_flight = true, created_at = $3 \
                 WHERE key = $1",
            )
            .bind(&key)
            .bind(encode(&rec)?)
            .bind(rec.created_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        return Ok((claim, number));
    }
    Err(sqlx::Error::Protocol(
        "an idempotency record kept vanishing while claimed".into(),
    ))
}

/// Keeps this replica's route table in step with the shared one and writes its heartbeat:
/// `LISTEN` for changes, a periodic re-read as backstop and after every reconnect.
pub struct RouteSync {
    /// The shared store.
    pub shared: Arc<SharedState>,
    /// The table the request path reads.
    pub table: RouteTable,
}

impl RouteSync {
    /// Runs until `shutdown`. The heartbeat row stays behind (it goes stale): a replica that
    /// drains is still finishing creates whose keys it holds in flight.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut listener: Option<PgListener> = None;
        let mut tick = tokio::time::interval(self.shared.sync_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if listener.is_none() {
                listener = self.listen().await;
                if listener.is_some() {
                    // Whatever was announced while no one listened.
                    self.sync().await;
                }
            }
            let heard = tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => None,
                heard = async {
                    match listener.as_mut() {
                        Some(l) => l.try_recv().await,
                        None => std::future::pending().await,
                    }
                } => Some(heard),
            };
            match heard {
                // The period, a change announced, or a lost connection (it reconnects, and
                // what it missed is re-read).
                None | Some(Ok(_)) => self.sync().await,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "shared state: route listener failed; re-reading every sync period");
                    listener = None;
                }
            }
        }
    }

    async fn listen(&self) -> Option<PgListener> {
        let mut l = match PgListener::connect_with(&self.shared.pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "shared state: cannot open the route listener");
                return None;
            }
        };
        match l.listen(CHANNEL).await {
            Ok(()) => Some(l),
            Err(e) => {
                tracing::warn!(error = %e, "shared state: LISTEN failed");
                None
            }
        }
    }

    async fn sync(&self) {
        if let Err(e) = self.shared.reload(&self.table).await {
            tracing::warn!(error = %e, "shared state: re-reading the routes failed; serving the last known modes");
        }
        self.shared.heartbeat(&self.table).await;
    }
}
