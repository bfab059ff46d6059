//! Child processes of the real binaries, for tests that stop or kill a component for real.

use std::net::TcpListener;
use std::process::{Child, Command};

/// Ports handed out by [`free_port`]: below Linux's default ephemeral range (32768–60999),
/// so neither an outgoing connection's local port nor another `bind(0)` can take one between
/// the moment it is chosen and the moment the server under test binds it. (Ports from
/// `bind(0)` are ephemeral ones, and a busy test run opening thousands of connections reused
/// them: a server then failed to start with "address already in use".)
const PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A loopback port that is free now and that this process has not handed out before.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let span = u32::from(PORTS.end - PORTS.start);
    // Each test binary starts at its own offset, so binaries running at once rarely meet.
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7_919) % span,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..span {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % span;
        let port = PORTS.start + offset as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {PORTS:?}");
}

/// A running child process, killed (SIGKILL) and reaped when dropped.
#[derive(Debug)]
pub struct ChildProcess {
    child: Option<Child>,
    /// What it is, for messages.
    pub name: String,
}

impl ChildProcess {
    /// Spawns `command`, panicking with the reason if it cannot start.
    pub fn spawn(name: &str, mut command: Command) -> Self {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self {
            child: Some(child),
            name: name.to_owned(),
        }
    }

    /// The OS process id.
    pub fn id(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Kills the process with SIGKILL (no chance to clean up) and waits for it.
    pub fn kill_hard(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits for the exit; returns whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        c.wait().map(|s| s.success()).unwrap_or(false)
    }

    /// Whether the process has exited.
    pub fn has_exited(&mut self) -> bool {
        match self.child.as_mut() {
            None => true,
            Some(c) => matches!(c.try_wait(), Ok(Some(_))),
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill_hard();
    }
}

/// The folder of the workspace's debug binaries, after building `packages` once per test
/// process (`cargo build -q -p ...`), unless `PREBUILT_BINARIES` is set (the test script built
/// them already). Integration tests start the real services from there.
pub fn built_binaries(packages: &[&str]) -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let root = crate::workspace_root();
        if std::env::var_os("PREBUILT_BINARIES").is_none()
            && std::env::var_os("PROXY_IT_PREBUILT").is_none()
        {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut args = vec!["build", "-q"];
            for p in packages {
                args.extend(["-p", p]);
            }
            let status = Command::new(cargo)
                .current_dir(&root)
                .args(&args)
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building {packages:?} failed");
        }
        std::env::var("CARGO_TARGET_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| root.join("target"))
            .join("debug")
    })
}
