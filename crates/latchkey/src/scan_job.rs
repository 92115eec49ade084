//! `latchkey scan-job create|list|show|cancel`: on-demand scans of what a bucket already holds,
//! through the signed `/-/findings/jobs` API (root, or `latchkey:CreateScanJob` on the bucket to
//! start and cancel, `latchkey:ReadFindings` to look).

use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use latchkey::api::call;
use latchkey::aws_env::{self, ClientEnv};
use serde_json::{Value, json};

#[derive(Args)]
pub struct ScanJobArgs {
    #[command(subcommand)]
    command: ScanJobCommand,
    /// The server's URL [default: AWS_ENDPOINT_URL or the profile's endpoint_url, else http://127.0.0.1:9000]
    #[arg(long, global = true, value_name = "URL")]
    endpoint_url: Option<String>,
    /// The AWS CLI profile to take credentials and settings from
    #[arg(long, global = true, value_name = "NAME")]
    profile: Option<String>,
}

#[derive(Subcommand)]
enum ScanJobCommand {
    /// Queue a bucket's objects (or some of them) for a scan
    Create {
        #[arg(long)]
        bucket: String,
        /// Only keys starting with this
        #[arg(long, default_value = "")]
        prefix: String,
        /// Scan this percentage of the chosen objects (1 to 100)
        #[arg(long, value_name = "PERCENT", default_value_t = 100)]
        sampling: u8,
        /// Only keys with these extensions (csv,txt or repeated)
        #[arg(long, value_name = "EXT", value_delimiter = ',')]
        include_ext: Vec<String>,
        /// Only objects of at most this many bytes
        #[arg(long, value_name = "BYTES")]
        max_size: Option<u64>,
        /// Wait until the job is done, showing its progress
        #[arg(long)]
        wait: bool,
    },
    /// List scan jobs, newest first
    List,
    /// Show a job's progress
    Show { id: String },
    /// Cancel a job: what it queued that was scanned before leaves the queue
    Cancel { id: String },
}

pub async fn run(args: ScanJobArgs) -> anyhow::Result<()> {
    let env = aws_env::load(args.profile.as_deref(), args.endpoint_url.as_deref()).await?;
    match args.command {
        ScanJobCommand::Create { bucket, prefix, sampling, include_ext, max_size, wait } => {
            let spec = json!({
                "bucket": bucket, "prefix": prefix, "sampling": sampling,
                "include_ext": include_ext, "max_size": max_size,
            });
            let job = call(&env, "POST", "/-/findings/jobs", Some(&spec)).await?;
            print_job(&job);
            if wait {
                let id = job["id"].as_str().context("the server's answer has no job id")?;
                wait_for(&env, id, &job).await?;
            }
        }
        ScanJobCommand::List => {
            let answer = call(&env, "GET", "/-/findings/jobs", None).await?;
            answer["jobs"].as_array().context("the server's answer has no jobs")?.iter().for_each(print_job);
        }
        ScanJobCommand::Show { id } => print_job(&call(&env, "GET", &job_path(&id), None).await?),
        ScanJobCommand::Cancel { id } => print_job(&call(&env, "DELETE", &job_path(&id), None).await?),
    }
    Ok(())
}

fn job_path(id: &str) -> String {
    format!("/-/findings/jobs/{}", form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>())
}

fn print_job(job: &Value) {
    let field = |name: &str| job[name].as_str().unwrap_or("-").to_owned();
    println!(
        "{}  {:<9}  {}/{} scanned, {} failed  s3://{}/{}  {}",
        field("id"),
        field("state"),
        job["scanned"],
        job["total"],
        job["failed"],
        field("bucket"),
        field("prefix"),
        field("created_at")
    );
}

/// Polls the job until it is no longer running, with a progress bar on a terminal.
async fn wait_for(env: &ClientEnv, id: &str, first: &Value) -> anyhow::Result<()> {
    let progress = ProgressBar::new(first["total"].as_u64().unwrap_or(0));
    progress.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} {wide_msg}").expect("a valid template"));
    let mut job = first.clone();
    while job["state"] == "running" {
        tokio::time::sleep(Duration::from_millis(500)).await;
        job = call(env, "GET", &job_path(id), None).await?;
        progress.set_position(job["scanned"].as_u64().unwrap_or(0) + job["failed"].as_u64().unwrap_or(0));
    }
    progress.finish_and_clear();
    print_job(&job);
    Ok(())
}
