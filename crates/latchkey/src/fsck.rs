//! `latchkey fsck`: compares the metadata store with the blob files of a data dir, reporting
//! records whose blob is missing or of the wrong size and blobs no record names (orphans, older
//! than a grace period), changing nothing unless `--remove-orphans` is given. The store is opened
//! directly (`store.rs`: with SQLite the server must be stopped).
//! Exit 0: consistent, 1: problems found, 2: error.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use latchkey_object::ObjectService;
use latchkey_storage::BlobStore;

use crate::store::StoreArgs;

#[derive(Args)]
pub struct FsckArgs {
    #[command(flatten)]
    store: StoreArgs,
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
    if !args.store.data_dir.join("blobs").is_dir() {
        bail!("{} holds no blobs/ folder: give the server's --data-dir", args.store.data_dir.display());
    }
    let data_dir = &args.store.data_dir;
    let blobs = BlobStore::open(data_dir).with_context(|| format!("cannot open {}", data_dir.display()))?;
    let (meta, versions) = args.store.open().await?;
    let objects = ObjectService::new(meta, versions, blobs);
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
