//! `orderctl`: the operator's command line for the migration stack.
//!
//! - `orderctl up`: start everything on this machine (PostgreSQL and Kafka through the project
//!   scripts, then the services) and keep it running until Ctrl-C.
//! - `orderctl routes`, `orderctl mode ROUTE MODE`, `orderctl replays ...`: the proxy's admin API.
//! - `orderctl migration`: each route's phase, how long it has been there, a return from
//!   `retired` in progress, and what blocks the next step.
//! - `orderctl reconcile`: SAP and the order service compared order by order.
//! - `orderctl backfill`: SAP's existing orders copied into the order service.
//! - `orderctl master-data import`: materials and customers into the order service, from a file
//!   or from SAP's product, business partner and pricing APIs.
//! - `orderctl trace KEY`: one order's journey across proxy, order service, outbox, Kafka,
//!   sap-sync and SAP (the proxy's `GET /admin/v1/journey/{key}`), optionally with its log lines.
//! - `orderctl status`: every component of the stack at a glance; exit status 1 when one is down.
//! - `orderctl sap-sync parked|redrive`: changes SAP refused, and applying them again.
//! - `orderctl bench order-create`: the order service's create path against `pgbench` running the
//!   same SQL transaction on the same database.
//! - `orderctl bench sap-sync`: sap-sync draining a backlog against the SAP emulator's own
//!   create rate, and its lag at a steady rate.

/// `println!` that never panics: `up` keeps stopping its services even when its output is gone
/// (a closed terminal or pipe).
#[macro_export]
macro_rules! say {
    () => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout());
    }};
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod admin;
mod backfill;
mod bench;
mod demo;
mod infra;
mod insight;
mod load;
mod master_data;
mod migration;
mod odata_read;
mod progress;
mod reconcile;
mod sap_sync;
mod stack;
mod users;

use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "orderctl",
    version,
    about = "Operate the SAP order migration stack"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the whole stack locally and keep it running until Ctrl-C.
    Up(stack::UpArgs),
    /// Stop PostgreSQL and Kafka started by `up`.
    Down,
    /// Benchmarks that print numbers (never timed tests).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Compare SAP and the order service order by order; optionally report the drift.
    Reconcile(reconcile::Args),
    /// Copy SAP's existing sales orders into the order service (idempotent, re-runnable).
    Backfill(backfill::Args),
    /// The order service's master data (materials, customers, sales areas).
    #[command(subcommand)]
    MasterData(master_data::Command),
    /// List the proxy's routes with their mode and readiness.
    Routes(admin::Target),
    /// Where each route stands: phase, time there, a return in progress, what blocks the next
    /// step.
    Migration(migration::Args),
    /// Switch a route's migration mode (legacy, dual-write, events, retired).
    Mode {
        /// Route name, e.g. sales-orders.
        route: String,
        /// Target mode.
        mode: String,
        /// Switch forward even if the readiness criteria do not hold.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        target: admin::Target,
    },
    /// sap-sync's parked orders and their redrive.
    #[command(subcommand)]
    SapSync(sap_sync::Action),
    /// Users of the proxy's SAP face for retired routes (password hashes).
    #[command(subcommand)]
    Users(users::Command),
    /// One order's journey (order number, order id or correlation id): every step across the
    /// proxy, order service, outbox, Kafka, sap-sync and SAP, with times.
    Trace(insight::TraceArgs),
    /// Every component of the stack at a glance; exit status 1 when something is down.
    Status(insight::StatusArgs),
    /// The proxy's durable replay log.
    Replays {
        #[command(subcommand)]
        action: admin::ReplayAction,
        #[command(flatten)]
        target: admin::Target,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// POST /api/v1/orders at fixed concurrency vs pgbench running the same transaction.
    OrderCreate(bench::order_create::Args),
    /// sap-sync draining a backlog vs the SAP emulator's own create rate; lag at a steady rate.
    SapSync(bench::sap_sync::Args),
    /// The OData face of a retired route vs the SAP emulator: key reads and a daily list.
    OdataFace(bench::odata_face::Args),
}

/// Parses durations such as `20s`, `500ms`, `2m` or a bare number of seconds.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let (num, unit) = raw
        .find(|c: char| !c.is_ascii_digit())
        .map_or((raw, "s"), |i| raw.split_at(i));
    let n: u64 = num.parse().map_err(|_| format!("bad duration {raw:?}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("bad duration unit in {raw:?} (use ms, s or m)")),
    }
}

/// An expected refusal (a switch that is not ready, a missing token, a server that does not
/// answer) is one sentence on stderr and exit code 1, never a backtrace.
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "orderctl: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Up(args) => stack::up(args).await,
        Command::Down => stack::down(),
        Command::Reconcile(args) => reconcile::run(args).await,
        Command::Backfill(args) => backfill::run(args).await,
        Command::MasterData(command) => master_data::run(command).await,
        Command::Routes(target) => admin::routes(target).await,
        Command::Migration(args) => migration::run(args).await,
        Command::Trace(args) => insight::trace(args).await,
        Command::Status(args) => insight::status(args).await,
        Command::Users(command) => users::run(command),
        Command::Mode {
            route,
            mode,
            force,
            target,
        } => admin::mode(target, route, mode, force).await,
        Command::SapSync(action) => sap_sync::run(action).await,
        Command::Replays { action, target } => admin::replays(target, action).await,
        Command::Bench(BenchCommand::OrderCreate(args)) => bench::order_create::run(args).await,
        Command::Bench(BenchCommand::SapSync(args)) => bench::sap_sync::run(args).await,
        Command::Bench(BenchCommand::OdataFace(args)) => bench::odata_face::run(args).await,
    }
}

#[cfg(test)]
mod cli_tests {
    use clap::CommandFactory;

    /// clap's own consistency checks (unique argument names across flattened groups, …), which
    /// otherwise only fire when a command is first used.
    #[test]
    fn every_command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
