//! Custom identifiers created through the API, behind [`CustomIdentifierStore`]: each is kept
//! as its JSON definition (the store does not read it; the scanner checks it before it is
//! stored), and every create or delete moves a generation on, in the same transaction, so that
//! each replica rebuilds its scanner once the set changed and never scans with a stale one.
//! Like Macie's custom data identifiers, one is created and deleted, never edited.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::MetaResult;

#[async_trait]
pub trait CustomIdentifierStore: Send + Sync + 'static {
    /// Adds `identifier` unless one of that name, in any case, exists already or `limit` are
    /// stored (counted in the same transaction, so racing creations cannot pass it).
    async fn create_custom_identifier(&self, identifier: &StoredIdentifier, limit: u32) -> MetaResult<Creation>;
    /// `false` when there is none of that name (compared exactly).
    async fn delete_custom_identifier(&self, name: &str) -> MetaResult<bool>;
    /// Every stored identifier, by name.
    async fn list_custom_identifiers(&self) -> MetaResult<Vec<StoredIdentifier>>;
    /// Moves on with every create and delete: a list read after this generation was read holds
    /// every change up to it.
    async fn custom_identifiers_generation(&self) -> MetaResult<i64>;
}

/// What [`CustomIdentifierStore::create_custom_identifier`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Creation {
    Created,
    NameTaken,
    LimitReached,
}

/// One custom identifier and who created it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredIdentifier {
    pub name: String,
    /// The identifier's fields, as the API took them.
    pub definition: serde_json::Value,
    /// Who created it (an ARN).
    pub principal: String,
    pub created: OffsetDateTime,
}

/// Run in every transaction that changes the set.
pub(crate) const BUMP_GENERATION: &str = "UPDATE scan_settings SET identifiers_generation = identifiers_generation + 1";

pub(crate) fn identifier_from_row(row: &impl crate::rows::Columns) -> MetaResult<StoredIdentifier> {
    Ok(StoredIdentifier {
        name: row.text("name")?,
        definition: serde_json::from_str(&row.text("definition")?)?,
        principal: row.text("principal")?,
        created: crate::rows::from_ms(row.int("created_ms")?),
    })
}

/// Implements [`CustomIdentifierStore`] for a SQL store from its writer and reader pools.
macro_rules! custom_identifier_store {
    ($store:ty, writer: $writer:ident, reader: $reader:ident) => {
        #[async_trait::async_trait]
        impl $crate::custom_identifiers::CustomIdentifierStore for $store {
            async fn create_custom_identifier(
                &self,
                identifier: &$crate::custom_identifiers::StoredIdentifier,
                limit: u32,
            ) -> $crate::MetaResult<$crate::custom_identifiers::Creation> {
                use $crate::custom_identifiers::Creation;
                $crate::transaction!(self.$writer, |tx| {
                    // First, so that on PostgreSQL the settings row's lock orders racing
                    // creations (SQLite has one writer); undone below when nothing is created.
                    sqlx::query($crate::custom_identifiers::BUMP_GENERATION).execute(&mut *tx).await?;
                    let undo = "UPDATE scan_settings SET identifiers_generation = identifiers_generation - 1";
                    let stored: i64 =
                        sqlx::query_scalar("SELECT COUNT(*) FROM custom_identifiers").fetch_one(&mut *tx).await?;
                    if stored >= i64::from(limit) {
                        sqlx::query(undo).execute(&mut *tx).await?;
                        return Ok(Creation::LimitReached);
                    }
                    // Any unique index (the name or its folded case) refuses a duplicate.
                    let created = $crate::statements::bound!(
                        "INSERT INTO custom_identifiers (name, definition, principal, created_ms)
                         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                        &identifier.name,
                        serde_json::to_string(&identifier.definition)?,
                        &identifier.principal,
                        $crate::rows::to_ms(identifier.created),
                    )
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1;
                    if !created {
                        sqlx::query(undo).execute(&mut *tx).await?;
                        return Ok(Creation::NameTaken);
                    }
                    Ok(Creation::Created)
                })
            }

            async fn delete_custom_identifier(&self, name: &str) -> $crate::MetaResult<bool> {
                $crate::transaction!(self.$writer, |tx| {
                    let deleted = sqlx::query("DELETE FROM custom_identifiers WHERE name = $1")
                        .bind(name)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                        == 1;
                    if deleted {
                        sqlx::query($crate::custom_identifiers::BUMP_GENERATION).execute(&mut *tx).await?;
                    }
                    Ok(deleted)
                })
            }

            async fn list_custom_identifiers(
                &self,
            ) -> $crate::MetaResult<Vec<$crate::custom_identifiers::StoredIdentifier>> {
                let rows =
                    sqlx::query("SELECT * FROM custom_identifiers ORDER BY name").fetch_all(&self.$reader).await?;
                rows.iter().map($crate::custom_identifiers::identifier_from_row).collect()
            }

            async fn custom_identifiers_generation(&self) -> $crate::MetaResult<i64> {
                let generation: i64 =
                    sqlx::query_scalar("SELECT identifiers_generation FROM scan_settings WHERE id = 1")
                        .fetch_one(&self.$reader)
                        .await?;
                Ok(generation)
            }
        }
    };
}
pub(crate) use custom_identifier_store;

/// Behaviour every `CustomIdentifierStore` must show, run against each backend.
#[cfg(test)]
pub(crate) mod conformance {
    use std::sync::Arc;

    use super::{Creation, CustomIdentifierStore, StoredIdentifier};

    fn identifier(name: &str, regex: &str) -> StoredIdentifier {
        StoredIdentifier {
            name: name.into(),
            definition: serde_json::json!({ "name": name, "regex": regex }),
            principal: "arn:aws:iam::000000000000:root".into(),
            created: crate::findings::conformance::soon(),
        }
    }

    /// Names are unique whatever their case; the generation moves with each change and only then.
    pub async fn identifiers_are_created_listed_and_deleted<S: CustomIdentifierStore>(store: Arc<S>) {
        let start = store.custom_identifiers_generation().await.unwrap();
        assert!(store.list_custom_identifiers().await.unwrap().is_empty());
        let employee = identifier("employee-id", "EMP-[0-9]{6}");
        let create = |i: StoredIdentifier, limit: u32| {
            let store = store.clone();
            async move { store.create_custom_identifier(&i, limit).await.unwrap() }
        };
        assert_eq!(create(employee.clone(), 10).await, Creation::Created);
        assert_eq!(create(identifier("badge", "B[0-9]{4}"), 10).await, Creation::Created);
        let after_creates = store.custom_identifiers_generation().await.unwrap();
        assert_eq!(after_creates, start + 2);

        assert_eq!(create(identifier("employee-id", "other"), 10).await, Creation::NameTaken);
        assert_eq!(create(identifier("Employee-ID", "other"), 10).await, Creation::NameTaken, "case folds");
        assert_eq!(create(identifier("third", "T[0-9]{4}"), 2).await, Creation::LimitReached);
        assert_eq!(store.custom_identifiers_generation().await.unwrap(), after_creates, "refusals change nothing");
        assert_eq!(store.list_custom_identifiers().await.unwrap().len(), 2);

        let listed = store.list_custom_identifiers().await.unwrap();
        assert_eq!(listed.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["badge", "employee-id"]);
        assert_eq!(listed[1], employee, "kept as given");

        assert!(!store.delete_custom_identifier("EMPLOYEE-ID").await.unwrap(), "deletion names it exactly");
        assert!(store.delete_custom_identifier("employee-id").await.unwrap());
        assert!(!store.delete_custom_identifier("employee-id").await.unwrap());
        assert_eq!(store.custom_identifiers_generation().await.unwrap(), after_creates + 1);
        assert_eq!(store.list_custom_identifiers().await.unwrap().len(), 1);
        assert_eq!(create(identifier("Employee-ID", "again"), 10).await, Creation::Created);

        // Racing creations cannot pass the limit.
        let racing: Vec<_> =
            (0..16).map(|n| tokio::spawn(create(identifier(&format!("race-{n}"), "R[0-9]{4}"), 6))).collect();
        let mut created = 0;
        for creation in racing {
            created += usize::from(creation.await.unwrap() == Creation::Created);
        }
        assert_eq!((created, store.list_custom_identifiers().await.unwrap().len()), (4, 6));
    }
}
