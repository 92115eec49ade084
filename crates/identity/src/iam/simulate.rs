//! The IAM policy simulator: SimulatePrincipalPolicy (a user's or role's own policies, plus any
//! given) and SimulateCustomPolicy (only the given policies). Each action is evaluated on each
//! resource by the policy engine's `explain`, and answered as AWS does, with Latchkey extensions
//! that botocore ignores and `latchkey policy simulate` reads: each matched statement's `<Sid>`,
//! and per result `<DecisionReason>` (the engine's reason) and `<FailedConditions>` (the
//! conditions that kept a statement from applying).

use std::sync::Arc;

use latchkey_policy::{
    Effect, Explanation, MAX_POLICY_BYTES, NamedPolicy, PolicyKind, PolicySet, PolicySource, Principal, PrincipalKind,
    Request, RequestContext, StatementRef, ValueType, reads_as,
};

use super::{Call, QueryError, QueryResult};
use crate::Caller;
use crate::directory::PrincipalPolicies;
use crate::query::{Api, ContextEntry, ContextKeyType, ResponseWriter, not_null};

/// Results one call may ask for (actions x resources): each is an evaluation and a few hundred
/// bytes of XML, and AWS pages long answers where this one is always whole.
const MAX_RESULTS: usize = 1000;

pub fn principal(call: &Call<'_>) -> QueryResult {
    let source = call.params.required("PolicySourceArn")?;
    call.authorize("iam:SimulatePrincipalPolicy", source)?;
    let owner = principal_policies(call, source)?;
    let mut identity = owner.identity.clone();
    identity.extend(input_policies(call, "PolicyInputList", PolicyKind::Identity, PolicySource::Custom)?);
    // "If a permissions boundary is attached to an entity and you pass in a different permissions
    // boundary policy using this parameter, then the new permissions boundary policy is used."
    let boundary = boundary_input(call)?.or_else(|| owner.boundary.clone());
    // The caller defaults to the source; CallerArn simulates another user holding its policies.
    let (principal, context) = match call.params.get("CallerArn") {
        Some(arn) => caller_user(call, arn)?,
        None => {
            let caller = Caller::User { policies: owner.clone() };
            (owner.principal.clone(), own_context(call, &caller))
        }
    };
    let refused = owner.poisoned.then(|| {
        format!("{}: a policy attached to it no longer compiles, so it is refused everything", owner.principal.arn)
    });
    let simulation = Simulation { identity, boundary, resource: resource_policy(call)?, principal, context, refused };
    simulation.answer(call, "SimulatePrincipalPolicy")
}

pub fn custom(call: &Call<'_>) -> QueryResult {
    call.authorize("iam:SimulateCustomPolicy", "*")?;
    let identity = input_policies(call, "PolicyInputList", PolicyKind::Identity, PolicySource::Custom)?;
    if identity.is_empty() {
        return Err(not_null("policyInputList"));
    }
    let resource = resource_policy(call)?;
    let (principal, context) = match call.params.get("CallerArn") {
        Some(arn) => caller_user(call, arn)?,
        // AWS: "CallerArn is required if you include a ResourcePolicy so that the policy's
        // Principal element has a value to use in evaluating the policy."
        None if resource.is_some() => {
            return Err(QueryError::invalid_input(
                "CallerArn is required with a ResourcePolicy, so that its Principal element has a caller to match.",
            ));
        }
        None => (
            Principal {
                kind: PrincipalKind::User,
                account: call.identity.account().id.clone(),
                arn: String::new(),
                role_arn: None,
            },
            RequestContext::new(),
        ),
    };
    let simulation =
        Simulation { identity, boundary: boundary_input(call)?, resource, principal, context, refused: None };
    simulation.answer(call, "SimulateCustomPolicy")
}

/// Everything one simulation evaluates with.
struct Simulation {
    identity: Vec<NamedPolicy>,
    boundary: Option<NamedPolicy>,
    resource: Option<NamedPolicy>,
    principal: Principal,
    /// The caller's own keys (the request's context entries are added by `answer`).
    context: RequestContext,
    /// Why every action is refused whatever the policies say.
    refused: Option<String>,
}

impl Simulation {
    fn answer(mut self, call: &Call<'_>, action: &'static str) -> QueryResult {
        let actions = call.params.members("ActionNames");
        if actions.is_empty() {
            return Err(not_null("actionNames"));
        }
        if let Some(bad) = actions.iter().find(|name| !is_action_name(name)) {
            return Err(QueryError::invalid_input(format!(
                "ActionNames: {bad:?} is not an action name; write service:Action, such as s3:GetObject."
            )));
        }
        let mut resources = call.params.members("ResourceArns");
        if resources.is_empty() {
            resources.push("*");
        }
        if actions.len() * resources.len() > MAX_RESULTS {
            return Err(QueryError::invalid_input(format!(
                "{} actions on {} resources is more than {MAX_RESULTS} results; simulate fewer at a time.",
                actions.len(),
                resources.len()
            )));
        }
        apply_context_entries(&call.params.context_entries()?, &mut self.context)?;
        let set = PolicySet {
            identity: &self.identity,
            resource: self.resource.as_ref(),
            boundary: self.boundary.as_ref(),
            session: &[],
        };
        let pairs = actions.iter().flat_map(|action| resources.iter().map(move |resource| (*action, *resource)));
        let mut w = ResponseWriter::new(Api::Iam, action);
        w.list("EvaluationResults", pairs, |member, (action, resource)| {
            let request = Request { principal: &self.principal, action, resource, context: &self.context };
            let explanation = match &self.refused {
                Some(why) => refused_explanation(why),
                None => latchkey_policy::explain(&set, &request),
            };
            write_result(member, action, resource, &explanation);
        })
        .bool("IsTruncated", false);
        Ok(w)
    }
}

/// A principal whose stored policies no longer compile is refused everything (as
/// `Identity::authorize` refuses it), and the simulation says why.
fn refused_explanation(why: &str) -> Explanation {
    Explanation {
        effect: Effect::ImplicitDeny,
        deciding: None,
        matched: Vec::new(),
        failed: Vec::new(),
        unmet_conditions: Vec::new(),
        missing_keys: Vec::new(),
        reason: why.to_owned(),
    }
}

/// One `EvaluationResults` member. MatchedStatements are the statements that decided: the deny
/// alone when one denies (as AWS lists it), else every statement that applied.
fn write_result(w: &mut ResponseWriter, action: &str, resource: &str, explanation: &Explanation) {
    let matched: Vec<&StatementRef> = match (&explanation.effect, &explanation.deciding) {
        (Effect::ExplicitDeny, Some(deny)) => vec![deny],
        _ => explanation.matched.iter().collect(),
    };
    let failed: Vec<String> = explanation
        .unmet_conditions
        .iter()
        .map(|(statement, why)| format!("{}: {why}", statement_name(statement)))
        .collect();
    w.text("EvalActionName", action)
        .text("EvalResourceName", resource)
        .text("EvalDecision", decision_name(explanation.effect))
        .list("MatchedStatements", matched, |m, statement| {
            m.text("SourcePolicyId", &statement.policy_name)
                .text("SourcePolicyType", source_policy_type(statement.source))
                .opt_text("Sid", statement.sid.as_deref());
        })
        .text_list("MissingContextValues", explanation.missing_keys.iter().map(String::as_str))
        .text("DecisionReason", &explanation.reason)
        .text_list("FailedConditions", failed.iter().map(String::as_str));
}

/// `policy/Sid`, or `policy/Statement[i]` for a statement without one.
fn statement_name(statement: &StatementRef) -> String {
    match &statement.sid {
        Some(sid) => format!("{}/{sid}", statement.policy_name),
        None => format!("{}/Statement[{}]", statement.policy_name, statement.index),
    }
}

/// AWS's `PolicyEvaluationDecisionType`.
fn decision_name(effect: Effect) -> &'static str {
    match effect {
        Effect::Allow => "allowed",
        Effect::ExplicitDeny => "explicitDeny",
        Effect::ImplicitDeny => "implicitDeny",
    }
}

/// The policy type as the simulator reports it.
fn source_policy_type(source: PolicySource) -> &'static str {
    match source {
        PolicySource::UserInline => "user",
        PolicySource::GroupInline => "group",
        PolicySource::RoleInline => "role",
        // Customer managed policies; a boundary is one too.
        PolicySource::UserManaged | PolicySource::GroupManaged | PolicySource::RoleManaged | PolicySource::Boundary => {
            "user-managed"
        }
        PolicySource::Bucket | PolicySource::Trust => "resource",
        // Policies given in the request (PolicyInputList, a session policy) belong to no one.
        PolicySource::Custom | PolicySource::Session => "none",
    }
}

/// `service:Action`, wildcards allowed, as IAM's ActionNameType (3 to 128 characters).
fn is_action_name(name: &str) -> bool {
    (3..=128).contains(&name.len())
        && name.split_once(':').is_some_and(|(service, action)| !service.is_empty() && !action.is_empty())
}

/// The user or role `arn` names, with its compiled policies.
fn principal_policies(call: &Call<'_>, arn: &str) -> Result<Arc<PrincipalPolicies>, QueryError> {
    match call.identity.principal_caller(arn) {
        Some(Caller::User { policies, .. }) if policies.principal.arn == arn => Ok(policies),
        Some(Caller::Root) => Err(QueryError::invalid_input(
            "PolicySourceArn names the root user, which no policy limits; name a user or a role.",
        )),
        _ => Err(QueryError::no_such_entity(format!("No user or role with the ARN {arn} exists."))),
    }
}

/// CallerArn: an existing user, as principal with the keys it brings to a request.
fn caller_user(call: &Call<'_>, arn: &str) -> Result<(Principal, RequestContext), QueryError> {
    let account = call.identity.account();
    let caller = call
        .identity
        .principal_caller(arn)
        .filter(|caller| {
            let principal = caller.principal(account);
            principal.kind == PrincipalKind::User && principal.arn == arn
        })
        .ok_or_else(|| {
            QueryError::invalid_input(format!("CallerArn {arn} must name an existing user of this account."))
        })?;
    Ok((caller.principal(account), own_context(call, &caller)))
}

fn own_context(call: &Call<'_>, caller: &Caller) -> RequestContext {
    let mut context = RequestContext::new();
    call.identity.caller_context(caller, &mut context);
    context
}

/// The policies of one `{list}.member.N` input, named `{list}.N` as AWS names them.
fn input_policies(
    call: &Call<'_>,
    list: &str,
    kind: PolicyKind,
    source: PolicySource,
) -> Result<Vec<NamedPolicy>, QueryError> {
    call.params
        .members(list)
        .into_iter()
        .enumerate()
        .map(|(i, document)| compile_input(&format!("{list}.{}", i + 1), document, kind, source))
        .collect()
}

/// PermissionsBoundaryPolicyInputList: at most one boundary, as an entity has.
fn boundary_input(call: &Call<'_>) -> Result<Option<NamedPolicy>, QueryError> {
    let mut boundaries =
        input_policies(call, "PermissionsBoundaryPolicyInputList", PolicyKind::Boundary, PolicySource::Boundary)?;
    if boundaries.len() > 1 {
        return Err(QueryError::invalid_input(
            "PermissionsBoundaryPolicyInputList takes one policy: an entity has one permissions boundary.",
        ));
    }
    Ok(boundaries.pop())
}

/// ResourcePolicy: a bucket policy (Principal and Resource required).
fn resource_policy(call: &Call<'_>) -> Result<Option<NamedPolicy>, QueryError> {
    call.params
        .get("ResourcePolicy")
        .map(|document| compile_input("ResourcePolicy", document, PolicyKind::Resource, PolicySource::Bucket))
        .transpose()
}

fn compile_input(
    name: &str,
    document: &str,
    kind: PolicyKind,
    source: PolicySource,
) -> Result<NamedPolicy, QueryError> {
    latchkey_policy::parse(document, kind, MAX_POLICY_BYTES)
        .map(|policy| NamedPolicy { name: name.to_owned(), source, policy: Arc::new(policy) })
        .map_err(|e| QueryError::malformed_policy(format!("{name}: {e}")))
}

/// Adds ContextEntries to `context`, over the caller's own keys of the same name. Values are
/// checked against their ContextKeyType, so a typo is an error and not a silent mismatch.
fn apply_context_entries(entries: &[ContextEntry], context: &mut RequestContext) -> Result<(), QueryError> {
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("ContextEntries.member.{}", i + 1);
        if entry.key_values.is_empty() {
            return Err(QueryError::invalid_input(format!("{at}: {} has no ContextKeyValues.", entry.key_name)));
        }
        if !entry.key_type.is_list() && entry.key_values.len() > 1 {
            return Err(QueryError::invalid_input(format!(
                "{at}: {} is of type {} and takes one value, not {}; use {}List for several.",
                entry.key_name,
                entry.key_type.as_str(),
                entry.key_values.len(),
                entry.key_type.as_str()
            )));
        }
        if let Some(bad) = entry.key_values.iter().find(|value| !reads_as(value_type(entry.key_type), value)) {
            return Err(QueryError::invalid_input(format!(
                "{at}: {bad:?} is not a valid {} value for {}.",
                entry.key_type.as_str(),
                entry.key_name
            )));
        }
        context.insert_multi(&entry.key_name, entry.key_values.iter().cloned());
    }
    Ok(())
}

/// The engine's reading of a value of `key_type`.
fn value_type(key_type: ContextKeyType) -> ValueType {
    match key_type {
        ContextKeyType::String | ContextKeyType::StringList => ValueType::String,
        ContextKeyType::Numeric | ContextKeyType::NumericList => ValueType::Numeric,
        ContextKeyType::Boolean | ContextKeyType::BooleanList => ValueType::Boolean,
        ContextKeyType::Ip | ContextKeyType::IpList => ValueType::Ip,
        ContextKeyType::Binary | ContextKeyType::BinaryList => ValueType::Binary,
        ContextKeyType::Date | ContextKeyType::DateList => ValueType::Date,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::QueryParams;

    fn entries(body: &str) -> Vec<ContextEntry> {
        QueryParams::parse(body.as_bytes()).context_entries().expect("well-formed entries")
    }

    #[test]
    fn context_entries_replace_the_callers_keys_and_keep_lists() {
        let mut context = RequestContext::new();
        context.insert("aws:MultiFactorAuthPresent", "false");
        apply_context_entries(
            &entries(
                "ContextEntries.member.1.ContextKeyName=aws:MultiFactorAuthPresent&ContextEntries.member.1.ContextKeyType=boolean\
                 &ContextEntries.member.1.ContextKeyValues.member.1=true\
                 &ContextEntries.member.2.ContextKeyName=aws:TagKeys&ContextEntries.member.2.ContextKeyType=stringList\
                 &ContextEntries.member.2.ContextKeyValues.member.1=a&ContextEntries.member.2.ContextKeyValues.member.2=b",
            ),
            &mut context,
        )
        .expect("valid entries");
        assert_eq!(context.get("aws:multifactorauthpresent"), Some(&["true".to_string()][..]));
        assert_eq!(context.get("aws:TagKeys"), Some(&["a".to_string(), "b".to_string()][..]));
    }

    #[test]
    fn context_values_must_read_as_their_type() {
        for (body, phrase) in [
            (
                "ContextEntries.member.1.ContextKeyName=aws:SourceIp&ContextEntries.member.1.ContextKeyType=ip\
                 &ContextEntries.member.1.ContextKeyValues.member.1=10.0.0.300",
                "ContextEntries.member.1: \"10.0.0.300\" is not a valid ip value for aws:SourceIp.",
            ),
            (
                "ContextEntries.member.1.ContextKeyName=k&ContextEntries.member.1.ContextKeyType=numeric\
                 &ContextEntries.member.1.ContextKeyValues.member.1=1&ContextEntries.member.1.ContextKeyValues.member.2=2",
                "k is of type numeric and takes one value, not 2; use numericList for several.",
            ),
            (
                "ContextEntries.member.1.ContextKeyName=k&ContextEntries.member.1.ContextKeyType=date",
                "ContextEntries.member.1: k has no ContextKeyValues.",
            ),
        ] {
            let error = apply_context_entries(&entries(body), &mut RequestContext::new()).unwrap_err();
            assert_eq!(error.code, "InvalidInput");
            assert!(error.message.contains(phrase), "{}", error.message);
        }
    }

    #[test]
    fn action_names_are_service_colon_action() {
        assert!(is_action_name("s3:GetObject") && is_action_name("s3:*"));
        for bad in ["GetObject", ":GetObject", "s3:", "", &format!("s3:{}", "A".repeat(126))] {
            assert!(!is_action_name(bad), "{bad}");
        }
    }

    #[test]
    fn malformed_inputs_name_the_input_and_the_place() {
        let error = compile_input(
            "PolicyInputList.2",
            r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:GetObject"}}"#,
            PolicyKind::Identity,
            PolicySource::Custom,
        )
        .unwrap_err();
        assert_eq!(error.code, "MalformedPolicyDocument");
        assert!(
            error.message.starts_with("PolicyInputList.2: ") && error.message.contains("Statement[0]"),
            "{}",
            error.message
        );
    }

    fn explanation(effect: Effect) -> Explanation {
        let statement = |name: &str, source, sid: Option<&str>, index| StatementRef {
            policy_name: name.into(),
            source,
            sid: sid.map(str::to_owned),
            index,
        };
        Explanation {
            effect,
            deciding: Some(statement("deny-all", PolicySource::Boundary, Some("Stop"), 0)),
            matched: vec![
                statement("home", PolicySource::UserInline, None, 1),
                statement("deny-all", PolicySource::Boundary, Some("Stop"), 0),
            ],
            failed: Vec::new(),
            unmet_conditions: vec![(
                statement("ResourcePolicy", PolicySource::Bucket, Some("Mfa"), 2),
                "aws:MultiFactorAuthPresent is not in the request".into(),
            )],
            missing_keys: vec!["aws:MultiFactorAuthPresent".into()],
            reason: "explicit deny in a permissions boundary".into(),
        }
    }

    fn result_xml(explanation: &Explanation) -> String {
        let mut w = ResponseWriter::new(Api::Iam, "SimulateCustomPolicy");
        write_result(&mut w, "s3:DeleteObject", "arn:aws:s3:::b/k", explanation);
        w.finish("r")
    }

    #[test]
    fn an_explicit_deny_is_the_only_matched_statement() {
        let xml = result_xml(&explanation(Effect::ExplicitDeny));
        assert!(xml.contains(
            "<EvalActionName>s3:DeleteObject</EvalActionName><EvalResourceName>arn:aws:s3:::b/k</EvalResourceName>\
             <EvalDecision>explicitDeny</EvalDecision><MatchedStatements><member><SourcePolicyId>deny-all</SourcePolicyId>\
             <SourcePolicyType>user-managed</SourcePolicyType><Sid>Stop</Sid></member></MatchedStatements>\
             <MissingContextValues><member>aws:MultiFactorAuthPresent</member></MissingContextValues>\
             <DecisionReason>explicit deny in a permissions boundary</DecisionReason><FailedConditions><member>ResourcePolicy/Mfa: aws:MultiFactorAuthPresent is not in the request</member>\
             </FailedConditions>"
        ), "{xml}");
    }

    #[test]
    fn otherwise_every_statement_that_applied_is_listed() {
        let xml = result_xml(&explanation(Effect::Allow));
        assert!(xml.contains("<EvalDecision>allowed</EvalDecision>"), "{xml}");
        assert!(xml.contains(
            "<MatchedStatements><member><SourcePolicyId>home</SourcePolicyId><SourcePolicyType>user</SourcePolicyType>\
             </member><member><SourcePolicyId>deny-all</SourcePolicyId>"
        ), "{xml}");
        assert_eq!(decision_name(Effect::ImplicitDeny), "implicitDeny");
        assert_eq!(statement_name(&explanation(Effect::Allow).matched[0]), "home/Statement[1]");
    }

    #[test]
    fn a_refused_principal_is_denied_with_the_reason() {
        let xml = result_xml(&refused_explanation("arn:aws:iam::1:user/a: a policy no longer compiles"));
        assert!(
            xml.contains("<EvalDecision>implicitDeny</EvalDecision><MatchedStatements></MatchedStatements>"),
            "{xml}"
        );
        assert!(
            xml.contains("<DecisionReason>arn:aws:iam::1:user/a: a policy no longer compiles</DecisionReason>"),
            "{xml}"
        );
    }
}
