//! Helpers the hub's benchmarks share: knobs from the environment, a
//! seedable stream, node chains that sign as a node does, and the fixture's
//! municipality, cards and node policy.
#![allow(dead_code)]

use ed25519_dalek::SigningKey;
use mykey_hub::admin::facility;
use mykey_hub::{FacilityKind, Hub, NodePolicy};
use mykey_sync_proto::{
    AccountId, CardKey, FacilityId, MunicipalityCode, MyKeyId, NodeId, OpKind, Points, SignedTx,
    TxBody, TxId, TxPayload, UnixMillis,
};
use std::path::Path;

pub const T0: UnixMillis = UnixMillis(1_750_000_000_000);

pub fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// splitmix64: a fixed, seedable stream for the workload.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

pub struct Chain {
    pub key: SigningKey,
    pub id: NodeId,
    pub seq: u64,
    pub prev: TxId,
}

impl Chain {
    pub fn new(seed: u8) -> Chain {
        let key = SigningKey::from_bytes(&[seed; 32]);
        let id = NodeId::from_bytes(key.verifying_key().to_bytes()).expect("node id");
        Chain {
            key,
            id,
            seq: 0,
            prev: TxId::GENESIS,
        }
    }
    pub fn sign(&mut self, body: TxBody, at: UnixMillis) -> SignedTx {
        self.seq += 1;
        let tx = SignedTx::sign(
            &TxPayload {
                node: self.id,
                seq: self.seq,
                prev_hash: self.prev,
                created_at: at,
                body,
            },
            &self.key,
        );
        self.prev = tx.id();
        tx
    }
}

pub fn muni() -> MunicipalityCode {
    MunicipalityCode::parse("131059").expect("code")
}
pub fn card(i: usize) -> CardKey {
    CardKey::new(
        vec![0x30, 0x0b, 0x31],
        (i as u32 + 1).to_be_bytes().to_vec(),
    )
    .expect("card")
}
pub fn policy(op: OpKind) -> NodePolicy {
    NodePolicy {
        allowed_ops: vec![op],
        per_card_offline_limit: Points::new(3000).expect("pts"),
        node_exposure_limit: Points::new(1_000_000_000).expect("pts"),
        offline_voucher_cap: Points::new(1_000_000_000).expect("pts"),
        pin_threshold: Points::new(1_000_000).expect("pts"),
        valid_until: T0.plus_ms(10 * 365 * 86_400_000),
    }
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Adds facility `id` of `kind` and enrols `node` there for `op`.
pub fn site(hub: &mut Hub, id: &str, kind: FacilityKind, node: &Chain, op: OpKind) {
    let f = FacilityId::parse(id).expect("id");
    hub.add_facility(&facility(f.clone(), muni(), kind, id), T0)
        .expect("facility");
    hub.enrol_node(node.id, &f, policy(op), T0).expect("enrol");
}

/// Registers `n` holders (`holder0`, … with `card(0)`, …).
pub fn holders(hub: &mut Hub, n: usize) -> Vec<AccountId> {
    (0..n)
        .map(|i| {
            let alias = MyKeyId::parse(&format!("holder{i}")).expect("alias");
            hub.register_account(&alias, muni(), &card(i), T0)
                .expect("register")
        })
        .collect()
}
