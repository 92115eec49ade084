//! Evaluation latency: 10 attached policies of 5 statements each (conditions and policy variables
//! in most), ~200k requests mixing allows, explicit denies and no-matches. Prints p50/p99/mean
//! and their ratio to the targets (p50 < 2 µs, p99 < 10 µs).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use latchkey_policy::{
    Effect, MAX_POLICY_BYTES, NamedPolicy, PolicyKind, PolicySet, PolicySource, Principal, PrincipalKind, Request,
    RequestContext, evaluate, parse,
};

const POLICIES: usize = 10;
const REQUESTS: usize = 200_000;
const WARMUP: usize = 20_000;

/// Policy `j`: home-directory reads, a prefix-limited list, an MFA-guarded delete deny, an
/// IP- and time-limited upload, and a deny on plain HTTP.
fn policy_json(j: usize) -> String {
    format!(
        r#"{{"Version": "2012-10-17", "Statement": [
        {{"Sid": "Home", "Effect": "Allow", "Action": ["s3:GetObject", "s3:GetObjectVersion"],
          "Resource": "arn:aws:s3:::bucket-{j}/home/${{aws:username}}/*",
          "Condition": {{"StringEquals": {{"aws:PrincipalTag/team": "team-{j}"}}}}}},
        {{"Sid": "List", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::bucket-{j}",
          "Condition": {{"StringLike": {{"s3:prefix": ["home/${{aws:username}}/*", ""]}}}}}},
        {{"Sid": "Protect", "Effect": "Deny", "Action": ["s3:DeleteObject*", "s3:PutObject"],
          "Resource": "arn:aws:s3:::bucket-{j}/protected/*",
          "Condition": {{"BoolIfExists": {{"aws:MultiFactorAuthPresent": "false"}}}}}},
        {{"Sid": "Upload", "Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::bucket-{j}/uploads/*",
          "Condition": {{"IpAddress": {{"aws:SourceIp": ["10.0.0.0/8", "192.168.0.0/16"]}},
                         "DateLessThan": {{"aws:CurrentTime": "2030-01-01T00:00:00Z"}}}}}},
        {{"Sid": "TlsOnly", "Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::bucket-{j}/*",
          "Condition": {{"Bool": {{"aws:SecureTransport": "false"}}}}}}
    ]}}"#
    )
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn main() {
    let attached: Vec<NamedPolicy> = (0..POLICIES)
        .map(|j| NamedPolicy {
            name: format!("policy-{j}"),
            source: PolicySource::GroupManaged,
            policy: Arc::new(
                parse(&policy_json(j), PolicyKind::Identity, MAX_POLICY_BYTES).expect("bench policy parses"),
            ),
        })
        .collect();
    let set = PolicySet { identity: &attached, ..PolicySet::default() };
    let alice = Principal {
        kind: PrincipalKind::User,
        account: "123456789012".into(),
        arn: "arn:aws:iam::123456789012:user/alice".into(),
        role_arn: None,
    };
    let mut context = RequestContext::new();
    context.insert_principal_keys(&alice);
    context.insert("aws:PrincipalTag/team", "team-7");
    context.insert("aws:SourceIp", "10.1.2.3");
    context.insert("aws:CurrentTime", "2026-12-05T10:00:00Z");
    context.insert("aws:SecureTransport", "true");
    context.insert("s3:prefix", "home/alice/");

    // (action, resource): allowed, explicitly denied, and matched by nothing.
    let mix: &[(&str, &str)] = &[
        ("s3:GetObject", "arn:aws:s3:::bucket-7/home/alice/notes.txt"),
        ("s3:ListBucket", "arn:aws:s3:::bucket-7"),
        ("s3:PutObject", "arn:aws:s3:::bucket-2/uploads/report.csv"),
        ("s3:DeleteObject", "arn:aws:s3:::bucket-9/protected/ledger"),
        ("s3:GetObject", "arn:aws:s3:::bucket-3/home/alice/notes.txt"),
        ("s3:GetObject", "arn:aws:s3:::bucket-7/home/bob/notes.txt"),
        ("s3:CreateBucket", "arn:aws:s3:::new-bucket"),
        ("latchkey:CreateShare", "arn:aws:s3:::bucket-5/uploads/x"),
    ];

    let mut counts = [0usize; 3];
    let mut samples = Vec::with_capacity(REQUESTS);
    for n in 0..WARMUP + REQUESTS {
        let (action, resource) = mix[n % mix.len()];
        let request = Request { principal: &alice, action, resource, context: &context };
        let start = Instant::now();
        let decision = black_box(evaluate(black_box(&set), black_box(&request)));
        let elapsed = start.elapsed().as_nanos() as u64;
        if n >= WARMUP {
            samples.push(elapsed);
            counts[match decision.effect {
                Effect::Allow => 0,
                Effect::ExplicitDeny => 1,
                Effect::ImplicitDeny => 2,
            }] += 1;
        }
    }
    samples.sort_unstable();
    let p50 = percentile(&samples, 0.50);
    let p99 = percentile(&samples, 0.99);
    let mean = samples.iter().sum::<u64>() as f64 / samples.len() as f64;
    println!(
        "workload: {POLICIES} policies x 5 statements, {REQUESTS} requests \
         (allow {}, explicit deny {}, implicit deny {})",
        counts[0], counts[1], counts[2]
    );
    println!("p50_ns {p50}  p99_ns {p99}  mean_ns {mean:.0}");
    println!("p50 / 2000 ns = {:.3}  p99 / 10000 ns = {:.3}", p50 as f64 / 2000.0, p99 as f64 / 10000.0);
}
