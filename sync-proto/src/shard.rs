//! The replicated cache's pure parts: which shard and item key each keyed
//! "state" fact lives under, and the rule a reader applies to every item it
//! takes out of a shard document (DESIGN §7).
//!
//! A shard is an automerge document (the `mykey-cache` crate) whose root map
//! holds item key → canonical bytes of a [`SignedFact`]. automerge's change
//! author is not signed, so a document proves nothing by itself: every item
//! is verified on read ([`verify_item`]) against the hub key, and its
//! placement is recomputed from the signed payload, so a genuine fact copied
//! under another key or into another shard is refused. A reader also keeps a
//! per-key `hub_seq` high-water mark, so a peer that rolls a key back to an
//! older genuine fact changes nothing.
//!
//! Facts that are ordered rather than keyed (node limits, progress,
//! revocations) are not placed: they stay on the fact log.

use crate::codec;
use crate::fact::{FactBody, FactError, FactPayload, Scope, SignedFact, VerifiedFact};
use crate::ids::{AccountId, CardKey, FacilityId, MunicipalityCode, NodeId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// Most buckets one scope is split into.
pub const MAX_BUCKETS: u16 = 4096;
/// Longest item key.
pub const MAX_ITEM_KEY_LEN: usize = 128;

/// What a shard holds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ShardScope {
    /// A municipality's deny list (card status changes): synced first.
    Deny(MunicipalityCode),
    /// A municipality's registrations, confirmed balances, expiries and
    /// voucher batches' redeemed bitmaps.
    Municipality(MunicipalityCode),
    /// A facility's card numbers: only that facility's nodes receive it.
    Facility(FacilityId),
}

impl ShardScope {
    /// The fact-log scope whose facts feed this shard scope.
    pub fn fact_scope(&self) -> Scope {
        match self {
            ShardScope::Deny(m) | ShardScope::Municipality(m) => Scope::Municipality(*m),
            ShardScope::Facility(f) => Scope::Facility(f.clone()),
        }
    }
}

/// One shard: a scope and a bucket of it (by a hash prefix of the item's subject).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ShardId {
    /// What it holds.
    pub scope: ShardScope,
    /// Which bucket, below the scope's bucket count.
    pub bucket: u16,
}

impl ShardId {
    /// Deny shards sort (and sync) before all others.
    pub fn is_deny(&self) -> bool {
        matches!(self.scope, ShardScope::Deny(_))
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.scope {
            ShardScope::Deny(m) => write!(f, "deny:{m}/{}", self.bucket),
            ShardScope::Municipality(m) => write!(f, "muni:{m}/{}", self.bucket),
            ShardScope::Facility(x) => write!(f, "fac:{x}/{}", self.bucket),
        }
    }
}

/// An epoch of the shards: the hub starts a fresh base document per shard at
/// each compaction; automerge history before it is dropped.
pub type Epoch = u32;

/// The key of an item in a shard's root map, e.g. `reg/<card hash>`,
/// `bal/A12/131059`, `fc/A12/L-0042`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ItemKey(String);

impl ItemKey {
    /// The key text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The key of a stored or received text (no validation beyond length:
    /// a key is checked by recomputing it from a verified fact).
    pub fn from_text(text: &str) -> Option<ItemKey> {
        (!text.is_empty() && text.len() <= MAX_ITEM_KEY_LEN).then(|| ItemKey(text.to_owned()))
    }
}

impl fmt::Display for ItemKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a placed fact lives, before the bucket is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// The shard scope.
    pub scope: ShardScope,
    /// The item key.
    pub key: ItemKey,
    /// What the bucket is a hash of (card or account).
    basis: Vec<u8>,
}

impl Item {
    /// The shard of this item when its scope is split into `buckets`
    /// (deny shards are never split: the deny list is small and goes first).
    pub fn shard(&self, buckets: u16) -> ShardId {
        shard_at(self.scope.clone(), self.hash_prefix(), buckets)
    }

    /// The hash prefix its bucket is taken from, under any bucket count.
    pub fn hash_prefix(&self) -> u16 {
        let d = Sha256::digest(&self.basis);
        u16::from_be_bytes([d[0], d[1]])
    }
}

/// The shard of an item of `scope` whose hash prefix is `hash_prefix`.
pub fn shard_at(scope: ShardScope, hash_prefix: u16, buckets: u16) -> ShardId {
    let n = match scope {
        ShardScope::Deny(_) => 1,
        _ => normalise_buckets(buckets),
    };
    ShardId {
        scope,
        bucket: hash_prefix & (n - 1),
    }
}

/// The shard scope of an item key found in a fact-log scope (`st/…` keys
/// are the deny list), or `None` if the key cannot be in that scope.
pub fn scope_of_key(fact_scope: &Scope, key: &str) -> Option<ShardScope> {
    match fact_scope {
        Scope::Municipality(m) if key.starts_with("st/") => Some(ShardScope::Deny(*m)),
        Scope::Municipality(m)
            if key.starts_with("reg/")
                || key.starts_with("bal/")
                || key.starts_with("exp/")
                || key.starts_with("vr/")
                || key.starts_with("vi/") =>
        {
            Some(ShardScope::Municipality(*m))
        }
        Scope::Facility(f) if key.starts_with("fc/") => Some(ShardScope::Facility(f.clone())),
        _ => None,
    }
}

/// Sixteen bytes of SHA-256 of a card key's canonical encoding, in hex: the
/// card's form in item keys (short, and no certificate bytes in documents).
fn card_hash(card: &CardKey) -> String {
    hex::encode(&Sha256::digest(codec::encode(card))[..16])
}

fn account_basis(a: AccountId) -> Vec<u8> {
    a.get().to_be_bytes().to_vec()
}

/// The bucket of a hash basis: a prefix of its SHA-256, masked to `buckets`
/// (a power of two; anything else counts as the power of two below it).
pub fn bucket_of(basis: &[u8], buckets: u16) -> u16 {
    let n = normalise_buckets(buckets);
    let d = Sha256::digest(basis);
    u16::from_be_bytes([d[0], d[1]]) & (n - 1)
}

/// The bucket count a shard of `scope` is checked with (deny shards: 1).
pub fn buckets_of(scope: &ShardScope, buckets: u16) -> u16 {
    match scope {
        ShardScope::Deny(_) => 1,
        _ => normalise_buckets(buckets),
    }
}

/// A valid bucket count: a power of two in `1..=MAX_BUCKETS`.
pub fn normalise_buckets(buckets: u16) -> u16 {
    let b = buckets.clamp(1, MAX_BUCKETS);
    1 << (15 - b.leading_zeros() as u16)
}

/// Buckets that keep about `per_shard` items in each of `items`.
pub fn buckets_for(items: u64, per_shard: u64) -> u16 {
    let want = items.div_ceil(per_shard.max(1)).max(1);
    let p = want.next_power_of_two().min(u64::from(MAX_BUCKETS));
    p as u16
}

/// The item a fact is kept under, or `None` for facts that stay on the log.
pub fn item_of(payload: &FactPayload) -> Option<Item> {
    let muni = match &payload.scope {
        Scope::Municipality(m) => Some(*m),
        _ => None,
    };
    match (&payload.body, &payload.scope) {
        (FactBody::CardStatusChanged { card, .. }, _) => Some(Item {
            scope: ShardScope::Deny(muni?),
            key: ItemKey(format!("st/{}", card_hash(card))),
            basis: codec::encode(card),
        }),
        (FactBody::CardRegistered { card, .. }, _) => Some(Item {
            scope: ShardScope::Municipality(muni?),
            key: ItemKey(format!("reg/{}", card_hash(card))),
            basis: codec::encode(card),
        }),
        (
            FactBody::ConfirmedBalance {
                account,
                municipality,
                ..
            },
            _,
        ) => Some(Item {
            scope: ShardScope::Municipality(muni?),
            key: ItemKey(format!("bal/{account}/{municipality}")),
            basis: account_basis(*account),
        }),
        (
            FactBody::UpcomingExpiry {
                account,
                municipality,
                ..
            },
            _,
        ) => Some(Item {
            scope: ShardScope::Municipality(muni?),
            key: ItemKey(format!("exp/{account}/{municipality}")),
            basis: account_basis(*account),
        }),
        (FactBody::VoucherIssuer { issuer, .. }, _) => Some(Item {
            scope: ShardScope::Municipality(muni?),
            key: ItemKey(format!("vi/{issuer}")),
            basis: issuer.to_be_bytes().to_vec(),
        }),
        (FactBody::VoucherMarks { batch, chunk, .. }, _) => Some(Item {
            scope: ShardScope::Municipality(muni?),
            key: ItemKey(format!("vr/{batch}/{chunk}")),
            basis: [&batch.to_be_bytes()[..], &[*chunk]].concat(),
        }),
        (
            FactBody::FacilityCard {
                account,
                facility,
                number,
                ..
            },
            Scope::Facility(f),
        ) if f == facility => {
            let key = format!("fc/{account}/{number}");
            (key.len() <= MAX_ITEM_KEY_LEN).then(|| Item {
                scope: ShardScope::Facility(f.clone()),
                key: ItemKey(key),
                basis: account_basis(*account),
            })
        }
        _ => None,
    }
}

/// The shard and item key of a fact when its scope has `buckets` buckets.
pub fn placement(payload: &FactPayload, buckets: u16) -> Option<(ShardId, ItemKey)> {
    let item = item_of(payload)?;
    Some((item.shard(buckets), item.key))
}

/// Why an item read from a shard was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ItemError {
    /// The bytes are not a signed fact.
    #[error("shard item {key} is not a signed fact: {detail}")]
    Malformed {
        /// The key.
        key: String,
        /// What failed.
        detail: String,
    },
    /// The hub signature does not verify.
    #[error("shard item {key}: {source}")]
    NotAuthentic {
        /// The key.
        key: String,
        /// Why.
        #[source]
        source: FactError,
    },
    /// A genuine fact under a key or in a shard it does not belong to.
    #[error("shard item {key} holds a fact that belongs under {expected}: a peer moved it")]
    Misplaced {
        /// The key it was found under.
        key: String,
        /// Where it belongs (shard and key), or "the fact log".
        expected: String,
    },
}

/// The read rule: decodes `bytes`, verifies the hub signature and requires
/// the fact's own placement (with `buckets` for the shard's scope) to be
/// exactly `shard` and `key`. Callers then keep the item only if its
/// `hub_seq` is above their high-water mark for the key.
pub fn verify_item(
    shard: &ShardId,
    buckets: u16,
    key: &str,
    bytes: &[u8],
    hub: &NodeId,
) -> Result<VerifiedFact, ItemError> {
    let signed = SignedFact::from_bytes(bytes).map_err(|e| ItemError::Malformed {
        key: key.to_owned(),
        detail: e.to_string(),
    })?;
    let v = signed
        .verify(hub)
        .map_err(|source| ItemError::NotAuthentic {
            key: key.to_owned(),
            source,
        })?;
    match placement(v.payload(), buckets) {
        Some((s, k)) if &s == shard && k.as_str() == key => Ok(v),
        Some((s, k)) => Err(ItemError::Misplaced {
            key: key.to_owned(),
            expected: format!("{s} {k}"),
        }),
        None => Err(ItemError::Misplaced {
            key: key.to_owned(),
            expected: "the fact log".to_owned(),
        }),
    }
}

/// A shard a node holds or is told about, with what the hub last wrote to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardHead {
    /// The shard.
    pub shard: ShardId,
    /// Its current epoch.
    pub epoch: Epoch,
    /// Buckets of its scope in this epoch (needed to check placement).
    pub buckets: u16,
    /// The hub_seq of the last fact the hub wrote to it in this epoch (0: none).
    pub last_seq: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fact::CardStatus;
    use crate::ids::{FacilityCardNumber, MyKeyId, Points, UnixMillis};
    use ed25519_dalek::SigningKey;

    fn m() -> MunicipalityCode {
        MunicipalityCode::parse("131059").unwrap()
    }
    fn card(n: u8) -> CardKey {
        CardKey::new(vec![1, 2, 3], vec![n]).unwrap()
    }
    fn fact(hub_seq: u64, scope: Scope, body: FactBody) -> FactPayload {
        FactPayload {
            hub_seq,
            issued_at: UnixMillis(1000),
            scope,
            body,
        }
    }

    #[test]
    fn keyed_facts_are_placed_and_ordered_ones_are_not() {
        let a = AccountId::new(12).unwrap();
        let f = FacilityId::parse("lib-1").unwrap();
        let cases: Vec<(FactPayload, Option<(ShardScope, &str)>)> = vec![
            (
                fact(
                    1,
                    Scope::Municipality(m()),
                    FactBody::CardStatusChanged {
                        card: card(1),
                        status: CardStatus::Suspended,
                    },
                ),
                Some((ShardScope::Deny(m()), "st/")),
            ),
            (
                fact(
                    2,
                    Scope::Municipality(m()),
                    FactBody::CardRegistered {
                        card: card(1),
                        account: a,
                        my_key_id: MyKeyId::parse("alice").unwrap(),
                        municipality: m(),
                    },
                ),
                Some((ShardScope::Municipality(m()), "reg/")),
            ),
            (
                fact(
                    3,
                    Scope::Municipality(m()),
                    FactBody::ConfirmedBalance {
                        account: a,
                        municipality: m(),
                        balance: Points::new(5).unwrap(),
                        debt: Points::ZERO,
                        ledger_pos: 9,
                    },
                ),
                Some((ShardScope::Municipality(m()), "bal/A12/131059")),
            ),
            (
                fact(
                    4,
                    Scope::Facility(f.clone()),
                    FactBody::FacilityCard {
                        account: a,
                        facility: f.clone(),
                        number: FacilityCardNumber::parse("L-1").unwrap(),
                        linked: true,
                    },
                ),
                Some((ShardScope::Facility(f.clone()), "fc/A12/L-1")),
            ),
            (
                fact(5, Scope::All, FactBody::NodeRevoked { node: dummy_node() }),
                None,
            ),
            (
                fact(
                    6,
                    Scope::Municipality(m()),
                    FactBody::VoucherMarks {
                        municipality: m(),
                        batch: 7,
                        chunk: 1,
                        cancelled: false,
                        redeemed: crate::fact::RedeemedBits::default(),
                    },
                ),
                Some((ShardScope::Municipality(m()), "vr/7/1")),
            ),
            (
                fact(
                    7,
                    Scope::Municipality(m()),
                    FactBody::VoucherIssuer {
                        municipality: m(),
                        issuer: 3,
                        node: dummy_node(),
                        withdrawn: false,
                    },
                ),
                Some((ShardScope::Municipality(m()), "vi/3")),
            ),
        ];
        for (p, want) in cases {
            let got = placement(&p, 8);
            match (got, want) {
                (None, None) => {}
                (Some((s, k)), Some((scope, prefix))) => {
                    assert_eq!(s.scope, scope);
                    assert!(s.bucket < 8);
                    assert!(k.as_str().starts_with(prefix), "{k}");
                }
                (g, w) => panic!("{p:?}: got {g:?}, want {w:?}"),
            }
        }
    }

    fn dummy_node() -> NodeId {
        let k = SigningKey::from_bytes(&[3; 32]);
        NodeId::from_bytes(k.verifying_key().to_bytes()).unwrap()
    }

    #[test]
    fn bucket_counts_are_powers_of_two() {
        assert_eq!(normalise_buckets(0), 1);
        assert_eq!(normalise_buckets(1), 1);
        assert_eq!(normalise_buckets(3), 2);
        assert_eq!(normalise_buckets(16), 16);
        assert_eq!(normalise_buckets(u16::MAX), MAX_BUCKETS);
        assert_eq!(buckets_for(0, 10_000), 1);
        assert_eq!(buckets_for(10_000, 10_000), 1);
        assert_eq!(buckets_for(100_000, 10_000), 16);
        // Every bucket gets used for enough subjects.
        let mut seen = [false; 16];
        for i in 0..500u64 {
            seen[bucket_of(&i.to_be_bytes(), 16) as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn the_read_rule_refuses_forged_moved_and_log_facts() {
        let hub = SigningKey::from_bytes(&[7; 32]);
        let hub_id = NodeId::from_bytes(hub.verifying_key().to_bytes()).unwrap();
        let p = fact(
            7,
            Scope::Municipality(m()),
            FactBody::CardStatusChanged {
                card: card(9),
                status: CardStatus::Suspended,
            },
        );
        let (shard, key) = placement(&p, 1).unwrap();
        let bytes = SignedFact::sign(&p, &hub).to_bytes();
        let v = verify_item(&shard, 1, key.as_str(), &bytes, &hub_id).unwrap();
        assert_eq!(v.payload(), &p);
        // Under another key.
        assert!(matches!(
            verify_item(&shard, 1, "st/00", &bytes, &hub_id),
            Err(ItemError::Misplaced { .. })
        ));
        // In another shard.
        let other = ShardId {
            scope: ShardScope::Municipality(m()),
            bucket: 0,
        };
        assert!(matches!(
            verify_item(&other, 1, key.as_str(), &bytes, &hub_id),
            Err(ItemError::Misplaced { .. })
        ));
        // Signed by someone else.
        let forged = SignedFact::sign(&p, &SigningKey::from_bytes(&[8; 32])).to_bytes();
        assert!(matches!(
            verify_item(&shard, 1, key.as_str(), &forged, &hub_id),
            Err(ItemError::NotAuthentic { .. })
        ));
        // Not a fact at all.
        assert!(matches!(
            verify_item(&shard, 1, key.as_str(), b"junk", &hub_id),
            Err(ItemError::Malformed { .. })
        ));
        // A log fact smuggled into a shard.
        let log = fact(8, Scope::All, FactBody::NodeRevoked { node: hub_id });
        let log_bytes = SignedFact::sign(&log, &hub).to_bytes();
        assert!(matches!(
            verify_item(&shard, 1, key.as_str(), &log_bytes, &hub_id),
            Err(ItemError::Misplaced { .. })
        ));
    }
}
