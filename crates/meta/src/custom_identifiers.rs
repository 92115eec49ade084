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
    /// Adds `identifier`; `false` (and nothing changed) when one of that name, in any case,
    /// exists already.
    async fn create_custom_identifier(&self, identifier: &StoredIdentifier) -> MetaResult<bool>;
    /// `false` when there is none of that name (compared exactly).
    async fn delete_custom_identifier(&self, name: &str) -> MetaResult<bool>;
    /// Every stored identifier, by name.
    async fn list_custom_identifiers(&self) -> MetaResult<Vec<StoredIdentifier>>;
    /// Moves on with every create and delete: a list read after this generation was read holds
    /// every change up to it.
    async fn custom_identifiers_generation(&self) -> MetaResult<i64>;
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
            ) -> $crate::MetaResult<bool> {
                $crate::transaction!(self.$writer, |tx| {
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
                    if created {
                        sqlx::query($crate::custom_identifiers::BUMP_GENERATION).execute(&mut *tx).await?;
                    }
                    Ok(created)
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

    use super::{CustomIdentifierStore, StoredIdentifier};

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
        assert!(store.create_custom_identifier(&employee).await.unwrap());
        assert!(store.create_custom_identifier(&identifier("badge", "B[0-9]{4}")).await.unwrap());
        let after_creates = store.custom_identifiers_generation().await.unwrap();
        assert_eq!(after_creates, start + 2);

        assert!(!store.create_custom_identifier(&identifier("employee-id", "other")).await.unwrap());
        assert!(!store.create_custom_identifier(&identifier("Employee-ID", "other")).await.unwrap(), "case folds");
        assert_eq!(store.custom_identifiers_generation().await.unwrap(), after_creates, "refusals change nothing");

        let listed = store.list_custom_identifiers().await.unwrap();
        assert_eq!(listed.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["badge", "employee-id"]);
        assert_eq!(listed[1], employee, "kept as given");

        assert!(!store.delete_custom_identifier("EMPLOYEE-ID").await.unwrap(), "deletion names it exactly");
        assert!(store.delete_custom_identifier("employee-id").await.unwrap());
        assert!(!store.delete_custom_identifier("employee-id").await.unwrap());
        assert_eq!(store.custom_identifiers_generation().await.unwrap(), after_creates + 1);
        assert_eq!(store.list_custom_identifiers().await.unwrap().len(), 1);
        assert!(store.create_custom_identifier(&identifier("Employee-ID", "again")).await.unwrap());
    }
}
