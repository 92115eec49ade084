//! Who may mint, see and revoke links, and whether a link's creator still may: the share API and
//! redemption ask the identity service, the same gate every S3 operation passes.
//!
//! Minting needs `latchkey:CreateShare` on the object (with `latchkey:ShareMethod`,
//! `latchkey:ShareMaxUses`, `latchkey:ShareExpiresIn` and `latchkey:ShareAllowCidrs` in the
//! request context, so a policy can cap links) and the caller's own `s3:GetObject` (download
//! links) or `s3:PutObject` (upload links) on it. A caller always sees and revokes its own
//! links; others' need `latchkey:ListShares` / `latchkey:RevokeShare` on their object. Every
//! decision is the S3 front's own (`Authorizer::decision`): the bucket's policy and tags, and the
//! object's tags where a policy reads them, as the S3 request a link stands for would be judged.
//!
//! What a link does to its object is done through the share service: those decisions carry
//! `aws:CalledVia` (with `aws:CalledViaFirst`/`Last`) = [`CALLED_VIA`], so a policy can keep a
//! user's own keys from fetching what it may only hand out as links (counted, expiring and
//! audited; the user can still open its own link), or forbid sharing what it may read.

use std::sync::Arc;

use latchkey_identity::{Caller, ClientConnection, Identity};
use latchkey_meta::Share;
use latchkey_policy::{Effect, RequestContext};
use latchkey_s3::Authorizer;

use crate::service::{NewShare, ShareMethod};

/// A caller of the share API, with the condition keys of its request.
pub struct ShareCaller {
    pub caller: Caller,
    /// The ARN links are recorded under, and the unique id beside it.
    pub arn: String,
    pub unique_id: String,
    context: RequestContext,
}

pub struct ShareGate {
    identity: Arc<Identity>,
    /// The S3 front's gate: a link is judged as the S3 request it stands for would be.
    authorizer: Authorizer,
}

/// The service name in `aws:CalledVia` of what a link does (AWS puts a service principal there).
pub const CALLED_VIA: &str = "shares.latchkey";

/// The context of an action the share service takes for a caller (or a link's creator).
fn via_shares(context: &RequestContext) -> RequestContext {
    let mut context = context.clone();
    context.insert_multi("aws:CalledVia", [CALLED_VIA.to_owned()]);
    context.insert("aws:CalledViaFirst", CALLED_VIA);
    context.insert("aws:CalledViaLast", CALLED_VIA);
    context
}

/// The ARN of what a link reads or writes: its object, or for a prefix upload link every key
/// under the prefix.
pub fn object_arn(bucket: &str, key: &str, key_is_prefix: bool) -> String {
    format!("arn:aws:s3:::{bucket}/{key}{}", if key_is_prefix { "*" } else { "" })
}

/// What using a link does to its object.
fn object_action(method: &str) -> &'static str {
    if method == ShareMethod::Put.as_str() { "s3:PutObject" } else { "s3:GetObject" }
}

impl ShareGate {
    pub fn new(identity: Arc<Identity>, authorizer: Authorizer) -> ShareGate {
        ShareGate { identity, authorizer }
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn caller(&self, caller: Caller, client: Option<ClientConnection>) -> ShareCaller {
        let mut context = RequestContext::new();
        if let Some(client) = client {
            client.insert_keys(&mut context);
        }
        self.identity.caller_context(&caller, &mut context);
        let arn = caller.principal(self.identity.account()).arn;
        // A link minted with temporary credentials names the session: it carries the session's
        // permission and ends with it (as a presigned URL signed by a session does).
        let unique_id = match &caller {
            Caller::Session { session, .. } => session.access_key_id.clone(),
            _ => self.identity.unique_id(&caller),
        };
        ShareCaller { caller, arn, unique_id, context }
    }

    async fn allows(&self, caller: &Caller, action: &str, resource: &str, mut context: RequestContext) -> bool {
        let decision = self.authorizer.decision(Some(caller), action, resource, &mut context).await;
        decision.is_ok_and(|decision| decision.effect == Effect::Allow)
    }

    /// Whether `who` may mint `new`, which expires in `expires_in` seconds with `max_uses` uses.
    pub async fn may_create(&self, who: &ShareCaller, new: &NewShare, expires_in: u64, max_uses: u32) -> bool {
        let resource = object_arn(&new.bucket, &new.key, new.key_is_prefix);
        let mut context = who.context.clone();
        context.insert("latchkey:ShareMethod", new.method.as_str());
        context.insert("latchkey:ShareMaxUses", max_uses.to_string());
        context.insert("latchkey:ShareExpiresIn", expires_in.to_string());
        context.insert_multi("latchkey:ShareAllowCidrs", new.allow_cidrs.iter().cloned());
        self.allows(&who.caller, "latchkey:CreateShare", &resource, context).await
            && self.allows(&who.caller, object_action(new.method.as_str()), &resource, via_shares(&who.context)).await
    }

    /// Whether `who` may see (`latchkey:ListShares`) or revoke (`latchkey:RevokeShare`) `share`.
    pub async fn may_manage(&self, who: &ShareCaller, action: &str, share: &Share) -> bool {
        if share.principal == who.arn {
            return true;
        }
        let resource = object_arn(&share.bucket, &share.key, share.key_is_prefix);
        self.allows(&who.caller, action, &resource, who.context.clone()).await
    }

    /// A link carries its creator's permission at the time of use: `false` once the creator
    /// could no longer read (download links) or write (upload links) its object, or is gone
    /// (a user or role of the same name made since is someone else: the unique ids differ).
    pub async fn creator_may(&self, share: &Share) -> bool {
        let creator = match share.principal_id.as_deref() {
            Some(session) if session.starts_with("ASIA") => self.identity.session_holder(session).await,
            Some(id) => self.identity.principal_caller(&share.principal).filter(|c| self.identity.unique_id(c) == id),
            // Links made before ids were recorded: only root's still stand.
            None => self.identity.principal_caller(&share.principal).filter(|c| matches!(c, Caller::Root)),
        };
        let Some(creator) = creator else { return false };
        let mut context = RequestContext::new();
        self.identity.caller_context(&creator, &mut context);
        let resource = object_arn(&share.bucket, &share.key, share.key_is_prefix);
        self.allows(&creator, object_action(&share.method), &resource, via_shares(&context)).await
    }
}
