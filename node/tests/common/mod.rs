//! Shared by the node's integration tests: a stand-in hub that signs facts
//! with a test key (the node verifies them as it would the real hub's).

use ed25519_dalek::SigningKey;
use mykey_sync_proto::wire::Facts;
use mykey_sync_proto::{
    FactBody, FactPayload, MunicipalityCode, NodeId, Points, Scope, SignedFact, UnixMillis,
};

pub struct Hub {
    pub key: SigningKey,
    pub seq: u64,
}

impl Hub {
    pub fn id(&self) -> NodeId {
        NodeId::from_bytes(self.key.verifying_key().to_bytes()).unwrap()
    }
    pub fn facts(&mut self, bodies: Vec<(Scope, FactBody)>) -> Facts {
        let facts = bodies
            .into_iter()
            .map(|(scope, body)| {
                self.seq += 1;
                SignedFact::sign(
                    &FactPayload {
                        hub_seq: self.seq,
                        issued_at: UnixMillis(1),
                        scope,
                        body,
                    },
                    &self.key,
                )
            })
            .collect();
        Facts {
            facts,
            cursor: self.seq,
            more: false,
        }
    }
}

pub fn p(n: u64) -> Points {
    Points::new(n).unwrap()
}
pub fn muni() -> MunicipalityCode {
    MunicipalityCode::parse("131059").unwrap()
}
