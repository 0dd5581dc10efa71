//! `pollstr backup --output FILE`: a consistent copy of the SQLite database, taken while the
//! site serves and takes votes. `VACUUM INTO` reads the database in one read transaction (in WAL
//! mode writers go on meanwhile) and writes a compact copy, the WAL's committed pages included;
//! the copy is then opened on its own and checked with `PRAGMA integrity_check` before the
//! command says it is good. Copying the file with `cp` while the server writes can tear a page
//! or miss the WAL: this is the safe way (Vaultwarden's users asked for the same, PRs #1584 and
//! #4906). On PostgreSQL, `pg_dump` is the tool: the command says so and fails.

use std::path::Path;
use std::str::FromStr;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use super::Db;

/// What a backup wrote.
#[derive(Debug)]
pub struct Backup {
    pub bytes: u64,
}

/// Writes a checked copy of the database to `output`, which must not exist yet.
pub async fn backup(db: &Db, output: &Path) -> anyhow::Result<Backup> {
    let Db::Sqlite(pool) = db else {
        anyhow::bail!(
            "the database is PostgreSQL: back it up with pg_dump (e.g. `pg_dump --format=custom --file=pollstr.dump \"$DATABASE_URL\"`, restored with pg_restore); `pollstr backup` copies SQLite databases only"
        );
    };
    if output.exists() {
        anyhow::bail!(
            "{} already exists: give a new file name (a backup never overwrites)",
            output.display()
        );
    }
    let target = output
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("{} is not a UTF-8 path", output.display()))?;
    if let Err(e) = sqlx::query("VACUUM INTO $1")
        .bind(target)
        .execute(pool)
        .await
    {
        let _ = std::fs::remove_file(output);
        anyhow::bail!("cannot write {}: {e}", output.display());
    }
    match integrity(output).await {
        Ok(()) => Ok(Backup {
            bytes: std::fs::metadata(output)?.len(),
        }),
        Err(e) => {
            let _ = std::fs::remove_file(output);
            Err(e.context(format!(
                "the copy at {} failed its check and was deleted",
                output.display()
            )))
        }
    }
}

/// `PRAGMA integrity_check` on the SQLite file at `path`, opened read-only on its own.
pub async fn integrity(path: &Path) -> anyhow::Result<()> {
    let url = format!("sqlite://{}", path.display());
    let mut conn = SqliteConnectOptions::from_str(&url)?
        .read_only(true)
        .connect()
        .await?;
    let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await?;
    conn.close().await?;
    if rows.len() == 1 && rows[0] == "ok" {
        Ok(())
    } else {
        anyhow::bail!("integrity_check: {}", rows.join("; "))
    }
}
