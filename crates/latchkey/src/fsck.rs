//! `latchkey fsck`: compares the metadata store with the blob files of a data dir, reporting
//! records whose blob is missing or of the wrong size and blobs no record names (orphans, older
//! than a grace period), changing nothing unless `--remove-orphans` is given. With SQLite the
//! server must be stopped (the store is locked while it runs); with PostgreSQL it may run.
//! Exit 0: consistent, 1: problems found, 2: error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use latchkey_meta::{MetaStore, PgStore, SqliteStore, VersionStore};
use latchkey_object::ObjectService;
use latchkey_storage::BlobStore;

#[derive(Args)]
pub struct FsckArgs {
    /// The server's data dir (its blobs, and its SQLite store unless --meta-url names another)
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// The metadata store, when not the data dir's SQLite file (postgres://... or sqlite:PATH)
    #[arg(long, value_name = "URL")]
    meta_url: Option<String>,
    /// Blobs younger than this are not called orphans (a write may be about to commit; at least
    /// 600)
    #[arg(long, value_name = "SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(600..=315_360_000))]
    grace_secs: u64,
    /// Delete the orphaned blobs found (nothing else is ever changed)
    #[arg(long)]
    remove_orphans: bool,
}

pub async fn run(args: FsckArgs) -> ExitCode {
    match fsck(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("latchkey fsck: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn fsck(args: FsckArgs) -> anyhow::Result<ExitCode> {
    if !args.data_dir.join("blobs").is_dir() {
        bail!("{} holds no blobs/ folder: give the server's --data-dir", args.data_dir.display());
    }
    let failed = "cannot open the metadata store";
    let sqlite = args.data_dir.join("meta.db");
    if args.meta_url.is_none() && !sqlite.is_file() {
        bail!("{} does not exist: give the store the server uses with --meta-url", sqlite.display());
    }
    let blobs = BlobStore::open(&args.data_dir).with_context(|| format!("cannot open {}", args.data_dir.display()))?;
    let objects = match args.meta_url.as_deref() {
        None => service(SqliteStore::open(&sqlite).await.context(failed)?, blobs),
        Some(url) if url.starts_with("sqlite:") => service(SqliteStore::open_url(url).await.context(failed)?, blobs),
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            service(PgStore::open(url, 4).await.context(failed)?, blobs)
        }
        Some(other) => bail!("unsupported --meta-url {other:?}: expected sqlite:PATH or postgres://..."),
    };
    let grace = Duration::from_secs(args.grace_secs);
    let check = objects.check_blobs(grace).await.context("cannot read the store or the blobs")?;
    for what in &check.missing {
        println!("missing blob: {}", what.escape_debug());
    }
    for (what, recorded, found) in &check.wrong_size {
        println!("wrong size: {} (recorded {recorded} bytes, the blob has {found})", what.escape_debug());
    }
    for blob in &check.orphans {
        println!("orphaned blob: {blob}");
    }
    println!(
        "checked {} records: {} missing blobs, {} of the wrong size, {} orphaned blobs (older than {}s)",
        check.records,
        check.missing.len(),
        check.wrong_size.len(),
        check.orphans.len(),
        args.grace_secs
    );
    if args.remove_orphans && !check.orphans.is_empty() && check.records == 0 {
        bail!("the store holds no record at all beside these blobs: is it this data dir's store? nothing removed");
    }
    if args.remove_orphans && !check.orphans.is_empty() {
        // Swept again rather than deleted from the list: a blob named meanwhile is kept.
        let removed = objects.sweep_orphans(grace).await.context("cannot remove the orphaned blobs")?;
        println!("removed {removed} orphaned blobs");
    }
    let consistent = check.missing.is_empty() && check.wrong_size.is_empty();
    Ok(match consistent && (check.orphans.is_empty() || args.remove_orphans) {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(1),
    })
}

/// The object service over one store.
fn service<S: MetaStore + VersionStore>(store: S, blobs: BlobStore) -> ObjectService {
    let store = Arc::new(store);
    ObjectService::new(store.clone(), store, blobs)
}
