//! The `latchkey` command: `serve` runs the server, `presign` signs S3 URLs locally.

mod logging;
mod presign;
mod serve;
mod share;

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
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("latchkey: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Presign(args) => presign::run(args).await,
            Command::Share(args) => share::run(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("latchkey: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
