//! The scanner every scan uses: the server's own settings (TOML: managed identifiers, its
//! `[[custom_identifiers]]`, the allow-list) plus the custom identifiers created through the API
//! (`latchkey-meta`'s `CustomIdentifierStore`). [`EngineSource::current`] reads the store's
//! generation before each scan and rebuilds the engine when it moved, so a scan that starts
//! after an identifier was created or deleted, on any replica, scans with the new set.

use std::sync::Arc;

use latchkey_meta::{CustomIdentifierStore, StoredIdentifier};
use latchkey_scan::{ConfigError, CustomIdentifier, Engine, Report, ScanConfig, managed};

/// At most this many custom identifiers through the API: each scan's engine holds them all (and
/// what they cost together is bounded by the engine: `latchkey_scan::Engine::new` refuses a set
/// too costly to search, see `crates/scan/src/cost.rs`).
pub const MAX_STORED_IDENTIFIERS: u32 = 100;
/// The longest sample text [`EngineSource::test`] takes, in characters (Macie's limit).
pub const MAX_TEST_TEXT: usize = 1000;

pub struct EngineSource {
    settings: ScanConfig,
    store: Arc<dyn CustomIdentifierStore>,
    /// The store generation the engine was built at, and the engine.
    built: tokio::sync::Mutex<(Option<i64>, Arc<Engine>)>,
}

impl EngineSource {
    /// Fails when the server's own settings are refused.
    pub fn new(settings: ScanConfig, store: Arc<dyn CustomIdentifierStore>) -> Result<Self, ConfigError> {
        let engine = Arc::new(Engine::new(&settings)?);
        Ok(Self { settings, store, built: tokio::sync::Mutex::new((None, engine)) })
    }

    /// The custom identifiers of the server's own settings (its TOML file).
    pub fn configured(&self) -> &[CustomIdentifier] {
        &self.settings.custom_identifiers
    }

    /// The engine with every custom identifier stored now, or why it cannot be had.
    pub async fn current(&self) -> Result<Arc<Engine>, String> {
        let unreadable = |e: latchkey_meta::MetaError| format!("cannot read the custom identifiers: {e}");
        // Read before the list: a change made in between is seen now or at the next call.
        let generation = self.store.custom_identifiers_generation().await.map_err(unreadable)?;
        let mut built = self.built.lock().await;
        if built.0.is_some_and(|seen| seen >= generation) {
            return Ok(built.1.clone());
        }
        let stored = self.store.list_custom_identifiers().await.map_err(unreadable)?;
        let settings = self.settings.clone();
        let engine = tokio::task::spawn_blocking(move || Engine::new(&fitting(&settings, &stored).0))
            .await
            .map_err(|e| e.to_string())
            .and_then(|built| built.map_err(|e| e.to_string()))
            .map_err(|e| format!("the scanner could not be built: {e}"))?;
        *built = (Some(generation), Arc::new(engine));
        Ok(built.1.clone())
    }

    /// Whether `candidate` can join the identifiers scans use now: its fields within Macie's
    /// limits, its regex compiled, small and cheap enough, alone and with the others.
    pub fn check(&self, candidate: &CustomIdentifier, stored: &[StoredIdentifier]) -> Result<(), ConfigError> {
        let (mut settings, _) = fitting(&self.settings, stored);
        settings.custom_identifiers.push(candidate.clone());
        Engine::new(&settings).map(drop)
    }

    /// The names of the stored identifiers scans leave out (their definition unreadable, or no
    /// longer fitting beside the TOML file's: a name taken since, the budget spent).
    pub fn left_out(&self, stored: &[StoredIdentifier]) -> Vec<String> {
        fitting(&self.settings, stored).1
    }

    /// Scans `text` for `candidate` alone (every managed identifier off), as Macie's
    /// TestCustomDataIdentifier does, with the server's allow-list.
    pub fn test(&self, candidate: &CustomIdentifier, text: &str) -> Result<Report, ConfigError> {
        let settings = ScanConfig {
            custom_identifiers: vec![candidate.clone()],
            allow_list: self.settings.allow_list.clone(),
            disabled_identifiers: managed::definitions().into_iter().map(|d| d.id).collect(),
            max_locations: self.settings.max_locations,
        };
        Ok(Engine::new(&settings)?.scan_bytes(text.as_bytes()))
    }
}

/// A stored identifier's fields.
pub fn parse(stored: &StoredIdentifier) -> Result<CustomIdentifier, serde_json::Error> {
    serde_json::from_value(stored.definition.clone())
}

/// `settings` with the stored identifiers that fit beside it, and the names of those that do
/// not (their definition unreadable, their name taken since by the TOML file, the budget spent),
/// which are logged.
fn fitting(settings: &ScanConfig, stored: &[StoredIdentifier]) -> (ScanConfig, Vec<String>) {
    let mut all = settings.clone();
    all.custom_identifiers.extend(stored.iter().filter_map(|s| parse(s).ok()));
    if stored.iter().all(|s| parse(s).is_ok()) && Engine::new(&all).is_ok() {
        return (all, Vec::new());
    }
    // Rare: find the ones that do not fit, one at a time (at most MAX_STORED_IDENTIFIERS), the
    // oldest first: a newer identifier never pushes out an older one.
    let mut kept = settings.clone();
    let mut left_out = Vec::new();
    let mut oldest_first: Vec<&StoredIdentifier> = stored.iter().collect();
    oldest_first.sort_by_key(|s| (s.created, s.name.clone()));
    for identifier in oldest_first {
        let added = parse(identifier).map_err(|e| e.to_string()).and_then(|custom| {
            kept.custom_identifiers.push(custom);
            Engine::new(&kept).map(drop).map_err(|e| {
                kept.custom_identifiers.pop();
                e.to_string()
            })
        });
        if let Err(error) = added {
            tracing::error!(name = %identifier.name, %error, "a stored custom identifier is left out of scans");
            left_out.push(identifier.name.clone());
        }
    }
    (kept, left_out)
}
