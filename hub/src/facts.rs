//! The fact log: signs hub facts with consecutive hub_seqs and appends them,
//! and nothing else.
//!
//! Appending a fact never folds the ledger or emits another fact: a caller
//! that wants a wallet's upcoming expiry told asks for it
//! ([`crate::wallet::tell_wallet`]).

use crate::key::HubKey;
use crate::par::par_map;
use crate::store::{StoreError, StoreTx, StoredFact};
use mykey_sync_proto::{
    FactBody, FactPayload, LanGroup, MunicipalityCode, Scope, SignedFact, UnixMillis,
};

/// Orders a window of facts (in hub_seq order): deny-list facts first, except
/// one whose subject already appeared in an earlier non-priority fact of the
/// window; it stays in place, so a node applying the answer in order never
/// ends with a stale status (suspend, reinstate, suspend must not become
/// suspend, suspend, reinstate).
pub(crate) fn priority_first(window: Vec<StoredFact>) -> Vec<SignedFact> {
    let mut first = vec![];
    let mut rest = vec![];
    let mut held_back: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
    for f in window {
        let movable = f.priority && f.subject.as_ref().is_none_or(|s| !held_back.contains(s));
        if movable {
            first.push(f.signed);
        } else {
            if let Some(s) = f.subject {
                held_back.insert(s);
            }
            rest.push(f.signed);
        }
    }
    first.extend(rest);
    first
}

/// What a fact is about, for [`priority_first`]: the card whose status it
/// sets. (Registrations carry no status; node revocations are final.) A LAN
/// roster's subject is its group, so the latest roster of each group is read
/// back from the log by subject ([`crate::lan`], [`roster_subject`]); no priority fact shares it.
pub(crate) fn subject_of(body: &FactBody) -> Option<Vec<u8>> {
    match body {
        FactBody::CardStatusChanged { card, .. } => Some(mykey_sync_proto::codec::encode(card)),
        FactBody::LanRoster {
            municipality,
            group,
            ..
        } => Some(roster_subject(*municipality, group)),
        _ => None,
    }
}

/// The subject a group's roster facts are stored under.
pub(crate) fn roster_subject(m: MunicipalityCode, group: &LanGroup) -> Vec<u8> {
    format!("lan/{m}/{group}").into_bytes()
}

/// The item key and bucket hash a keyed fact is stored with (its shard).
fn item_column(p: &FactPayload) -> Option<(String, u16)> {
    mykey_sync_proto::shard::item_of(p).map(|i| (i.key.as_str().to_owned(), i.hash_prefix()))
}

/// Signs facts with consecutive hub_seqs (on up to `threads` threads) and
/// appends them to the log in order.
pub(crate) fn emit_all(
    st: &mut dyn StoreTx,
    key: &HubKey,
    facts: Vec<(Scope, FactBody)>,
    now: UnixMillis,
    threads: usize,
) -> Result<(), StoreError> {
    let first = st.last_hub_seq()? + 1;
    let payloads: Vec<FactPayload> = facts
        .into_iter()
        .zip(first..)
        .map(|((scope, body), hub_seq)| FactPayload {
            hub_seq,
            issued_at: now,
            scope,
            body,
        })
        .collect();
    let signed = par_map(&payloads, threads, |p| {
        SignedFact::sign(p, key.signing_key())
    });
    for (p, signed) in payloads.into_iter().zip(signed) {
        let fact = StoredFact {
            hub_seq: p.hub_seq,
            priority: p.body.is_priority(),
            subject: subject_of(&p.body),
            signed,
            item: item_column(&p),
        };
        st.append_fact(&p.scope, &fact, now)?;
    }
    Ok(())
}

/// Signs a fact with the next hub_seq and appends it to the log.
pub(crate) fn emit(
    st: &mut dyn StoreTx,
    key: &HubKey,
    scope: Scope,
    body: FactBody,
    now: UnixMillis,
) -> Result<SignedFact, StoreError> {
    let hub_seq = st.last_hub_seq()? + 1;
    let payload = FactPayload {
        hub_seq,
        issued_at: now,
        scope,
        body,
    };
    let signed = SignedFact::sign(&payload, key.signing_key());
    let fact = StoredFact {
        hub_seq,
        priority: payload.body.is_priority(),
        subject: subject_of(&payload.body),
        signed: signed.clone(),
        item: item_column(&payload),
    };
    st.append_fact(&payload.scope, &fact, now)?;
    Ok(signed)
}
