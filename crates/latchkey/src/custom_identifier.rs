//! `latchkey custom-identifier create|list|show|delete|test`: the server's custom identifiers,
//! as Macie's custom data identifiers, through the signed `/-/findings/identifiers` API (root, or
//! `latchkey:CreateCustomIdentifier`, `latchkey:DeleteCustomIdentifier`,
//! `latchkey:GetCustomIdentifier` on `arn:latchkey:scan:::custom-identifier/NAME`). Scans that
//! start after a creation or deletion, on every replica, use the new set.

use anyhow::Context;
use clap::{Args, Subcommand};
use latchkey::api::call;
use latchkey::aws_env;
use serde_json::{Value, json};

const IDENTIFIERS: &str = "/-/findings/identifiers";

#[derive(Args)]
pub struct CustomIdentifierArgs {
    #[command(subcommand)]
    command: CustomIdentifierCommand,
    /// The server's URL [default: AWS_ENDPOINT_URL or the profile's endpoint_url, else http://127.0.0.1:9000]
    #[arg(long, global = true, value_name = "URL")]
    endpoint_url: Option<String>,
    /// The AWS CLI profile to take credentials and settings from
    #[arg(long, global = true, value_name = "NAME")]
    profile: Option<String>,
}

#[derive(Subcommand)]
enum CustomIdentifierCommand {
    /// Create one; it cannot be edited afterwards (delete it and create another)
    Create {
        /// 1-128 letters, digits, `_`, `-` or `.`; unique, whatever the case
        #[arg(long)]
        name: String,
        #[command(flatten)]
        fields: Fields,
    },
    /// List every custom identifier, the server's configuration file's too
    List,
    /// Show one
    Show { name: String },
    /// Delete one created through the API
    Delete { name: String },
    /// Show what an identifier would find in a text (at most 1000 characters), without creating it
    Test {
        /// The name it is tested under (permissions may be granted by name)
        #[arg(long, default_value = "test")]
        name: String,
        #[command(flatten)]
        fields: Fields,
        /// The sample text
        #[arg(long)]
        text: String,
    },
}

/// An identifier's fields (Macie's, with its limits).
#[derive(Args)]
struct Fields {
    /// The regular expression (Rust regex syntax, at most 512 characters)
    #[arg(long)]
    regex: String,
    /// A match counts only if one of these words comes before it within --max-match-distance
    #[arg(long = "keyword", value_name = "WORD")]
    keywords: Vec<String>,
    /// How far before a match's end a keyword may end, in bytes (1-300)
    #[arg(long, default_value_t = 50)]
    max_match_distance: u32,
    /// A match containing one of these words is dropped
    #[arg(long = "ignore-word", value_name = "WORD")]
    ignore_words: Vec<String>,
    /// Low, Medium or High
    #[arg(long, default_value = "Medium")]
    severity: String,
    /// credentials, financial, personal, national_id or custom
    #[arg(long, default_value = "custom")]
    category: String,
}

impl Fields {
    fn json(&self, name: &str) -> Value {
        json!({
            "name": name, "regex": self.regex, "keywords": self.keywords,
            "max_match_distance": self.max_match_distance, "ignore_words": self.ignore_words,
            "severity": self.severity, "category": self.category,
        })
    }
}

pub async fn run(args: CustomIdentifierArgs) -> anyhow::Result<()> {
    let env = aws_env::load(args.profile.as_deref(), args.endpoint_url.as_deref()).await?;
    match args.command {
        CustomIdentifierCommand::Create { name, fields } => {
            print_identifier(&call(&env, "POST", IDENTIFIERS, Some(&fields.json(&name))).await?);
        }
        CustomIdentifierCommand::List => {
            let answer = call(&env, "GET", IDENTIFIERS, None).await?;
            let identifiers = answer["identifiers"].as_array().context("the server's answer has no identifiers")?;
            identifiers.iter().for_each(print_identifier);
        }
        CustomIdentifierCommand::Show { name } => {
            let identifier = call(&env, "GET", &named(&name), None).await?;
            println!("{}", serde_json::to_string_pretty(&identifier)?);
        }
        CustomIdentifierCommand::Delete { name } => {
            call(&env, "DELETE", &named(&name), None).await?;
            println!("deleted {name}");
        }
        CustomIdentifierCommand::Test { name, fields, text } => {
            let asked = json!({ "identifier": fields.json(&name), "text": text });
            let answer = call(&env, "POST", &format!("{IDENTIFIERS}/test"), Some(&asked)).await?;
            println!("{} matches", answer["match_count"]);
            for location in answer["locations"].as_array().into_iter().flatten() {
                let at = |name: &str| location[name].as_u64().unwrap_or(0);
                let sample = location["sample"].as_str().unwrap_or_default();
                println!("  line {} column {}: {}", at("line"), at("column"), sample.escape_debug());
            }
        }
    }
    Ok(())
}

fn named(name: &str) -> String {
    format!("{IDENTIFIERS}/{}", form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>())
}

fn print_identifier(identifier: &Value) {
    let field = |name: &str| identifier[name].as_str().unwrap_or("-").to_owned();
    // A stored identifier that no longer fits beside the configuration file's is left out.
    let source = match identifier["scanned"].as_bool() {
        Some(false) => format!("{} (left out of scans)", field("source")),
        _ => field("source"),
    };
    println!(
        "{:<24}  {:<6}  {:<6}  {:<11}  {}",
        field("name"),
        source,
        field("severity"),
        field("category"),
        field("regex").escape_debug()
    );
}
