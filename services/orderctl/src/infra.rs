//! Finding the project's scripts and binaries, and running the infrastructure scripts.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The repository root: `ORDERS_REPO`, else the first ancestor of the working directory or of
/// this executable that holds `scripts/postgres.sh`.
pub fn repo_root() -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("ORDERS_REPO") {
        return Ok(PathBuf::from(dir));
    }
    let starts = [std::env::current_dir().ok(), std::env::current_exe().ok()];
    for start in starts.into_iter().flatten() {
        for dir in start.ancestors() {
            if dir.join("scripts/postgres.sh").is_file() {
                return Ok(dir.to_path_buf());
            }
        }
    }
    bail!(
        "cannot find the repository (scripts/postgres.sh); run from the checkout or set ORDERS_REPO"
    )
}

/// Runs `scripts/<script> <args>` and fails with its output if it fails.
pub fn script(root: &Path, script: &str, args: &[&str]) -> anyhow::Result<String> {
    let path = root.join("scripts").join(script);
    let out = Command::new(&path)
        .args(args)
        .output()
        .with_context(|| format!("running {}", path.display()))?;
    if !out.status.success() {
        bail!(
            "{} {} failed:\n{}{}",
            path.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A sibling binary of this executable (the services are built into the same target folder).
pub fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating orderctl")?;
    let path = exe.with_file_name(name);
    if !path.is_file() {
        bail!(
            "{} not found next to orderctl; build it first (cargo build -p {name})",
            path.display()
        );
    }
    Ok(path)
}

/// A loopback port that is free right now.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
