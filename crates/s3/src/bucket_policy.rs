//! Bucket policies: PutBucketPolicy, GetBucketPolicy, DeleteBucketPolicy, GetBucketPolicyStatus.
//! A policy is compiled by the policy engine before it is stored (a refusal names the problem
//! and where it is); the Authorizer evaluates the compiled copy in `BucketConfigs`.

use latchkey_meta::BucketSetting;
use latchkey_policy::{MAX_POLICY_BYTES, Policy, PolicyKind};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use crate::S3Front;
use crate::error::OrS3;

/// The policy document compiled as a bucket policy of `bucket`, or S3's `MalformedPolicy`.
fn compile(bucket: &str, document: &str) -> S3Result<Policy> {
    let malformed = |message: String| S3Error::with_message(S3ErrorCode::MalformedPolicy, message);
    let policy = latchkey_policy::parse(document, PolicyKind::Resource, MAX_POLICY_BYTES)
        .map_err(|e| malformed(format!("Policy is not valid: {e}")))?;
    // As in S3, a bucket policy speaks of its own bucket and its objects only.
    let own = format!("arn:aws:s3:::{bucket}");
    for (i, statement) in policy.statements.iter().enumerate() {
        if let Some(resource) = statement
            .resources()
            .find(|r| *r != own && !r.strip_prefix(own.as_str()).is_some_and(|k| k.starts_with('/')))
        {
            return Err(malformed(format!(
                "Policy has invalid resource: {resource:?} is not {own} or an object in it at Statement[{i}].Resource"
            )));
        }
    }
    Ok(policy)
}

pub(crate) async fn put_bucket_policy(
    front: &S3Front,
    req: S3Request<PutBucketPolicyInput>,
) -> S3Result<S3Response<PutBucketPolicyOutput>> {
    let input = req.input;
    front.objects.bucket(&input.bucket).await.or_s3()?;
    let policy = compile(&input.bucket, &input.policy)?;
    if !policy.is_public() {
        front.configs.set(&input.bucket, BucketSetting::Policy(Some(input.policy))).await.or_s3()?;
        return Ok(S3Response::new(PutBucketPolicyOutput::default()));
    }
    // Written only under the block it was judged with: a BlockPublicPolicy set meanwhile (on
    // any replica) makes the store refuse the write, and the next round sees the block.
    for _ in 0..3 {
        let block = front.configs.get(&input.bucket).config.public_access_block;
        if block.is_some_and(|b| b.block_public_policy) {
            return Err(s3_error!(
                AccessDenied,
                "Access Denied: the policy is public and the bucket's BlockPublicPolicy setting blocks public policies"
            ));
        }
        if front.configs.set_public_policy(&input.bucket, &input.policy, block).await.or_s3()? {
            return Ok(S3Response::new(PutBucketPolicyOutput::default()));
        }
    }
    Err(s3_error!(OperationAborted, "The bucket's settings changed while the policy was being set; try again"))
}

fn no_policy() -> S3Error {
    s3_error!(NoSuchBucketPolicy, "The bucket policy does not exist")
}

pub(crate) async fn get_bucket_policy(
    front: &S3Front,
    req: S3Request<GetBucketPolicyInput>,
) -> S3Result<S3Response<GetBucketPolicyOutput>> {
    front.objects.bucket(&req.input.bucket).await.or_s3()?;
    let rules = front.configs.get(&req.input.bucket);
    let policy = rules.config.policy.clone().ok_or_else(no_policy)?;
    Ok(S3Response::new(GetBucketPolicyOutput { policy: Some(policy) }))
}

pub(crate) async fn delete_bucket_policy(
    front: &S3Front,
    req: S3Request<DeleteBucketPolicyInput>,
) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
    front.configs.set(&req.input.bucket, BucketSetting::Policy(None)).await.or_s3()?;
    Ok(S3Response::new(DeleteBucketPolicyOutput::default()))
}

/// `IsPublic` by the rule of `latchkey_policy::Policy::is_public`.
pub(crate) async fn get_bucket_policy_status(
    front: &S3Front,
    req: S3Request<GetBucketPolicyStatusInput>,
) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
    front.objects.bucket(&req.input.bucket).await.or_s3()?;
    let rules = front.configs.get(&req.input.bucket);
    if rules.config.policy.is_none() {
        return Err(no_policy());
    }
    let status = PolicyStatus { is_public: Some(rules.is_public()) };
    Ok(S3Response::new(GetBucketPolicyStatusOutput { policy_status: Some(status) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(bucket: &str, document: &str) -> String {
        let e = compile(bucket, document).unwrap_err();
        format!("{}: {}", e.code().as_str(), e.message().unwrap_or_default())
    }

    #[test]
    fn policies_are_refused_with_the_problem_and_where() {
        let bad_effect = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Permit", "Principal": "*",
            "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}]}"#;
        assert_eq!(
            refusal("b", bad_effect),
            "MalformedPolicy: Policy is not valid: Effect must be \"Allow\" or \"Deny\" at Statement[0].Effect"
        );
        let no_principal = r#"{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b"}}"#;
        assert!(refusal("b", no_principal).starts_with("MalformedPolicy: Policy is not valid"));
    }

    #[test]
    fn resources_must_be_the_bucket_or_its_objects() {
        let on = |resource: &str| {
            format!(
                r#"{{"Statement": [{{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b"}},
                    {{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "{resource}"}}]}}"#
            )
        };
        compile("b", &on("arn:aws:s3:::b/*")).unwrap();
        let err = refusal("b", &on("arn:aws:s3:::bb/*"));
        assert!(err.starts_with("MalformedPolicy: Policy has invalid resource"), "{err}");
        assert!(err.ends_with("at Statement[1].Resource"), "{err}");
        assert!(refusal("b", &on("arn:aws:s3:::*")).contains("invalid resource"));
    }
}
