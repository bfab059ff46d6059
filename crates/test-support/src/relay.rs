//! A TCP relay between a client and a real server that loses answers on purpose: the request
//! reaches the server whole (so its effect commits), the answer never reaches the client, whose
//! connection is closed instead. This is the failure a timeout after a committed write looks
//! like from the caller's side, caused for real rather than simulated in the server.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A running relay; dropped, it stops accepting.
pub struct LossyRelay {
    port: u16,
    lose: Arc<AtomicU32>,
    lost: Arc<AtomicU32>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LossyRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LossyRelay {
    /// Relays `127.0.0.1:<port>` to `127.0.0.1:<upstream>`. The answers to requests whose
    /// first line starts with `request_prefix` (for example `"POST /api/v1/orders "`) are lost
    /// while [`LossyRelay::lose_next`] has a budget left; everything else passes untouched.
    pub async fn start(upstream: u16, request_prefix: &'static str) -> LossyRelay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let port = listener.local_addr().expect("relay address").port();
        let lose = Arc::new(AtomicU32::new(0));
        let lost = Arc::new(AtomicU32::new(0));
        let (lose2, lost2) = (lose.clone(), lost.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (lose, lost) = (lose2.clone(), lost2.clone());
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await {
                        relay(client, server, request_prefix.as_bytes(), lose, lost).await;
                    }
                });
            }
        });
        LossyRelay {
            port,
            lose,
            lost,
            task,
        }
    }

    /// The relay's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Loses the answers to the next `n` matching requests.
    pub fn lose_next(&self, n: u32) {
        self.lose.store(n, Ordering::SeqCst);
    }

    /// How many answers were lost so far.
    pub fn lost(&self) -> u32 {
        self.lost.load(Ordering::SeqCst)
    }
}

/// One connection. HTTP/1.1 clients wait for an answer before the next request on a connection,
/// so the first answer bytes after a matching request belong to it.
async fn relay(
    mut client: TcpStream,
    mut server: TcpStream,
    prefix: &[u8],
    lose: Arc<AtomicU32>,
    lost: Arc<AtomicU32>,
) {
    let mut up = vec![0u8; 64 * 1024];
    let mut down = vec![0u8; 64 * 1024];
    let mut doomed = false;
    loop {
        tokio::select! {
            n = client.read(&mut up) => {
                let Ok(n) = n else { return };
                if n == 0 {
                    let _ = server.shutdown().await;
                    return;
                }
                if up[..n].starts_with(prefix)
                    && lose
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1))
                        .is_ok()
                {
                    doomed = true;
                }
                if server.write_all(&up[..n]).await.is_err() {
                    return;
                }
            }
            n = server.read(&mut down) => {
                let Ok(n) = n else { return };
                if n == 0 {
                    return;
                }
                if doomed {
                    // The server answered (its effect is committed); the client never hears.
                    lost.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                if client.write_all(&down[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}
