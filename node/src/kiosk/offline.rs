//! What the kiosk shows when the hub is not reachable: what this node
//! already holds for the card (the hub's last confirmed balance and
//! expiry, the spends not yet confirmed), read from the store as the
//! counter's lookup reads it. Nothing is written: the kiosk keeps no
//! history of its own.

use super::screen::OfflineView;
use crate::node::{Lookup, Node};
use crate::store::StoreError;
use mykey_sync_proto::CardKey;

/// What the node holds for `card`, or `None` when the node knows no
/// holder of it in its own municipality (not registered, a visitor, or on
/// the deny list: the caller says which from [`Node::lookup`]).
pub fn offline_view(node: &Node, card: &CardKey) -> Result<Option<OfflineView>, StoreError> {
    let Lookup::Found {
        account,
        my_key_id,
        municipality,
        ..
    } = node.lookup(card)?
    else {
        return Ok(None);
    };
    let (balance, debt, pending) = node.balance(account, municipality)?;
    let expiry = node.upcoming_expiry(account, municipality)?;
    Ok(Some(OfflineView {
        account,
        my_key_id: Some(my_key_id),
        municipality,
        balance,
        debt,
        pending,
        expiry,
    }))
}
