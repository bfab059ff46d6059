//! Child processes of the real binaries, for tests that stop or kill a component for real.

use std::net::TcpListener;
use std::process::{Child, Command};

/// A loopback port that was free a moment ago (bind to port 0, read it, release it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("the OS hands out a free loopback port")
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
