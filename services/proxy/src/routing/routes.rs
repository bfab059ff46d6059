//! The route table: which migration mode each route is in, persisted and audited.
//!
//! A route names a group of operations on one SAP entity (today only `sales-orders`: the
//! `A_SalesOrder` create and reads). Each request takes a *snapshot* of its route's mode when it
//! starts and finishes in that mode, so a switch never disturbs a request in flight; the next
//! request sees the new mode. There is no restart and no drain.
//!
//! The table lives in `routes.json` under the data folder (written to a temporary file, fsynced
//! and renamed, so a crash leaves either the old or the new table). Every change appends one
//! line to `routes-audit.jsonl` (who, when, from, to, forced) before it takes effect.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The name of the sales order route (fixed by `ARCHITECTURE.md`).
pub const SALES_ORDERS: &str = "sales-orders";

/// Migration mode of a route, in phase order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Phase 1: SAP only, pass-through.
    Legacy,
    /// Phase 2: SAP and the order service written in parallel; SAP is the system of record.
    DualWrite,
    /// Phase 3: the order service only; SAP fed from Kafka by `sap-sync`.
    Events,
    /// Phase 4: the order service only; SAP no longer fed.
    Retired,
}

impl Mode {
    /// The wire name (`legacy`, `dual-write`, `events`, `retired`).
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Legacy => "legacy",
            Mode::DualWrite => "dual-write",
            Mode::Events => "events",
            Mode::Retired => "retired",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "legacy" => Ok(Mode::Legacy),
            "dual-write" => Ok(Mode::DualWrite),
            "events" => Ok(Mode::Events),
            "retired" => Ok(Mode::Retired),
            other => Err(format!(
                "unknown mode {other:?} (expected legacy, dual-write, events or retired)"
            )),
        }
    }
}

/// What a dual write does when SAP is unavailable but the order service took the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SapUnavailablePolicy {
    /// Answer with an OData 502/504 and void the new order (default).
    Strict,
    /// Answer 201 with a legacy-shaped body and replay the SAP write later.
    StoreAndForward,
}

impl FromStr for SapUnavailablePolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "strict" => Ok(Self::Strict),
            "store-and-forward" => Ok(Self::StoreAndForward),
            other => Err(format!(
                "unknown policy {other:?} (expected strict or store-and-forward)"
            )),
        }
    }
}

/// One route's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Route name.
    pub name: String,
    /// Current mode.
    pub mode: Mode,
    /// SAP-unavailable policy for dual writes.
    pub policy: SapUnavailablePolicy,
    /// When the mode or policy last changed.
    pub updated_at: DateTime<Utc>,
    /// Who changed it last (`config` at first start).
    pub updated_by: String,
    /// A switch back from `retired` in progress: the mode the route returns to once sap-sync
    /// has brought SAP up to date. Until then the route keeps serving as `retired` (see
    /// `admin::Returner`). Persisted, so a restarted proxy goes on with the return.
    #[serde(default)]
    pub returning_to: Option<Mode>,
    /// When the return was asked for.
    #[serde(default)]
    pub returning_since: Option<DateTime<Utc>>,
    /// Who asked for it.
    #[serde(default)]
    pub returning_by: Option<String>,
}

/// One audited change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Which route.
    pub route: String,
    /// Who (the actor named by the admin caller, plus its address).
    pub who: String,
    /// What changed (`mode`, `policy`, or `returning_to` for a return from `retired` begun,
    /// retargeted or cancelled; `none` stands for no return).
    pub field: String,
    /// Old value.
    pub from: String,
    /// New value.
    pub to: String,
    /// Whether readiness criteria were overridden.
    pub forced: bool,
}

/// One change of a route, the same whether the local table or the shared state database
/// holds it (see [`RouteChange::apply_to`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteChange {
    /// Set the mode (ends a return in progress).
    Mode(Mode),
    /// Begin or retarget a return from `retired`.
    BeginReturn(Mode),
    /// Cancel a return in progress.
    CancelReturn,
    /// Complete a return, only while the route still returns to this mode.
    CompleteReturn(Mode),
    /// Set the SAP-unavailable policy.
    Policy(SapUnavailablePolicy),
}

impl RouteChange {
    /// The audited field.
    pub fn field(self) -> &'static str {
        match self {
            RouteChange::Mode(_) | RouteChange::CompleteReturn(_) => "mode",
            RouteChange::BeginReturn(_) | RouteChange::CancelReturn => "returning_to",
            RouteChange::Policy(_) => "policy",
        }
    }

    /// Whether the change moves `updated_at` (a return in progress does not: the route is
    /// still in its phase).
    pub fn bumps_updated_at(self) -> bool {
        !matches!(
            self,
            RouteChange::BeginReturn(_) | RouteChange::CancelReturn
        )
    }

    /// Edits `r` and names what changed as `(from, to)`; `None`: nothing to change.
    /// `updated_at`/`updated_by` are the caller's (see [`RouteChange::bumps_updated_at`]).
    pub fn apply_to(self, r: &mut Route, who: &str) -> Option<(String, String)> {
        match self {
            RouteChange::Mode(mode) => {
                let from = r.mode.to_string();
                r.mode = mode;
                clear_return(r);
                Some((from, mode.to_string()))
            }
            RouteChange::BeginReturn(to) => {
                let from = return_name(r.returning_to);
                r.returning_to = Some(to);
                r.returning_since = Some(Utc::now());
                r.returning_by = Some(who.to_owned());
                Some((from, to.to_string()))
            }
            RouteChange::CancelReturn => {
                let from = return_name(r.returning_to);
                clear_return(r);
                Some((from, return_name(None)))
            }
            RouteChange::CompleteReturn(to) => {
                if r.returning_to != Some(to) {
                    return None;
                }
                let from = r.mode.to_string();
                r.mode = to;
                clear_return(r);
                Some((from, to.to_string()))
            }
            RouteChange::Policy(policy) => {
                let from = policy_name(r.policy);
                r.policy = policy;
                Some((from.to_owned(), policy_name(policy).to_owned()))
            }
        }
    }
}

/// Errors of the route table.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// No such route.
    #[error("route {0:?} does not exist")]
    UnknownRoute(String),
    /// The file could not be read or written.
    #[error("route table storage failed: {0}")]
    Storage(#[from] std::io::Error),
    /// The file exists but does not parse.
    #[error("route table file is corrupt: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// The shared state database could not be reached or refused the change: nothing changed
    /// (the replicas keep serving the modes they have).
    #[error("shared route state unavailable: {0}")]
    SharedState(String),
}

#[derive(Debug, Serialize, Deserialize)]
struct RouteFile {
    routes: BTreeMap<String, Route>,
}

/// The live, persisted route table.
#[derive(Debug, Clone)]
pub struct RouteTable {
    inner: Arc<RouteTableInner>,
}

static NEXT_TABLE_ID: AtomicU64 = AtomicU64::new(1);

/// A route's mode as a thread last read it.
struct CachedMode {
    table: u64,
    generation: u64,
    route: String,
    mode: Option<Mode>,
}

thread_local! {
    static MODE_CACHE: RefCell<Vec<CachedMode>> = const { RefCell::new(Vec::new()) };
}

#[derive(Debug)]
struct RouteTableInner {
    /// Routes behind `Arc`s: a per-request snapshot is a reference count, not a copy.
    routes: RwLock<BTreeMap<String, Arc<Route>>>,
    /// Serialises changes so file order and memory order agree.
    write_lock: Mutex<()>,
    /// Identifies this table in the per-thread mode caches.
    id: u64,
    /// Bumped after every change: a thread's cached modes are current while it is unchanged.
    generation: AtomicU64,
    file: PathBuf,
    audit_file: PathBuf,
}

impl RouteTable {
    /// Loads `routes.json` from `data_dir`, or creates it with `sales-orders` in the given
    /// initial mode and policy.
    pub fn open(
        data_dir: &Path,
        initial_mode: Mode,
        initial_policy: SapUnavailablePolicy,
    ) -> Result<Self, RouteError> {
        std::fs::create_dir_all(data_dir)?;
        let file = data_dir.join("routes.json");
        let audit_file = data_dir.join("routes-audit.jsonl");
        let mut routes = if file.exists() {
            serde_json::from_slice::<RouteFile>(&std::fs::read(&file)?)?.routes
        } else {
            BTreeMap::new()
        };
        let missing = !routes.contains_key(SALES_ORDERS);
        if missing {
            routes.insert(
                SALES_ORDERS.to_owned(),
                Route {
                    name: SALES_ORDERS.to_owned(),
                    mode: initial_mode,
                    policy: initial_policy,
                    updated_at: Utc::now(),
                    updated_by: "config".to_owned(),
                    returning_to: None,
                    returning_since: None,
                    returning_by: None,
                },
            );
        }
        let table = Self {
            inner: Arc::new(RouteTableInner {
                routes: RwLock::new(routes.into_iter().map(|(k, v)| (k, Arc::new(v))).collect()),
                write_lock: Mutex::new(()),
                id: NEXT_TABLE_ID.fetch_add(1, Ordering::Relaxed),
                generation: AtomicU64::new(0),
                file,
                audit_file,
            }),
        };
        if missing {
            let routes = table.list();
            table.persist(&routes)?;
        }
        Ok(table)
    }

    /// The current mode of a route (the per-request snapshot).
    pub fn snapshot(&self, route: &str) -> Option<Arc<Route>> {
        self.inner
            .routes
            .read()
            .expect("route lock poisoned")
            .get(route)
            .cloned()
    }

    /// The current mode of a route, for the request path: served from a per-thread cache that
    /// is checked against the table's generation, so a request reads one shared counter and
    /// writes nothing shared (a snapshot takes the lock and counts a reference on every
    /// request, and on several cores those shared writes are what costs). A switch is seen by
    /// the next request on every thread.
    pub fn mode(&self, route: &str) -> Option<Mode> {
        let generation = self.inner.generation.load(Ordering::Acquire);
        let id = self.inner.id;
        MODE_CACHE.with(|cache| {
            let mut cache = cache.borrow_mut();
            if let Some(hit) = cache
                .iter()
                .find(|c| c.table == id && c.generation == generation && c.route == route)
            {
                return hit.mode;
            }
            let mode = self.snapshot(route).map(|r| r.mode);
            cache.retain(|c| !(c.table == id && c.route == route));
            cache.push(CachedMode {
                table: id,
                generation,
                route: route.to_owned(),
                mode,
            });
            mode
        })
    }

    /// Every route.
    pub fn list(&self) -> Vec<Route> {
        self.inner
            .routes
            .read()
            .expect("route lock poisoned")
            .values()
            .map(|r| Route::clone(r))
            .collect()
    }

    /// Sets a route's mode: audit line first, then the file, then memory. Returns the old and
    /// new route. Readiness is the caller's concern (see `admin`). A return in progress ends
    /// with it (the mode is set, whatever the return aimed at).
    pub fn set_mode(
        &self,
        route: &str,
        mode: Mode,
        who: &str,
        forced: bool,
    ) -> Result<(Route, Route), RouteError> {
        self.change(route, who, forced, RouteChange::Mode(mode))
    }

    /// Begins (or retargets) a return from `retired` to `to`: the route keeps its mode and
    /// records `returning_to`, audited. `updated_at` stays: the route is still in its phase.
    pub fn begin_return(
        &self,
        route: &str,
        to: Mode,
        who: &str,
    ) -> Result<(Route, Route), RouteError> {
        self.change(route, who, false, RouteChange::BeginReturn(to))
    }

    /// Cancels a return in progress: the route stays `retired`, audited.
    pub fn cancel_return(&self, route: &str, who: &str) -> Result<(Route, Route), RouteError> {
        self.change(route, who, false, RouteChange::CancelReturn)
    }

    /// Sets a route's SAP-unavailable policy, audited like a mode change.
    pub fn set_policy(
        &self,
        route: &str,
        policy: SapUnavailablePolicy,
        who: &str,
    ) -> Result<(Route, Route), RouteError> {
        self.change(route, who, false, RouteChange::Policy(policy))
    }

    fn change(
        &self,
        route: &str,
        who: &str,
        forced: bool,
        change: RouteChange,
    ) -> Result<(Route, Route), RouteError> {
        self.apply(route, who, forced, change)
            .map(|changed| changed.expect("an unconditional change always changes"))
    }

    /// Completes a return from `retired`: the mode becomes `to` and the return ends, but only
    /// while the route still returns to `to` (an operator may have cancelled or retargeted it
    /// since the caller looked). `None` when it no longer does.
    pub fn complete_return(
        &self,
        route: &str,
        to: Mode,
        who: &str,
    ) -> Result<Option<(Route, Route)>, RouteError> {
        self.apply(route, who, false, RouteChange::CompleteReturn(to))
    }

    /// Applies one [`RouteChange`] to the local table (file and memory), audited. `None`: the
    /// change had nothing to do (a completed return no longer asked for).
    pub fn apply(
        &self,
        route: &str,
        who: &str,
        forced: bool,
        change: RouteChange,
    ) -> Result<Option<(Route, Route)>, RouteError> {
        self.change_if(
            route,
            who,
            forced,
            change.field(),
            change.bumps_updated_at(),
            |r| change.apply_to(r, who),
        )
    }

    /// Puts `route` into the in-memory table as another replica (or the shared state
    /// database) decided it, and writes it to `routes.json` as the last known table (what a
    /// restart serves should the database be unreachable then). Nothing is audited here: the
    /// shared trail holds the change. Returns whether anything changed; the generation is
    /// bumped only then, so a periodic re-read costs the request path nothing.
    pub fn install(&self, route: Route) -> Result<bool, RouteError> {
        let _serial = self.inner.write_lock.lock().expect("route lock poisoned");
        let mut all: BTreeMap<String, Arc<Route>> = self
            .inner
            .routes
            .read()
            .expect("route lock poisoned")
            .clone();
        if all.get(&route.name).is_some_and(|r| **r == route) {
            return Ok(false);
        }
        all.insert(route.name.clone(), Arc::new(route));
        self.persist(&all.values().map(|r| Route::clone(r)).collect::<Vec<_>>())?;
        *self.inner.routes.write().expect("route lock poisoned") = all;
        self.inner.generation.fetch_add(1, Ordering::Release);
        Ok(true)
    }

    /// The table's generation: bumped by every change, local or installed.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// One change under the write lock: `apply` edits the route and names what changed
    /// (`None`: nothing to change, nothing written).
    fn change_if(
        &self,
        route: &str,
        who: &str,
        forced: bool,
        field: &str,
        bump_updated_at: bool,
        apply: impl FnOnce(&mut Route) -> Option<(String, String)>,
    ) -> Result<Option<(Route, Route)>, RouteError> {
        let _serial = self.inner.write_lock.lock().expect("route lock poisoned");
        let mut all: BTreeMap<String, Arc<Route>> = self
            .inner
            .routes
            .read()
            .expect("route lock poisoned")
            .clone();
        let current = Arc::make_mut(
            all.get_mut(route)
                .ok_or_else(|| RouteError::UnknownRoute(route.to_owned()))?,
        );
        let old = current.clone();
        let Some((from, to)) = apply(current) else {
            return Ok(None);
        };
        let now = Utc::now();
        if bump_updated_at {
            current.updated_at = now;
            current.updated_by = who.to_owned();
        }
        let new = current.clone();
        self.append_audit(&AuditEntry {
            at: now,
            route: route.to_owned(),
            who: who.to_owned(),
            field: field.to_owned(),
            from,
            to,
            forced,
        })?;
        self.persist(&all.values().map(|r| Route::clone(r)).collect::<Vec<_>>())?;
        *self.inner.routes.write().expect("route lock poisoned") = std::mem::take(&mut all);
        self.inner.generation.fetch_add(1, Ordering::Release);
        Ok(Some((old, new)))
    }

    /// The audit trail, oldest first.
    pub fn audit(&self) -> Result<Vec<AuditEntry>, RouteError> {
        let text = match std::fs::read_to_string(&self.inner.audit_file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).map_err(RouteError::from))
            .collect()
    }

    fn append_audit(&self, entry: &AuditEntry) -> Result<(), RouteError> {
        let mut line = serde_json::to_vec(entry)?;
        line.push(b'\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.inner.audit_file)?;
        f.write_all(&line)?;
        f.sync_data()?;
        Ok(())
    }

    fn persist(&self, routes: &[Route]) -> Result<(), RouteError> {
        let file = RouteFile {
            routes: routes.iter().map(|r| (r.name.clone(), r.clone())).collect(),
        };
        let tmp = self.inner.file.with_extension("json.tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&serde_json::to_vec_pretty(&file)?)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.inner.file)?;
        if let Some(dir) = self.inner.file.parent()
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

fn clear_return(r: &mut Route) {
    r.returning_to = None;
    r.returning_since = None;
    r.returning_by = None;
}

/// How the audit trail names a return target (`none` for no return).
fn return_name(to: Option<Mode>) -> String {
    to.map_or_else(|| "none".to_owned(), |m| m.to_string())
}

/// The wire name of a policy.
pub fn policy_name(p: SapUnavailablePolicy) -> &'static str {
    match p {
        SapUnavailablePolicy::Strict => "strict",
        SapUnavailablePolicy::StoreAndForward => "store-and-forward",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Removed when the test ends.
    fn temp_dir(tag: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("proxy-routes-{tag}-"))
            .tempdir()
            .unwrap()
    }

    #[test]
    fn a_mode_change_survives_reopening_and_is_audited_with_who_from_and_to() {
        let dir = temp_dir("persist");
        let table =
            RouteTable::open(dir.path(), Mode::Legacy, SapUnavailablePolicy::Strict).unwrap();
        table
            .set_mode(SALES_ORDERS, Mode::DualWrite, "alice@127.0.0.1", false)
            .unwrap();
        let reopened =
            RouteTable::open(dir.path(), Mode::Legacy, SapUnavailablePolicy::Strict).unwrap();
        let route = reopened.snapshot(SALES_ORDERS).unwrap();
        assert_eq!(route.mode, Mode::DualWrite);
        assert_eq!(route.updated_by, "alice@127.0.0.1");
        let audit = reopened.audit().unwrap();
        assert_eq!(audit.len(), 1);
        assert_eq!(
            (audit[0].from.as_str(), audit[0].to.as_str()),
            ("legacy", "dual-write")
        );
    }

    #[test]
    fn the_cached_mode_follows_every_switch_at_once_on_every_thread_and_per_table() {
        let (d1, d2) = (temp_dir("cache-1"), temp_dir("cache-2"));
        let t1 = RouteTable::open(d1.path(), Mode::Legacy, SapUnavailablePolicy::Strict).unwrap();
        let t2 = RouteTable::open(d2.path(), Mode::Events, SapUnavailablePolicy::Strict).unwrap();
        assert_eq!(t1.mode(SALES_ORDERS), Some(Mode::Legacy));
        assert_eq!(t2.mode(SALES_ORDERS), Some(Mode::Events));
        assert_eq!(t1.mode("no-such-route"), None);
        for mode in [Mode::DualWrite, Mode::Events, Mode::Legacy, Mode::Retired] {
            t1.set_mode(SALES_ORDERS, mode, "test", true).unwrap();
            assert_eq!(t1.mode(SALES_ORDERS), Some(mode));
            let other = t1.clone();
            let seen = std::thread::spawn(move || other.mode(SALES_ORDERS))
                .join()
                .unwrap();
            assert_eq!(seen, Some(mode));
            assert_eq!(t2.mode(SALES_ORDERS), Some(Mode::Events));
        }
    }

    #[test]
    fn the_initial_mode_comes_from_configuration_only_on_first_start() {
        let dir = temp_dir("initial");
        let t = RouteTable::open(
            dir.path(),
            Mode::DualWrite,
            SapUnavailablePolicy::StoreAndForward,
        )
        .unwrap();
        assert_eq!(t.snapshot(SALES_ORDERS).unwrap().mode, Mode::DualWrite);
        let t2 = RouteTable::open(dir.path(), Mode::Legacy, SapUnavailablePolicy::Strict).unwrap();
        let r = t2.snapshot(SALES_ORDERS).unwrap();
        assert_eq!(
            (r.mode, r.policy),
            (Mode::DualWrite, SapUnavailablePolicy::StoreAndForward)
        );
    }

    #[test]
    fn an_unknown_route_is_refused_and_nothing_is_audited() {
        let dir = temp_dir("unknown");
        let t = RouteTable::open(dir.path(), Mode::Legacy, SapUnavailablePolicy::Strict).unwrap();
        assert!(matches!(
            t.set_mode("invoices", Mode::Events, "bob", true),
            Err(RouteError::UnknownRoute(_))
        ));
        assert!(t.audit().unwrap().is_empty());
    }

    #[test]
    fn a_return_from_retired_is_persisted_audited_and_ended_by_the_mode_it_aims_at() {
        let dir = temp_dir("return");
        let t = RouteTable::open(dir.path(), Mode::Retired, SapUnavailablePolicy::Strict).unwrap();
        let since = t.snapshot(SALES_ORDERS).unwrap().updated_at;
        t.begin_return(SALES_ORDERS, Mode::Events, "alice").unwrap();
        let reopened =
            RouteTable::open(dir.path(), Mode::Legacy, SapUnavailablePolicy::Strict).unwrap();
        let r = reopened.snapshot(SALES_ORDERS).unwrap();
        assert_eq!(
            (r.mode, r.returning_to),
            (Mode::Retired, Some(Mode::Events))
        );
        assert_eq!(r.updated_at, since, "still in its phase");
        assert_eq!(r.returning_by.as_deref(), Some("alice"));
        reopened.cancel_return(SALES_ORDERS, "bob").unwrap();
        assert_eq!(reopened.snapshot(SALES_ORDERS).unwrap().returning_to, None);
        reopened
            .begin_return(SALES_ORDERS, Mode::Legacy, "alice")
            .unwrap();
        reopened
            .set_mode(SALES_ORDERS, Mode::Legacy, "proxy", false)
            .unwrap();
        let r = reopened.snapshot(SALES_ORDERS).unwrap();
        assert_eq!(
            (r.mode, r.returning_to, r.returning_since),
            (Mode::Legacy, None, None)
        );
        let trail: Vec<_> = reopened
            .audit()
            .unwrap()
            .into_iter()
            .map(|e| (e.field, e.from, e.to))
            .collect();
        let s = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
        assert_eq!(
            trail,
            vec![
                s("returning_to", "none", "events"),
                s("returning_to", "events", "none"),
                s("returning_to", "none", "legacy"),
                s("mode", "retired", "legacy"),
            ]
        );
    }

    #[test]
    fn modes_parse_from_their_wire_names_and_order_by_phase() {
        assert_eq!("dual-write".parse::<Mode>().unwrap(), Mode::DualWrite);
        assert!("dual_write".parse::<Mode>().is_err());
        assert!(Mode::Legacy < Mode::DualWrite && Mode::Events < Mode::Retired);
    }
}
