//! `latchkey policy simulate|validate`: the IAM policy simulator of a server from the command
//! line (SimulatePrincipalPolicy, signed like `latchkey share`), and a local policy check with
//! the engine's parser and warnings. Exit codes for scripts: 0 allowed / clean, 1 denied /
//! warnings, 2 an error.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use latchkey::api::{QueryError, XmlElement, iam};
use latchkey::aws_env::{self, ClientEnv};
use latchkey_policy::PolicyKind;
use serde_json::{Value, json};

#[derive(Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Ask the server whether a user or role may perform actions on a resource, and why:
    /// the statements that decided and the conditions that failed
    Simulate {
        /// The user or role: its name (looked up as a user, then as a role) or its ARN
        #[arg(long, value_name = "USER|ROLE|ARN")]
        principal: String,
        /// The action to simulate, such as s3:GetObject (repeatable)
        #[arg(long = "action", value_name = "ACTION", required = true)]
        actions: Vec<String>,
        /// The resource's ARN, such as arn:aws:s3:::BUCKET/KEY (repeatable) [default: *]
        #[arg(long = "resource", value_name = "ARN")]
        resources: Vec<String>,
        /// A condition key the request carries, such as aws:MultiFactorAuthPresent=true
        /// (repeatable; repeat a key for several values)
        #[arg(long = "context", value_name = "KEY=VALUE", value_parser = parse_context)]
        context: Vec<(String, String)>,
        /// The server's URL [default: AWS_ENDPOINT_URL or the profile's endpoint_url, else http://127.0.0.1:9000]
        #[arg(long, value_name = "URL")]
        endpoint_url: Option<String>,
        /// The AWS CLI profile to take credentials and settings from
        #[arg(long, value_name = "NAME")]
        profile: Option<String>,
        /// Print the results as JSON instead of `key: value` lines
        #[arg(long)]
        json: bool,
    },
    /// Check a policy document locally: errors with their location, then likely mistakes
    Validate {
        /// The policy document (JSON)
        file: PathBuf,
        /// What the policy is attached to, which decides the elements it needs
        #[arg(long, value_enum, default_value_t = Kind::Identity)]
        kind: Kind,
    },
}

/// What a policy is attached to, as `--kind` names it.
#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    /// A user's, group's or role's policy (no Principal)
    Identity,
    /// A bucket policy (Principal required)
    Resource,
    /// A role's trust policy
    Trust,
    /// A permissions boundary
    Boundary,
    /// A session policy (AssumeRole's Policy)
    Session,
}

impl From<Kind> for PolicyKind {
    fn from(kind: Kind) -> PolicyKind {
        match kind {
            Kind::Identity => PolicyKind::Identity,
            Kind::Resource => PolicyKind::Resource,
            Kind::Trust => PolicyKind::Trust,
            Kind::Boundary => PolicyKind::Boundary,
            Kind::Session => PolicyKind::Session,
        }
    }
}

/// Exit code 1: an action is denied, or the policy has warnings.
const NOT_CLEAN: u8 = 1;
/// Exit code 2: the command could not answer.
const FAILED: u8 = 2;

pub async fn run(args: PolicyArgs) -> ExitCode {
    let outcome = match args.command {
        PolicyCommand::Simulate { principal, actions, resources, context, endpoint_url, profile, json } => {
            let request = Simulation { principal, actions, resources, context };
            simulate(&request, endpoint_url.as_deref(), profile.as_deref(), json).await
        }
        PolicyCommand::Validate { file, kind } => validate(&file, kind.into()),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("latchkey: {e:#}");
            ExitCode::from(FAILED)
        }
    }
}

/// `KEY=VALUE`.
fn parse_context(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!(
            "{text:?} is not KEY=VALUE: write a condition key and its value, such as aws:MultiFactorAuthPresent=true"
        )),
    }
}

struct Simulation {
    principal: String,
    actions: Vec<String>,
    resources: Vec<String>,
    context: Vec<(String, String)>,
}

impl Simulation {
    /// SimulatePrincipalPolicy's parameters. Context values go as strings (stringList when a key
    /// repeats): the engine reads each as its condition operator needs.
    fn params(&self, source_arn: &str) -> Vec<(String, String)> {
        let mut params = vec![("PolicySourceArn".to_owned(), source_arn.to_owned())];
        for (i, action) in self.actions.iter().enumerate() {
            params.push((format!("ActionNames.member.{}", i + 1), action.clone()));
        }
        for (i, resource) in self.resources.iter().enumerate() {
            params.push((format!("ResourceArns.member.{}", i + 1), resource.clone()));
        }
        let mut keys: Vec<&str> = Vec::new();
        for (key, _) in &self.context {
            if !keys.contains(&key.as_str()) {
                keys.push(key);
            }
        }
        for (n, key) in keys.iter().enumerate() {
            let entry = format!("ContextEntries.member.{}", n + 1);
            let values: Vec<&str> = self.context.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect();
            let key_type = if values.len() > 1 { "stringList" } else { "string" };
            params.push((format!("{entry}.ContextKeyName"), (*key).to_owned()));
            params.push((format!("{entry}.ContextKeyType"), key_type.to_owned()));
            for (m, value) in values.iter().enumerate() {
                params.push((format!("{entry}.ContextKeyValues.member.{}", m + 1), (*value).to_owned()));
            }
        }
        params
    }
}

async fn simulate(
    request: &Simulation,
    endpoint: Option<&str>,
    profile: Option<&str>,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let env = aws_env::load(profile, endpoint).await?;
    let source_arn = principal_arn(&env, &request.principal).await?;
    let params = request.params(&source_arn);
    let borrowed: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let answer = iam(&env, "SimulatePrincipalPolicy", &borrowed)
        .await
        .with_context(|| format!("cannot simulate the policies of {source_arn}"))?;
    let results: Vec<EvalResult> = answer.members("EvaluationResults").map(EvalResult::read).collect();
    if results.is_empty() {
        bail!("the server's answer has no evaluation results");
    }
    if as_json {
        println!("{}", Value::Array(results.iter().map(EvalResult::to_json).collect()));
    } else {
        let blocks: Vec<String> = results.iter().map(EvalResult::to_lines).collect();
        println!("principal: {source_arn}\n\n{}", blocks.join("\n\n"));
    }
    let all_allowed = results.iter().all(EvalResult::allowed);
    Ok(if all_allowed { ExitCode::SUCCESS } else { ExitCode::from(NOT_CLEAN) })
}

/// An ARN as given; a bare name is looked up as a user (GetUser), then as a role (GetRole).
async fn principal_arn(env: &ClientEnv, principal: &str) -> anyhow::Result<String> {
    if principal.starts_with("arn:") {
        return Ok(principal.to_owned());
    }
    let not_found = |e: &anyhow::Error| e.downcast_ref::<QueryError>().is_some_and(|q| q.code == "NoSuchEntity");
    let user = match iam(env, "GetUser", &[("UserName", principal)]).await {
        Err(e) if not_found(&e) => None,
        found => Some(found.with_context(|| format!("cannot look up the user {principal:?}"))?),
    };
    let arn = match user {
        Some(answer) => answer.child("User").and_then(|u| u.child_text("Arn")).map(str::to_owned),
        None => match iam(env, "GetRole", &[("RoleName", principal)]).await {
            Err(e) if not_found(&e) => {
                bail!("no user or role is named {principal:?}: check the name, or pass the principal's ARN")
            }
            found => found
                .with_context(|| format!("cannot look up the role {principal:?}"))?
                .child("Role")
                .and_then(|r| r.child_text("Arn"))
                .map(str::to_owned),
        },
    };
    arn.with_context(|| format!("the server's answer for {principal:?} has no Arn"))
}

/// One `EvaluationResults` member, as the server wrote it.
#[derive(Debug, PartialEq)]
struct EvalResult {
    action: String,
    resource: String,
    /// `allowed`, `explicitDeny` or `implicitDeny`.
    decision: String,
    reason: Option<String>,
    /// (policy, its type, Sid).
    statements: Vec<(String, String, Option<String>)>,
    failed_conditions: Vec<String>,
    missing_context: Vec<String>,
}

impl EvalResult {
    fn read(member: &XmlElement) -> EvalResult {
        let text = |name| member.child_text(name).unwrap_or_default().to_owned();
        let texts = |name| member.members(name).map(|m| m.text.clone()).collect();
        EvalResult {
            action: text("EvalActionName"),
            resource: text("EvalResourceName"),
            decision: text("EvalDecision"),
            reason: member.child_text("DecisionReason").map(str::to_owned),
            statements: member
                .members("MatchedStatements")
                .map(|s| {
                    let field = |name| s.child_text(name).unwrap_or_default().to_owned();
                    (field("SourcePolicyId"), field("SourcePolicyType"), s.child_text("Sid").map(str::to_owned))
                })
                .collect(),
            failed_conditions: texts("FailedConditions"),
            missing_context: texts("MissingContextValues"),
        }
    }

    fn allowed(&self) -> bool {
        self.decision == "allowed"
    }

    fn to_lines(&self) -> String {
        let mut lines = vec![
            format!("action: {}", self.action),
            format!("resource: {}", self.resource),
            format!("decision: {} ({})", if self.allowed() { "Allow" } else { "Deny" }, self.decision),
        ];
        lines.extend(self.reason.iter().map(|reason| format!("reason: {reason}")));
        for (policy, kind, sid) in &self.statements {
            let sid = sid.as_deref().map(|sid| format!(", sid: {sid}")).unwrap_or_default();
            lines.push(format!("policy: {policy} ({kind}){sid}"));
        }
        lines.extend(self.failed_conditions.iter().map(|failed| format!("failed condition: {failed}")));
        lines.extend(self.missing_context.iter().map(|key| format!("missing context: {key}")));
        lines.join("\n")
    }

    fn to_json(&self) -> Value {
        json!({
            "action": self.action,
            "resource": self.resource,
            "decision": self.decision,
            "allowed": self.allowed(),
            "reason": self.reason,
            "matched_statements": self.statements.iter().map(|(policy, kind, sid)| {
                json!({"policy": policy, "type": kind, "sid": sid})
            }).collect::<Vec<_>>(),
            "failed_conditions": self.failed_conditions,
            "missing_context_values": self.missing_context,
        })
    }
}

fn validate(file: &PathBuf, kind: PolicyKind) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read the policy {}", file.display()))?;
    match latchkey_policy::validate(&text, kind) {
        Err(e) => {
            println!("{}: error: {} at {}", file.display(), e.message, e.location);
            Ok(ExitCode::from(FAILED))
        }
        Ok(warnings) if warnings.is_empty() => {
            println!("{}: valid, no warnings", file.display());
            Ok(ExitCode::SUCCESS)
        }
        Ok(warnings) => {
            for warning in &warnings {
                println!("{}: warning: {} at {}", file.display(), warning.message, warning.location);
            }
            Ok(ExitCode::from(NOT_CLEAN))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_arguments_are_key_equals_value() {
        assert_eq!(parse_context("aws:SourceIp=10.0.0.1").unwrap(), ("aws:SourceIp".to_owned(), "10.0.0.1".to_owned()));
        assert_eq!(parse_context("k=a=b").unwrap(), ("k".to_owned(), "a=b".to_owned()));
        assert_eq!(parse_context("k=").unwrap(), ("k".to_owned(), String::new()));
        assert!(parse_context("=v").unwrap_err().contains("such as aws:MultiFactorAuthPresent=true"));
        assert!(parse_context("novalue").is_err());
    }

    #[test]
    fn a_repeated_context_key_is_one_list_entry() {
        let simulation = Simulation {
            principal: "alice".into(),
            actions: vec!["s3:GetObject".into(), "s3:PutObject".into()],
            resources: vec![],
            context: vec![
                ("aws:TagKeys".into(), "a".into()),
                ("k".into(), "v".into()),
                ("aws:TagKeys".into(), "b".into()),
            ],
        };
        let params = simulation.params("arn:aws:iam::1:user/alice");
        let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        assert_eq!(get("PolicySourceArn"), Some("arn:aws:iam::1:user/alice"));
        assert_eq!(get("ActionNames.member.2"), Some("s3:PutObject"));
        assert_eq!(get("ResourceArns.member.1"), None, "no resource: the server defaults to *");
        assert_eq!(get("ContextEntries.member.1.ContextKeyName"), Some("aws:TagKeys"));
        assert_eq!(get("ContextEntries.member.1.ContextKeyType"), Some("stringList"));
        assert_eq!(get("ContextEntries.member.1.ContextKeyValues.member.2"), Some("b"));
        assert_eq!(get("ContextEntries.member.2.ContextKeyType"), Some("string"));
        assert_eq!(get("ContextEntries.member.3.ContextKeyName"), None);
    }

    #[test]
    fn results_read_back_with_the_latchkey_extensions() {
        let xml = "<SimulatePrincipalPolicyResult><EvaluationResults><member>\
            <EvalActionName>s3:DeleteObject</EvalActionName><EvalResourceName>arn:aws:s3:::b/k</EvalResourceName>\
            <EvalDecision>implicitDeny</EvalDecision><MatchedStatements><member><SourcePolicyId>p</SourcePolicyId>\
            <SourcePolicyType>user</SourcePolicyType><Sid>Read</Sid></member></MatchedStatements>\
            <MissingContextValues><member>aws:MultiFactorAuthPresent</member></MissingContextValues>\
            <DecisionReason>no permissions boundary allows the action</DecisionReason>\
            <FailedConditions><member>p/Mfa: aws:MultiFactorAuthPresent is not in the request</member></FailedConditions>\
            </member></EvaluationResults></SimulatePrincipalPolicyResult>";
        let root = XmlElement::parse(xml).unwrap();
        let results: Vec<EvalResult> = root.members("EvaluationResults").map(EvalResult::read).collect();
        let [result] = results.as_slice() else { panic!("{results:?}") };
        assert!(!result.allowed());
        assert_eq!(
            result.to_lines(),
            "action: s3:DeleteObject\nresource: arn:aws:s3:::b/k\ndecision: Deny (implicitDeny)\n\
             reason: no permissions boundary allows the action\npolicy: p (user), sid: Read\n\
             failed condition: p/Mfa: aws:MultiFactorAuthPresent is not in the request\n\
             missing context: aws:MultiFactorAuthPresent"
        );
        let as_json = result.to_json();
        assert_eq!(as_json["allowed"], false);
        assert_eq!(as_json["matched_statements"][0]["sid"], "Read");
        assert_eq!(as_json["failed_conditions"][0], "p/Mfa: aws:MultiFactorAuthPresent is not in the request");
    }
}
