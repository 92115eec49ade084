//! The scanner every scan uses: the server's own settings (TOML: managed identifiers, its
//! `[[custom_identifiers]]`, the allow-list) plus the custom identifiers created through the API
//! (`latchkey-meta`'s `CustomIdentifierStore`). [`EngineSource::current`] reads the store's
//! generation before each scan and rebuilds the engine when it moved, so a scan that starts
//! after an identifier was created or deleted, on any replica, scans with the new set.

use std::sync::Arc;

use latchkey_meta::{CustomIdentifierStore, StoredIdentifier};
use latchkey_scan::{ConfigError, CustomIdentifier, Engine, Report, ScanConfig, managed};

/// At most this many custom identifiers through the API: each scan's engine holds them all.
pub const MAX_STORED_IDENTIFIERS: usize = 500;
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
        let engine = tokio::task::spawn_blocking(move || build(&settings, &stored))
            .await
            .map_err(|e| e.to_string())
            .and_then(|built| built.map_err(|e| e.to_string()))
            .map_err(|e| format!("the scanner could not be built: {e}"))?;
        *built = (Some(generation), Arc::new(engine));
        Ok(built.1.clone())
    }

    /// Whether `candidate` can join the identifiers stored now: its fields within Macie's
    /// limits, its regex compiled and small enough, its name not taken by any other
    /// (managed, in the TOML file, or stored).
    pub fn check(&self, candidate: &CustomIdentifier, stored: &[StoredIdentifier]) -> Result<(), ConfigError> {
        let mut settings = self.settings.clone();
        settings.custom_identifiers.extend(stored.iter().filter_map(|s| parse(s).ok()));
        settings.custom_identifiers.push(candidate.clone());
        Engine::new(&settings).map(drop)
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

/// The engine for `settings` with `stored` added; one that cannot join (its definition
/// unreadable, or its name taken since by the TOML file) is left out and logged.
fn build(settings: &ScanConfig, stored: &[StoredIdentifier]) -> Result<Engine, ConfigError> {
    let mut all = settings.clone();
    all.custom_identifiers.extend(stored.iter().filter_map(|s| parse(s).ok()));
    if stored.iter().all(|s| parse(s).is_ok())
        && let Ok(engine) = Engine::new(&all)
    {
        return Ok(engine);
    }
    // Rare: find the ones that do not fit, one at a time.
    let mut kept = settings.clone();
    let mut engine = Engine::new(&kept)?;
    for identifier in stored {
        let added = parse(identifier).map_err(|e| e.to_string()).and_then(|custom| {
            kept.custom_identifiers.push(custom);
            Engine::new(&kept).map_err(|e| {
                kept.custom_identifiers.pop();
                e.to_string()
            })
        });
        match added {
            Ok(with_it) => engine = with_it,
            Err(error) => {
                tracing::error!(name = %identifier.name, %error, "a stored custom identifier is left out of scans")
            }
        }
    }
    Ok(engine)
}
