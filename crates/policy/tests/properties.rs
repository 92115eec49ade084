//! Properties of evaluation over random policies drawn from a small vocabulary: a Deny never
//! grants, a boundary caps identity grants, and the decision depends neither on statement order
//! nor on anything but its inputs.

use std::sync::Arc;

use latchkey_policy::{
    Decision, Effect, MAX_POLICY_BYTES, NamedPolicy, PolicyKind, PolicySet, PolicySource, Principal, PrincipalKind,
    Request, RequestContext, evaluate, parse,
};
use proptest::prelude::*;

const ACTIONS: &[&str] = &["s3:GetObject", "s3:PutObject", "s3:*", "s3:Get*", "*", "s3:DeleteObject"];
const RESOURCES: &[&str] = &[
    "*",
    "arn:aws:s3:::photos/*",
    "arn:aws:s3:::photos/alice/*",
    "arn:aws:s3:::other/*",
    "arn:aws:s3:::photos/${aws:username}/*",
];
const CONDITIONS: &[&str] = &[
    "",
    r#","Condition":{"Bool":{"aws:SecureTransport":"true"}}"#,
    r#","Condition":{"StringEquals":{"aws:PrincipalTag/team":"blue"}}"#,
    r#","Condition":{"StringNotEquals":{"aws:PrincipalTag/team":"red"}}"#,
    r#","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
    r#","Condition":{"ForAllValues:StringEquals":{"aws:TagKeys":["a","b"]}}"#,
    r#","Condition":{"NumericLessThan":{"s3:max-keys":"100"}}"#,
];
const PRINCIPALS: &[&str] = &[
    r#""*""#,
    r#"{"AWS":"arn:aws:iam::123456789012:user/alice"}"#,
    r#"{"AWS":"arn:aws:iam::123456789012:role/reader"}"#,
    r#"{"AWS":"123456789012"}"#,
    r#"{"AWS":"arn:aws:sts::123456789012:assumed-role/reader/s1"}"#,
];

/// Indices into the vocabularies: effect, negated action, action, resource, condition, principal.
type StatementSpec = (bool, bool, usize, usize, usize, usize);

fn statement_spec() -> impl Strategy<Value = StatementSpec> {
    (
        any::<bool>(),
        prop::bool::weighted(0.15),
        0..ACTIONS.len(),
        0..RESOURCES.len(),
        0..CONDITIONS.len(),
        0..PRINCIPALS.len(),
    )
}

fn statement_json(spec: StatementSpec, with_principal: bool) -> String {
    let (deny, not_action, a, r, c, p) = spec;
    let effect = if deny { "Deny" } else { "Allow" };
    let action = if not_action { "NotAction" } else { "Action" };
    let principal = if with_principal { format!(r#","Principal":{}"#, PRINCIPALS[p]) } else { String::new() };
    format!(
        r#"{{"Effect":"{effect}","{action}":"{}","Resource":"{}"{}{principal}}}"#,
        ACTIONS[a], RESOURCES[r], CONDITIONS[c]
    )
}

fn compile(name: &str, specs: &[StatementSpec], kind: PolicyKind, source: PolicySource) -> NamedPolicy {
    let with_principal = kind == PolicyKind::Resource;
    let statements: Vec<String> = specs.iter().map(|s| statement_json(*s, with_principal)).collect();
    let json = format!(r#"{{"Version":"2012-10-17","Statement":[{}]}}"#, statements.join(","));
    let policy = parse(&json, kind, MAX_POLICY_BYTES).unwrap_or_else(|e| panic!("{e}: {json}"));
    NamedPolicy { name: name.into(), source, policy: Arc::new(policy) }
}

/// A random world: policies, a caller and a request.
#[derive(Debug, Clone)]
struct World {
    identity: Vec<Vec<StatementSpec>>,
    bucket: Option<Vec<StatementSpec>>,
    boundary: Option<Vec<StatementSpec>>,
    session: Vec<Vec<StatementSpec>>,
    who: usize,
    action: usize,
    resource: usize,
    context: (bool, bool, bool, bool),
}

fn policy_specs() -> impl Strategy<Value = Vec<StatementSpec>> {
    prop::collection::vec(statement_spec(), 1..5)
}

fn world() -> impl Strategy<Value = World> {
    (
        prop::collection::vec(policy_specs(), 0..4),
        prop::option::of(policy_specs()),
        prop::option::of(policy_specs()),
        prop::collection::vec(policy_specs(), 0..3),
        0..4usize,
        0..ACTIONS.len(),
        0..4usize,
        any::<(bool, bool, bool, bool)>(),
    )
        .prop_map(|(identity, bucket, boundary, session, who, action, resource, context)| World {
            identity,
            bucket,
            boundary,
            session,
            who,
            action,
            resource,
            context,
        })
}

const REQUEST_RESOURCES: &[&str] = &[
    "arn:aws:s3:::photos/alice/cat.jpg",
    "arn:aws:s3:::photos/bob/dog.jpg",
    "arn:aws:s3:::other/x",
    "arn:aws:s3:::photos",
];
const REQUEST_ACTIONS: &[&str] =
    &["s3:GetObject", "s3:PutObject", "s3:ListBucket", "s3:GetObject", "latchkey:CreateShare", "s3:DeleteObject"];

struct Compiled {
    identity: Vec<NamedPolicy>,
    bucket: Option<NamedPolicy>,
    boundary: Option<NamedPolicy>,
    session: Vec<NamedPolicy>,
    principal: Principal,
    context: RequestContext,
    action: &'static str,
    resource: &'static str,
}

impl World {
    fn compile(&self) -> Compiled {
        let principal = match self.who {
            0 => Principal {
                kind: PrincipalKind::User,
                account: "123456789012".into(),
                arn: "arn:aws:iam::123456789012:user/alice".into(),
                role_arn: None,
            },
            1 => Principal {
                kind: PrincipalKind::AssumedRole,
                account: "123456789012".into(),
                arn: "arn:aws:sts::123456789012:assumed-role/reader/s1".into(),
                role_arn: Some("arn:aws:iam::123456789012:role/reader".into()),
            },
            2 => Principal {
                kind: PrincipalKind::Root,
                account: "123456789012".into(),
                arn: "arn:aws:iam::123456789012:root".into(),
                role_arn: None,
            },
            _ => Principal::anonymous(),
        };
        let mut context = RequestContext::new();
        context.insert_principal_keys(&principal);
        let (tls, team, ip, tags) = self.context;
        context.insert("aws:SecureTransport", if tls { "true" } else { "false" });
        if team {
            context.insert("aws:PrincipalTag/team", "blue");
        }
        context.insert("aws:SourceIp", if ip { "10.1.1.1" } else { "192.0.2.1" });
        if tags {
            context.insert_multi("aws:TagKeys", ["a", "c"]);
        }
        // Session policies only exist for sessions.
        let session = if principal.kind == PrincipalKind::AssumedRole { &self.session[..] } else { &[] };
        Compiled {
            identity: self
                .identity
                .iter()
                .enumerate()
                .map(|(i, s)| compile(&format!("identity-{i}"), s, PolicyKind::Identity, PolicySource::UserManaged))
                .collect(),
            bucket: self.bucket.as_ref().map(|s| compile("bucket", s, PolicyKind::Resource, PolicySource::Bucket)),
            boundary: self
                .boundary
                .as_ref()
                .map(|s| compile("boundary", s, PolicyKind::Boundary, PolicySource::Boundary)),
            session: session
                .iter()
                .enumerate()
                .map(|(i, s)| compile(&format!("session-{i}"), s, PolicyKind::Session, PolicySource::Session))
                .collect(),
            principal,
            context,
            action: REQUEST_ACTIONS[self.action],
            resource: REQUEST_RESOURCES[self.resource],
        }
    }
}

impl Compiled {
    fn decide(&self) -> Decision {
        let set = PolicySet {
            identity: &self.identity,
            resource: self.bucket.as_ref(),
            boundary: self.boundary.as_ref(),
            session: &self.session,
        };
        self.decide_with(&set)
    }

    fn decide_with(&self, set: &PolicySet) -> Decision {
        let request = Request {
            principal: &self.principal,
            action: self.action,
            resource: self.resource,
            context: &self.context,
        };
        evaluate(set, &request)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// AWS: "An explicit deny in any of these policies overrides the allow." Adding a Deny can only
    /// take permissions away.
    #[test]
    fn adding_a_deny_never_grants(world in world(), deny in statement_spec(), target in 0..4usize) {
        let before = world.compile().decide().effect;
        let mut more = world.clone();
        let deny = (true, deny.1, deny.2, deny.3, deny.4, deny.5);
        match target {
            0 if !more.identity.is_empty() => more.identity[0].push(deny),
            1 => more.bucket.get_or_insert_with(Vec::new).push(deny),
            2 => more.boundary.get_or_insert_with(Vec::new).push(deny),
            _ => more.session.first_mut().map_or_else(|| more.identity.push(vec![deny]), |s| s.push(deny)),
        }
        let after = more.compile().decide().effect;
        if before != Effect::Allow {
            prop_assert_ne!(after, Effect::Allow, "a deny turned {:?} into Allow", before);
        }
        if before == Effect::ExplicitDeny {
            prop_assert_eq!(after, Effect::ExplicitDeny);
        }
    }

    /// A boundary is a ceiling: an Allow under it is within what the boundary alone allows, unless
    /// a resource policy grants the principal directly (which AWS exempts from the boundary).
    #[test]
    fn boundary_caps_everything_but_direct_resource_grants(world in world()) {
        prop_assume!(world.boundary.is_some() && world.who != 2);
        let compiled = world.compile();
        let full = compiled.decide().effect;
        let boundary_alone = compiled.decide_with(&PolicySet {
            identity: std::slice::from_ref(compiled.boundary.as_ref().expect("assumed above")),
            ..PolicySet::default()
        });
        // A boundary that allows nothing leaves only direct grants standing.
        let nothing = compile("nothing", &[(false, false, 0, 3, 0, 0)], PolicyKind::Boundary, PolicySource::Boundary);
        let direct = compiled.decide_with(&PolicySet {
            resource: compiled.bucket.as_ref(),
            boundary: Some(&nothing),
            ..PolicySet::default()
        });
        if full == Effect::Allow {
            prop_assert!(
                boundary_alone.is_allowed() || direct.is_allowed(),
                "allowed beyond the boundary: boundary alone {:?}, direct {:?}", boundary_alone, direct
            );
        }
    }

    /// Same inputs, same decision; and neither statement order nor policy order matters.
    #[test]
    fn deterministic_and_order_independent(world in world(), rotate in 0..5usize, reverse in any::<bool>()) {
        let compiled = world.compile();
        let first = compiled.decide();
        prop_assert_eq!(&compiled.decide(), &first);
        let mut shuffled = world.clone();
        let reorder = |specs: &mut Vec<StatementSpec>| {
            let n = specs.len();
            specs.rotate_left(rotate % n);
            if reverse {
                specs.reverse();
            }
        };
        shuffled.identity.iter_mut().for_each(reorder);
        shuffled.session.iter_mut().for_each(reorder);
        shuffled.bucket.iter_mut().for_each(reorder);
        shuffled.boundary.iter_mut().for_each(reorder);
        if reverse {
            shuffled.identity.reverse();
            shuffled.session.reverse();
        }
        prop_assert_eq!(shuffled.compile().decide().effect, first.effect);
    }
}
