//! Who may do what through the hub's HTTP doors: operators' roles, API
//! tokens' scopes, and what each grants.
//!
//! An operator has a [`Role`]: a viewer reads everything and changes
//! nothing; municipality staff read their own municipality's data only; an
//! admin may also act (settlement runs, the expiry job). An API token has a
//! [`Scope`] on top of its operator's role and an expiry: a `read` token
//! (Prometheus, a status board) sees `/metrics` and node status only,
//! whatever its operator may do. A login session has its operator's whole
//! role. What a request may do is what both allow ([`Access::can`]).
//!
//! Pure: the deciding code here reads no clock and no store; the operator
//! and token registry in [`crate::Hub`] (`http::auth`) feeds it.

use mykey_sync_proto::{MunicipalityCode, UnixMillis};
use std::fmt;

/// What a request needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capability {
    /// Hub-wide monitoring figures (`/metrics`): every municipality at once.
    Fleet,
    /// Node sync status, alerts, settlement status, the dashboard pages.
    Status,
    /// Liability and settlement reports, escrow, holders' lots.
    Reports,
    /// Changing something: settlement runs, the expiry job, and every
    /// request method other than GET and HEAD.
    Act,
}

/// An operator's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Reads every municipality's data; changes nothing.
    Viewer,
    /// A municipality's staff: that municipality's data only.
    Staff(MunicipalityCode),
    /// Everything.
    Admin,
}

/// An API token's scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// `/metrics` and node status only.
    Read,
    /// What staff read: status and reports; no actions.
    Staff,
    /// Whatever the operator's role allows.
    Admin,
}

/// A role or scope name that is not one.
#[derive(Debug, thiserror::Error)]
pub enum ParseAccessError {
    /// Not a role.
    #[error("role {0:?} is not one of viewer, staff, admin")]
    Role(String),
    /// Staff without a municipality, or a municipality for another role.
    #[error("give --municipality CODE with --role staff (and only with it)")]
    StaffMunicipality,
    /// Not a scope.
    #[error("scope {0:?} is not one of read, staff, admin")]
    Scope(String),
}

impl Role {
    /// The role from its name and, for staff, the municipality.
    pub fn parse(
        name: &str,
        municipality: Option<MunicipalityCode>,
    ) -> Result<Role, ParseAccessError> {
        match (name, municipality) {
            ("viewer", None) => Ok(Role::Viewer),
            ("admin", None) => Ok(Role::Admin),
            ("staff", Some(m)) => Ok(Role::Staff(m)),
            ("viewer" | "admin", Some(_)) | ("staff", None) => {
                Err(ParseAccessError::StaffMunicipality)
            }
            (other, _) => Err(ParseAccessError::Role(other.to_owned())),
        }
    }

    /// `viewer`, `staff` or `admin`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Staff(_) => "staff",
            Role::Admin => "admin",
        }
    }

    /// The municipality a staff role is limited to.
    pub fn municipality(self) -> Option<MunicipalityCode> {
        match self {
            Role::Staff(m) => Some(m),
            Role::Viewer | Role::Admin => None,
        }
    }

    fn grants(self, c: Capability) -> bool {
        match self {
            Role::Admin => true,
            Role::Viewer => c != Capability::Act,
            Role::Staff(_) => matches!(c, Capability::Status | Capability::Reports),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Staff(m) => write!(f, "staff of {m}"),
            other => f.write_str(other.name()),
        }
    }
}

impl Scope {
    /// Every scope, narrowest first.
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Staff, Scope::Admin];

    /// `read`, `staff` or `admin`.
    pub fn parse(name: &str) -> Result<Scope, ParseAccessError> {
        Scope::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| ParseAccessError::Scope(name.to_owned()))
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Staff => "staff",
            Scope::Admin => "admin",
        }
    }

    fn grants(self, c: Capability) -> bool {
        match self {
            Scope::Admin => true,
            Scope::Staff => c != Capability::Act,
            Scope::Read => matches!(c, Capability::Fleet | Capability::Status),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What one request may do: its operator's role and the scope it came with
/// (a login session: [`Scope::Admin`], i.e. the whole role).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    /// The operator's login name.
    pub operator: String,
    /// Their role.
    pub role: Role,
    /// The token's scope.
    pub scope: Scope,
}

impl Access {
    /// Whether both the role and the scope allow `c`.
    pub fn can(&self, c: Capability) -> bool {
        self.role.grants(c) && self.scope.grants(c)
    }

    /// The only municipality this access may see (`None`: every one).
    pub fn municipality(&self) -> Option<MunicipalityCode> {
        self.role.municipality()
    }

    /// Whether data of municipality `m` may be shown.
    pub fn sees(&self, m: MunicipalityCode) -> bool {
        self.municipality().is_none_or(|mine| mine == m)
    }
}

/// An API token as the registry keeps it (never the token itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenInfo {
    /// Its public id (12 hex digits of its hash), for listing and revoking.
    pub id: String,
    /// Whose.
    pub operator: String,
    /// Its scope.
    pub scope: Scope,
    /// When it was made.
    pub created_at: UnixMillis,
    /// When it stops working (`None`: never).
    pub expires_at: Option<UnixMillis>,
    /// When it was revoked.
    pub revoked_at: Option<UnixMillis>,
}

impl TokenInfo {
    /// Whether it still works at `now`.
    pub fn live(&self, now: UnixMillis) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }

    /// `live`, `expired` or `revoked`.
    pub fn state(&self, now: UnixMillis) -> &'static str {
        if self.revoked_at.is_some() {
            "revoked"
        } else if self.live(now) {
            "live"
        } else {
            "expired"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(code: &str) -> MunicipalityCode {
        MunicipalityCode::parse(code).unwrap()
    }

    #[test]
    fn role_and_scope_both_limit() {
        use Capability::*;
        let bunkyo = Role::Staff(m("131059"));
        // (role, scope, [Fleet, Status, Reports, Act])
        let table = [
            (Role::Admin, Scope::Admin, [true, true, true, true]),
            (Role::Admin, Scope::Staff, [true, true, true, false]),
            (Role::Admin, Scope::Read, [true, true, false, false]),
            (Role::Viewer, Scope::Admin, [true, true, true, false]),
            (Role::Viewer, Scope::Read, [true, true, false, false]),
            (bunkyo, Scope::Admin, [false, true, true, false]),
            (bunkyo, Scope::Staff, [false, true, true, false]),
            (bunkyo, Scope::Read, [false, true, false, false]),
        ];
        for (role, scope, want) in table {
            let a = Access {
                operator: "x".into(),
                role,
                scope,
            };
            let got = [Fleet, Status, Reports, Act].map(|c| a.can(c));
            assert_eq!(got, want, "{role} with a {scope} token");
        }
    }

    #[test]
    fn staff_see_their_municipality_only() {
        let a = Access {
            operator: "x".into(),
            role: Role::Staff(m("131059")),
            scope: Scope::Admin,
        };
        assert!(a.sees(m("131059")));
        assert!(!a.sees(m("131016")));
        let v = Access {
            role: Role::Viewer,
            ..a
        };
        assert!(v.sees(m("131016")));
    }

    #[test]
    fn names_parse() {
        assert_eq!(Role::parse("admin", None).unwrap(), Role::Admin);
        assert_eq!(
            Role::parse("staff", Some(m("131059"))).unwrap(),
            Role::Staff(m("131059"))
        );
        assert!(Role::parse("staff", None).is_err());
        assert!(Role::parse("viewer", Some(m("131059"))).is_err());
        assert!(Role::parse("root", None).is_err());
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.name()).unwrap(), s);
        }
        assert!(Scope::parse("write").is_err());
    }

    #[test]
    fn tokens_expire_and_revoke() {
        let t = TokenInfo {
            id: "abc".into(),
            operator: "ops".into(),
            scope: Scope::Read,
            created_at: UnixMillis(0),
            expires_at: Some(UnixMillis(100)),
            revoked_at: None,
        };
        assert_eq!(t.state(UnixMillis(99)), "live");
        assert_eq!(t.state(UnixMillis(100)), "expired");
        let r = TokenInfo {
            revoked_at: Some(UnixMillis(5)),
            ..t
        };
        assert_eq!(r.state(UnixMillis(1)), "revoked");
    }
}
