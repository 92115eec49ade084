//! The `latchkey` command: `serve` runs the server, `presign` signs S3 URLs locally (and
//! revokes them), `share` manages share links, `policy` simulates and validates IAM policies,
//! `audit` verifies the audit trail, `scan` finds sensitive data in local files, `findings`
//! shows what the server found in stored objects, `scan-job` has it scan what it already holds,
//! `custom-identifier` manages the user's own identifiers that the server scans for, `fsck`
//! compares the store with the blob files, `mfa-delete off` lifts a bucket's MFA Delete whose
//! device is lost.

mod audit;
mod custom_identifier;
mod findings;
mod fsck;
mod logging;
mod mfa_delete;
mod policy;
mod presign;
mod scan;
mod scan_job;
mod serve;
mod share;
mod store;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "latchkey", version, about = "Self-hosted S3-compatible object server and security gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (embedded defaults: objects and SQLite metadata in ./latchkey-data).
    Serve(serve::ServeArgs),
    /// Print a SigV4 presigned URL for an object, signed locally with your AWS-style credentials
    /// (AWS CLI v1's `aws s3 presign` makes SigV2 URLs in us-east-1; this always makes SigV4).
    Presign(presign::PresignArgs),
    /// Mint, list and revoke one-time share links.
    Share(share::ShareArgs),
    /// Simulate a principal's IAM policies on the server, or validate a policy document locally
    /// (exit 0: allowed / clean, 1: denied / warnings, 2: error).
    Policy(policy::PolicyArgs),
    /// Check the tamper-evident audit trail.
    Audit(audit::AuditArgs),
    /// Find credentials, financial and personal data in local files, offline
    /// (exit 0: clean, 1: findings, 2: error).
    Scan(scan::ScanArgs),
    /// Show the sensitive data the server found in stored objects, and its scan queue.
    Findings(findings::FindingsArgs),
    /// Scan what a bucket already holds: create, list, show and cancel scan jobs.
    ScanJob(scan_job::ScanJobArgs),
    /// Manage the server's custom identifiers: create, list, show, delete, test.
    CustomIdentifier(custom_identifier::CustomIdentifierArgs),
    /// Compare the metadata store with the blob files: missing or wrong-sized blobs, orphans
    /// (exit 0: consistent, 1: problems, 2: error); changes nothing unless asked.
    Fsck(fsck::FsckArgs),
    /// Lift a bucket's MFA Delete whose device is lost, reading the store directly (the
    /// operator's way out; recorded in the audit trail).
    MfaDelete(mfa_delete::MfaDeleteArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("latchkey: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Presign(args) => presign::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Share(args) => share::run(args).await.map(|()| ExitCode::SUCCESS),
            // Its exit code says allowed or denied (2 on error), so it reports its own errors.
            Command::Policy(args) => Ok(policy::run(args).await),
            Command::Audit(args) => Ok(audit::run(args).await),
            Command::Scan(args) => Ok(scan::run(args).await),
            Command::Findings(args) => findings::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::ScanJob(args) => scan_job::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::CustomIdentifier(args) => custom_identifier::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Fsck(args) => Ok(fsck::run(args).await),
            Command::MfaDelete(args) => mfa_delete::run(args).await.map(|()| ExitCode::SUCCESS),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("latchkey: {e:#}");
            ExitCode::FAILURE
        }
    }
}
