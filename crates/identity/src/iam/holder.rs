//! The principals that carry policies (users, groups, roles) as the policy actions name, find
//! and change them, so that each policy action is written once for all three.

use latchkey_meta::EntryKind;

use super::{Call, QueryError, modify, target_user, user_arn};
use crate::model::{Attached, Group, Role, User};

/// Which kind of principal an action is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    User,
    Group,
    Role,
}

/// A user, group or role as the directory holds it now.
pub struct Held {
    pub name: String,
    pub arn: String,
    pub policies: Attached,
}

/// A stored user, group or role: its policies, and its permissions boundary if it can have one.
pub trait Carrier {
    fn policies(&mut self) -> &mut Attached;
    /// `None` for groups, which AWS gives no boundary.
    fn boundary(&mut self) -> Option<&mut Option<String>>;
}

impl Carrier for User {
    fn policies(&mut self) -> &mut Attached {
        &mut self.policies
    }
    fn boundary(&mut self) -> Option<&mut Option<String>> {
        Some(&mut self.boundary)
    }
}

impl Carrier for Group {
    fn policies(&mut self) -> &mut Attached {
        &mut self.policies
    }
    fn boundary(&mut self) -> Option<&mut Option<String>> {
        None
    }
}

impl Carrier for Role {
    fn policies(&mut self) -> &mut Attached {
        &mut self.policies
    }
    fn boundary(&mut self) -> Option<&mut Option<String>> {
        Some(&mut self.boundary)
    }
}

impl Holder {
    pub fn kind(self) -> EntryKind {
        match self {
            Holder::User => EntryKind::User,
            Holder::Group => EntryKind::Group,
            Holder::Role => EntryKind::Role,
        }
    }

    /// The parameter that names one (`UserName`, ...), also its element in responses.
    pub fn param(self) -> &'static str {
        match self {
            Holder::User => "UserName",
            Holder::Group => "GroupName",
            Holder::Role => "RoleName",
        }
    }

    /// `user`, `group`, `role`, as AWS's messages call them.
    pub fn noun(self) -> &'static str {
        self.kind().as_str()
    }

    /// AWS's limit for one inline policy document of this kind of principal (users keep the
    /// limit `PutUserPolicy` has always had here).
    pub fn inline_max(self) -> usize {
        match self {
            Holder::User | Holder::Role => 10_240,
            Holder::Group => 5_120,
        }
    }

    /// The principal the call names; for users, the caller when none is named, as AWS does.
    pub fn find(self, call: &Call<'_>) -> Result<Held, QueryError> {
        let account = call.identity.account();
        let directory = call.identity.directory();
        let (name, arn, policies) = match self {
            Holder::User => {
                let user = target_user(call)?;
                let arn = user_arn(call, &user);
                (user.name, arn, user.policies)
            }
            Holder::Group => {
                let name = call.params.required("GroupName")?;
                let group = directory.group(name).ok_or_else(|| self.not_found(name))?;
                (group.name.clone(), account.iam_arn("group", &group.path, &group.name), group.policies.clone())
            }
            Holder::Role => {
                let name = call.params.required("RoleName")?;
                let (role, _) = directory.role(name).ok_or_else(|| self.not_found(name))?;
                (role.name.clone(), account.iam_arn("role", &role.path, &role.name), role.policies.clone())
            }
        };
        Ok(Held { name, arn, policies })
    }

    fn not_found(self, name: &str) -> QueryError {
        QueryError::no_such_entity(format!("The {} with name {name} cannot be found.", self.noun()))
    }

    /// Applies `change` to the stored principal (see `modify`): the next request sees it.
    pub async fn change<F>(self, call: &Call<'_>, name: &str, mut change: F) -> Result<(), QueryError>
    where
        F: FnMut(&mut dyn Carrier) -> Result<(), QueryError>,
    {
        match self {
            Holder::User => modify(call, EntryKind::User, name, |u: &mut User| change(u)).await.map(drop),
            Holder::Group => modify(call, EntryKind::Group, name, |g: &mut Group| change(g)).await.map(drop),
            Holder::Role => modify(call, EntryKind::Role, name, |r: &mut Role| change(r)).await.map(drop),
        }
    }
}
