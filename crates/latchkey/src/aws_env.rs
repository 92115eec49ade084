//! The caller's AWS-style settings, found the way the AWS CLI finds them: environment,
//! `~/.aws/credentials` and `~/.aws/config`, `--profile`; the endpoint from `--endpoint-url`,
//! `AWS_ENDPOINT_URL` or the profile's `endpoint_url`, else a local Latchkey.

use anyhow::Context;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_s3::config::{Credentials, ProvideCredentials, Region};

const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:9000";
const DEFAULT_REGION: &str = "us-east-1";
const NO_CREDENTIALS: &str = "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, configure ~/.aws/credentials, or pass --profile";

pub struct ClientEnv {
    pub sdk: SdkConfig,
    pub credentials: Credentials,
    pub region: Region,
    pub endpoint: String,
}

pub async fn load(profile: Option<&str>, endpoint: Option<&str>) -> anyhow::Result<ClientEnv> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(profile) = profile {
        loader = loader.profile_name(profile);
    }
    if let Some(url) = endpoint {
        loader = loader.endpoint_url(url);
    }
    let sdk = loader.load().await;
    let provider = sdk.credentials_provider().context(NO_CREDENTIALS)?;
    let credentials = provider.provide_credentials().await.context(NO_CREDENTIALS)?;
    let region = sdk.region().cloned().unwrap_or_else(|| Region::from_static(DEFAULT_REGION));
    let endpoint = sdk.endpoint_url().unwrap_or(DEFAULT_ENDPOINT).trim_end_matches('/').to_owned();
    Ok(ClientEnv { sdk, credentials, region, endpoint })
}
