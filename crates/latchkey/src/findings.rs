//! `latchkey findings list|show|queue`: sensitive data the server found in stored objects, through
//! the signed `/-/findings` API (root, or `latchkey:ReadFindings` on the bucket), like
//! `latchkey share`.

use anyhow::Context;
use clap::{Args, Subcommand};
use latchkey::api::call;
use latchkey::aws_env::{self, ClientEnv};
use serde_json::Value;

#[derive(Args)]
pub struct FindingsArgs {
    #[command(subcommand)]
    command: FindingsCommand,
    /// The server's URL [default: AWS_ENDPOINT_URL or the profile's endpoint_url, else http://127.0.0.1:9000]
    #[arg(long, global = true, value_name = "URL")]
    endpoint_url: Option<String>,
    /// The AWS CLI profile to take credentials and settings from
    #[arg(long, global = true, value_name = "NAME")]
    profile: Option<String>,
}

#[derive(Subcommand)]
enum FindingsCommand {
    /// List findings, newest first
    List {
        /// Only this bucket's
        #[arg(long)]
        bucket: Option<String>,
        /// Only objects whose key starts with this (needs --bucket)
        #[arg(long, requires = "bucket")]
        prefix: Option<String>,
        /// At most this many
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// One JSON object per line
        #[arg(long)]
        json: bool,
    },
    /// Show one finding: its identifiers, counts and locations (with redacted samples)
    Show {
        id: String,
        /// The finding as JSON
        #[arg(long)]
        json: bool,
    },
    /// How many object versions wait for a scan, are being scanned, and were given up
    Queue,
}

/// Findings per API call.
const PAGE: u32 = 1000;

pub async fn run(args: FindingsArgs) -> anyhow::Result<()> {
    let env = aws_env::load(args.profile.as_deref(), args.endpoint_url.as_deref()).await?;
    match args.command {
        FindingsCommand::List { bucket, prefix, limit, json } => list(&env, bucket, prefix, limit, json).await,
        FindingsCommand::Show { id, json } => {
            let path = format!("/-/findings/{}", percent_encode(&id));
            let finding = call(&env, "GET", &path, None).await?;
            if json {
                println!("{finding}");
            } else {
                print_details(&finding);
            }
            Ok(())
        }
        FindingsCommand::Queue => {
            let counts = call(&env, "GET", "/-/findings/queue", None).await?;
            println!("queued {}  scanning {}  given up {}", counts["queued"], counts["claimed"], counts["dead"]);
            Ok(())
        }
    }
}

async fn list(
    env: &ClientEnv,
    bucket: Option<String>,
    prefix: Option<String>,
    limit: u32,
    json: bool,
) -> anyhow::Result<()> {
    let mut after: Option<String> = None;
    let mut left = limit;
    while left > 0 {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("limit", &left.min(PAGE).to_string());
        for (name, value) in [("bucket", &bucket), ("prefix", &prefix), ("after", &after)] {
            if let Some(value) = value {
                q.append_pair(name, value);
            }
        }
        let answer = call(env, "GET", &format!("/-/findings?{}", q.finish()), None).await?;
        let page = answer["findings"].as_array().context("the server's answer has no findings")?;
        for finding in page {
            if json {
                println!("{finding}");
            } else {
                let field = |name: &str| finding[name].as_str().unwrap_or("-").to_owned();
                println!(
                    "{}  {}  {:<6}  {}  s3://{}/{}",
                    field("id"),
                    field("scanned_at"),
                    field("severity"),
                    field("type"),
                    field("bucket"),
                    field("key")
                );
            }
        }
        left = left.saturating_sub(u32::try_from(page.len()).unwrap_or(u32::MAX));
        match answer["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    Ok(())
}

fn print_details(finding: &Value) {
    let field = |name: &str| finding[name].as_str().unwrap_or("-").to_owned();
    println!("{}  s3://{}/{} (version {})", field("id"), field("bucket"), field("key"), field("version_id"));
    println!("  {}  {}  scanned {}", field("type"), field("severity"), field("scanned_at"));
    let actions: Vec<&str> = finding["actions"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    println!("  actions: {}", if actions.is_empty() { "none".to_owned() } else { actions.join(", ") });
    for found in finding["report"]["findings"].as_array().into_iter().flatten() {
        println!(
            "  {} ({}, {}): {}",
            found["identifier"].as_str().unwrap_or("-"),
            found["category"],
            found["severity"],
            found["count"]
        );
        for at in found["locations"].as_array().into_iter().flatten() {
            println!("    line {} column {}: {}", at["line"], at["column"], at["sample"].as_str().unwrap_or(""));
        }
    }
}

/// A finding id as one path segment (`/`, `?` and the like escaped).
fn percent_encode(segment: &str) -> String {
    form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}
