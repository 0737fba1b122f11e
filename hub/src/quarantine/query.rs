//! The filters of a quarantine listing as text (`GET /api/quarantine`, the
//! dashboard's quarantine page), checked into the store's filter. It imports
//! no route module, so the API's and the page's routes share it.

use crate::store::bounds::{QuarantineFilter, QuarantineState};
use mykey_sync_proto::{FacilityId, MunicipalityCode, NodeId};

/// The filters of `GET /api/quarantine`, as text (checked by [`ListQuery::filter`]).
#[derive(Debug, Default, serde::Deserialize)]
pub struct ListQuery {
    /// `held` (default), `released`, `rejected` or `all`.
    pub state: Option<String>,
    /// A municipality code.
    pub municipality: Option<String>,
    /// A facility id.
    pub facility: Option<String>,
    /// A node id (64 hex digits).
    pub node: Option<String>,
}

impl ListQuery {
    /// The store's filter, or what is wrong with the query.
    pub fn filter(&self) -> Result<QuarantineFilter, String> {
        fn given(v: &Option<String>) -> Option<&str> {
            v.as_deref().map(str::trim).filter(|v| !v.is_empty())
        }
        let state = match given(&self.state).unwrap_or("held") {
            "all" => None,
            s => Some(QuarantineState::parse(s).ok_or_else(|| {
                format!("state {s:?} is not one of held, released, rejected, all")
            })?),
        };
        Ok(QuarantineFilter {
            municipality: given(&self.municipality)
                .map(|m| {
                    MunicipalityCode::parse(m).map_err(|_| {
                        format!("municipality {m:?} is not a local government code (six digits with the check digit)")
                    })
                })
                .transpose()?,
            facility: given(&self.facility)
                .map(|f| FacilityId::parse(f).map_err(|e| format!("facility {f:?}: {e}")))
                .transpose()?,
            node: given(&self.node)
                .map(|n| {
                    NodeId::parse(n)
                        .map_err(|e| format!("node {n:?}: {e} (copy it from `mykey-hub nodes`)"))
                })
                .transpose()?,
            state,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_filters_parse_or_say_what_is_wrong() {
        let q =
            |state: Option<&str>, m: Option<&str>, f: Option<&str>, n: Option<&str>| ListQuery {
                state: state.map(str::to_owned),
                municipality: m.map(str::to_owned),
                facility: f.map(str::to_owned),
                node: n.map(str::to_owned),
            };
        let node = NodeId::from_bytes(
            ed25519_dalek::SigningKey::from_bytes(&[7; 32])
                .verifying_key()
                .to_bytes(),
        )
        .unwrap();
        let held = q(None, None, None, None).filter().unwrap();
        assert_eq!(held.state, Some(QuarantineState::Held));
        assert_eq!(
            q(Some("all"), Some(""), None, None).filter().unwrap(),
            QuarantineFilter::default()
        );
        let f = q(
            Some("released"),
            Some("131059"),
            Some("shop-1"),
            Some(&node.to_string()),
        )
        .filter()
        .unwrap();
        assert_eq!(f.state, Some(QuarantineState::Released));
        assert_eq!(
            f.municipality.map(|m| m.to_string()).as_deref(),
            Some("131059")
        );
        for (bad, word) in [
            (q(Some("paid"), None, None, None), "state"),
            (q(None, Some("131058"), None, None), "municipality"),
            (q(None, None, Some("a b"), None), "facility"),
            (q(None, None, None, Some("abc")), "node"),
            (q(None, None, None, Some(&"ab".repeat(32))), "node"),
        ] {
            let e = bad.filter().unwrap_err();
            assert!(e.starts_with(word), "{e}");
        }
    }
}
