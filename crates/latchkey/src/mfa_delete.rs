//! `latchkey mfa-delete off`: the operator's way out when the MFA device a bucket's MFA Delete is
//! bound to is lost (AWS's is the root user's device and AWS support). It needs the store itself
//! (`store.rs`: the data dir, or the PostgreSQL URL), not S3 credentials, and is recorded in the
//! audit trail (`mfa_delete.lifted`).

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use latchkey_meta::AuditEvent;
use time::OffsetDateTime;

use crate::store::StoreArgs;

#[derive(Args)]
pub struct MfaDeleteArgs {
    #[command(subcommand)]
    command: MfaDeleteCommand,
}

#[derive(Subcommand)]
enum MfaDeleteCommand {
    /// Turn a bucket's MFA Delete off without its device (versioning is left as it is).
    Off {
        /// The bucket
        #[arg(long)]
        bucket: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub async fn run(args: MfaDeleteArgs) -> anyhow::Result<()> {
    let MfaDeleteCommand::Off { bucket, store } = args.command;
    let (meta, versions) = store.open().await?;
    let Some(found) = meta.get_bucket(&bucket).await.context("cannot read the bucket")? else {
        bail!("there is no bucket {bucket:?} in this store");
    };
    let Some(device) = found.mfa_delete else {
        println!("MFA Delete is already off for {bucket}");
        return Ok(());
    };
    let event = AuditEvent {
        at: OffsetDateTime::now_utc(),
        event: "mfa_delete.lifted".into(),
        share_id: None,
        principal: Some("operator (latchkey mfa-delete off)".into()),
        source_ip: None,
        user_agent: None,
        reason: Some(format!("MFA Delete of bucket {bucket} turned off without its device {}", device.serial)),
    };
    // Recorded first: a change the trail does not show must not happen.
    meta.record_audit(&event).await.context("cannot record the change in the audit trail")?;
    if !versions.set_mfa_delete(&bucket, None, Some(&device.serial)).await.context("cannot change the bucket")? {
        bail!("the bucket {bucket:?} changed meanwhile: run the command again");
    }
    println!("MFA Delete is off for {bucket} (it was bound to {})", device.serial);
    Ok(())
}
