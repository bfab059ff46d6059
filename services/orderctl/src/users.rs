//! `orderctl users hash`: a line for the proxy's `PROXY_USERS_FILE` (the users a retired
//! route logs on by itself). The password is read from standard input, never from the
//! command line (where `ps` and shell history would keep it), and only its argon2id hash
//! (PHC string, argon2's default parameters, a random salt) is printed.

use std::io::BufRead;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, SaltString};

/// Users of the proxy's SAP face.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Read a password from stdin (first line) and print `name:$argon2id$...` (or the hash
    /// alone without a name), to append to PROXY_USERS_FILE.
    Hash {
        /// The user name (SAP's clients send it in basic authentication).
        name: Option<String>,
    },
}

/// Runs a `users` command.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Hash { name } => {
            if name
                .as_deref()
                .is_some_and(|n| n.is_empty() || n.contains(':'))
            {
                anyhow::bail!("a user name must be non-empty and hold no ':'");
            }
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            let password = line.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                anyhow::bail!(
                    "no password on stdin (e.g. `read -rs PW; printf '%s\\n' \"$PW\" | orderctl users hash alice`)"
                );
            }
            let hash = hash(password)?;
            match name {
                Some(n) => println!("{n}:{hash}"),
                None => println!("{hash}"),
            }
            Ok(())
        }
    }
}

pub(crate) fn hash(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
}
