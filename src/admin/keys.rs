//! `jobs-admin keys`: the token signing keys of a key file (the generated one in the data
//! directory, or `--token-key-file`). Servers re-read the file within seconds, so a key
//! rotated in or retired takes effect without a restart; secrets are never printed.

use super::AdminError;
use crate::auth::keys::{read_ring, write_ring, ROTATION_DELAY};
use chrono::Utc;
use clap::Subcommand;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the keys, newest first: id, from when it signs, and which signs now.
    List {
        #[command(flatten)]
        file: KeyFile,
    },
    /// Add a new random key. It signs new tokens from a few seconds on, once every server
    /// sharing the file has re-read it; the previous keys go on verifying their tokens.
    Rotate {
        #[command(flatten)]
        file: KeyFile,
    },
    /// Remove a key: tokens it signed stop working. Retire a key once the token lifetime
    /// has passed since the rotation that replaced it.
    Retire {
        /// The key's id (see `keys list`).
        id: String,
        /// Retire it even while tokens it signed may still be valid (a day after the
        /// rotation at most; sooner when the server's `--token-ttl` is shorter).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        file: KeyFile,
    },
}

/// Which key file.
#[derive(Debug, clap::Args)]
pub struct KeyFile {
    /// The server's key file (default: the generated one in the data directory).
    #[arg(long, env = "JOBS_TOKEN_KEY_FILE")]
    token_key_file: Option<PathBuf>,
}

impl KeyFile {
    fn path(&self, data_dir: &Path) -> PathBuf {
        self.token_key_file
            .clone()
            .unwrap_or_else(|| data_dir.join(crate::auth::keys::GENERATED_KEY_FILE))
    }
}

pub fn run(command: KeysCommand, data_dir: &Path, out: &mut impl Write) -> Result<(), AdminError> {
    let now = Utc::now();
    match command {
        KeysCommand::List { file } => {
            let ring = read_ring(&file.path(data_dir))?;
            let signing = ring.signing(now).map(|key| key.id.clone());
            for key in ring.keys() {
                let role = if Some(&key.id) == signing.as_ref() {
                    "signs".to_owned()
                } else {
                    match key.signs_from {
                        Some(from) if from > now => format!(
                            "signs from {}",
                            from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                        ),
                        _ => "verifies".to_owned(),
                    }
                };
                writeln!(out, "{}\t{role}", key.id)?;
            }
            Ok(())
        }
        KeysCommand::Rotate { file } => {
            let path = file.path(data_dir);
            let ring = read_ring(&path)?;
            let signs_from = now + ROTATION_DELAY;
            let rotated = ring.rotated(signs_from);
            write_ring(&path, &rotated)?;
            writeln!(
                out,
                "added key {}: it signs new tokens from {}; the others go on verifying theirs",
                rotated.keys()[0].id,
                signs_from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )?;
            Ok(())
        }
        KeysCommand::Retire { id, force, file } => {
            let path = file.path(data_dir);
            let ring = read_ring(&path)?;
            let retired = ring
                .without(&id, now, force)
                .map_err(AdminError::KeyRetirement)?;
            write_ring(&path, &retired)?;
            writeln!(
                out,
                "retired key {id}: tokens it signed are no longer accepted"
            )?;
            Ok(())
        }
    }
}
