//! Shutdown signalling.
//!
//! Servers take a [`CancellationToken`] instead of listening for signals themselves (as
//! mini-redis takes its shutdown future), so tests can stop them and `main` decides what stops
//! them in production.

pub use tokio_util::sync::CancellationToken;

/// A token cancelled on SIGTERM or SIGINT (Ctrl-C).
pub fn token_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let fired = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown signal received, draining");
        fired.cancel();
    });
    token
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
