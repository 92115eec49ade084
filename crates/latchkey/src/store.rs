//! The metadata store of a data dir, opened directly (not through a server) by the commands that
//! an operator runs beside the server or in its place: `fsck`, `mfa-delete`. With SQLite the
//! server must be stopped (the store is locked while it runs); with PostgreSQL it may run.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use latchkey_meta::{MetaStore, PgStore, SqliteStore, VersionStore};

#[derive(Args)]
pub struct StoreArgs {
    /// The server's data dir (its blobs, and its SQLite store unless --meta-url names another)
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// The metadata store, when not the data dir's SQLite file (postgres://... or sqlite:PATH)
    #[arg(long, value_name = "URL")]
    pub meta_url: Option<String>,
}

impl StoreArgs {
    /// The store, seen as the object service sees it.
    pub async fn open(&self) -> anyhow::Result<(Arc<dyn MetaStore>, Arc<dyn VersionStore>)> {
        let failed = "cannot open the metadata store";
        let sqlite = self.data_dir.join("meta.db");
        if self.meta_url.is_none() && !sqlite.is_file() {
            bail!("{} does not exist: give the store the server uses with --meta-url", sqlite.display());
        }
        Ok(match self.meta_url.as_deref() {
            None => both(SqliteStore::open(&sqlite).await.context(failed)?),
            Some(url) if url.starts_with("sqlite:") => both(SqliteStore::open_url(url).await.context(failed)?),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                both(PgStore::open(url, 4).await.context(failed)?)
            }
            Some(other) => bail!("unsupported --meta-url {other:?}: expected sqlite:PATH or postgres://..."),
        })
    }
}

fn both<S: MetaStore + VersionStore>(store: S) -> (Arc<dyn MetaStore>, Arc<dyn VersionStore>) {
    let store = Arc::new(store);
    (store.clone(), store)
}
