//! One way to name each thing on `mykey-hub`'s command line, the way the
//! listings print it:
//! - an account as `A2`, `2` or its My Key ID (current or former);
//! - a node by its 64-hex id or any unique prefix of it (4 digits or more;
//!   listings print 8), as git takes a commit;
//! - a registered card by its key `ISSUER_HEX:SERIAL_HEX` (the serial as
//!   openssl or a certificate writes it: see [`CardKey::parse`]) or any
//!   unique prefix of the 8-hex card hash listings print.
//!
//! A prefix that fits several is an error listing them; one that fits none
//! says where the names are listed. Resolving only reads.

use crate::Hub;
use crate::model::CardRecord;
use crate::store::StoreError;
use mykey_sync_proto::{AccountId, CardKey, MyKeyId, NodeId};

/// Fewest hex digits a prefix must have (as git asks for).
pub const MIN_PREFIX: usize = 4;

/// Why a name did not name one thing. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum NameError {
    /// The text is no form of this kind of name.
    #[error("{what} {text:?} is not {form}; nothing was changed")]
    Bad {
        /// What was being named.
        what: &'static str,
        /// As given.
        text: String,
        /// The forms it may take.
        form: &'static str,
    },
    /// Nothing has that name.
    #[error("no {what} is named {text:?}: {hint}; nothing was changed")]
    NotFound {
        /// What was being named.
        what: &'static str,
        /// As given.
        text: String,
        /// Where the names are listed.
        hint: &'static str,
    },
    /// Several things fit.
    #[error(
        "{what} {text:?} is ambiguous: it fits {} ({}); give more of it; nothing was changed",
        .candidates.len(), .candidates.join(", ")
    )]
    Ambiguous {
        /// What was being named.
        what: &'static str,
        /// As given.
        text: String,
        /// Each thing it fits, as listings show it.
        candidates: Vec<String>,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

const ACCOUNT_FORMS: &str = "an account: give its id as A2 or 2, or its My Key ID";
const ACCOUNT_HINT: &str = "`mykey-hub account list` shows every account with its My Key ID";
const NODE_FORMS: &str =
    "a node id: give its 64 hex digits or the first 4 or more (`mykey-hub nodes` prints 8)";
const NODE_HINT: &str = "`mykey-hub nodes` lists the enrolled nodes";
const CARD_FORMS: &str = "a card: give its key ISSUER_HEX:SERIAL_HEX (`mykey-node card read` prints it) \
     or the first 4 or more digits of its 8-hex card hash (`mykey-hub account show` prints it)";
const CARD_HINT: &str = "`mykey-hub account show --account A2` lists an account's cards";

/// The account `text` names: `A2`, `2`, or a My Key ID.
pub fn account(hub: &mut Hub, text: &str) -> Result<AccountId, NameError> {
    let text = text.trim();
    let digits = text.strip_prefix(['A', 'a']).unwrap_or(text);
    let as_id = (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| AccountId::parse(digits).ok())
        .flatten();
    let as_alias = MyKeyId::parse(text).ok();
    if as_id.is_none() && as_alias.is_none() {
        return Err(NameError::Bad {
            what: "account",
            text: text.to_owned(),
            form: ACCOUNT_FORMS,
        });
    }
    let mut st = hub.store.begin_read()?;
    let by_id = match as_id {
        Some(id) => st.account(id)?.map(|a| a.id),
        None => None,
    };
    let by_alias = match &as_alias {
        Some(alias) => st.account_by_my_key_id(alias)?,
        None => None,
    };
    match (by_id, by_alias) {
        (Some(a), Some(b)) if a != b => Err(NameError::Ambiguous {
            what: "account",
            text: text.to_owned(),
            candidates: vec![
                format!("account {a} by its id"),
                format!("account {b} by its My Key ID (name it with --my-key-id)"),
            ],
        }),
        (Some(a), _) | (None, Some(a)) => Ok(a),
        (None, None) => Err(NameError::NotFound {
            what: "account",
            text: text.to_owned(),
            hint: ACCOUNT_HINT,
        }),
    }
}

/// The accounts a comma-separated list names (each as [`account`] takes it).
pub fn accounts(hub: &mut Hub, texts: &[String]) -> Result<Vec<AccountId>, NameError> {
    texts.iter().map(|t| account(hub, t)).collect()
}

/// The enrolled node `text` names: its 64-hex id, or a unique prefix of it.
/// A full id is taken as it is (enrolment names a node the hub does not know yet).
pub fn node(hub: &mut Hub, text: &str) -> Result<NodeId, NameError> {
    let text = text.trim().to_ascii_lowercase();
    let bad = || NameError::Bad {
        what: "node",
        text: text.clone(),
        form: NODE_FORMS,
    };
    if text.len() < MIN_PREFIX || text.len() > 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    if text.len() == 64 {
        return NodeId::parse(&text).map_err(|_| bad());
    }
    let fits: Vec<_> = hub
        .store
        .begin_read()?
        .node_statuses()?
        .into_iter()
        .filter(|n| n.node.id.to_string().starts_with(&text))
        .collect();
    match fits.as_slice() {
        [one] => Ok(one.node.id),
        [] => Err(NameError::NotFound {
            what: "node",
            text,
            hint: NODE_HINT,
        }),
        many => Err(NameError::Ambiguous {
            what: "node",
            text: text.clone(),
            candidates: many
                .iter()
                .map(|n| format!("{} at {}", &n.node.id.to_string()[..12], n.node.facility))
                .collect(),
        }),
    }
}

/// The nodes a comma-separated list names (each as [`node`] takes it).
pub fn nodes(hub: &mut Hub, texts: &[String]) -> Result<Vec<NodeId>, NameError> {
    texts.iter().map(|t| node(hub, t)).collect()
}

/// The registered card `text` names: its key (any spelling of the serial)
/// or a unique prefix of its card hash.
pub fn card(hub: &mut Hub, text: &str) -> Result<CardRecord, NameError> {
    let text = text.trim();
    let bad = || NameError::Bad {
        what: "card",
        text: text.to_owned(),
        form: CARD_FORMS,
    };
    let not_found = || NameError::NotFound {
        what: "card",
        text: text.to_owned(),
        hint: CARD_HINT,
    };
    let mut st = hub.store.begin_read()?;
    if text.contains(':') {
        let key = CardKey::parse(text).map_err(|_| bad())?;
        for k in key.spellings() {
            if let Some(c) = st.card(&k)? {
                return Ok(c);
            }
        }
        return Err(not_found());
    }
    let prefix = text.to_ascii_lowercase();
    if prefix.len() < MIN_PREFIX
        || prefix.len() > 8
        || !prefix.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(bad());
    }
    let mut fits: Vec<CardRecord> = st
        .cards()?
        .into_iter()
        .filter(|c| c.card.short().starts_with(&prefix))
        .collect();
    match fits.len() {
        1 => Ok(fits.remove(0)),
        0 => Err(not_found()),
        _ => Err(NameError::Ambiguous {
            what: "card",
            text: text.to_owned(),
            candidates: fits
                .iter()
                .map(|c| format!("card {} of account {}", c.card.short(), c.account))
                .collect(),
        }),
    }
}

/// A card key as it is registered: the serial in the form its certificate
/// holds (a person may have typed it as openssl prints it).
pub fn card_key_to_register(text: &str) -> Result<CardKey, NameError> {
    CardKey::parse(text)
        .map(|k| k.canonical())
        .map_err(|_| NameError::Bad {
            what: "card key",
            text: text.trim().to_owned(),
            form: "ISSUER_HEX:SERIAL_HEX, as `mykey-node card read` prints it (the serial may be written as openssl prints it)",
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HubKey;
    use mykey_sync_proto::{MunicipalityCode, UnixMillis};

    #[test]
    fn an_id_that_is_also_a_my_key_id_is_ambiguous() {
        let mut hub = Hub::in_memory(HubKey::from_secret_bytes(&[4; 32])).unwrap();
        let m = MunicipalityCode::parse("131059").unwrap();
        let t = UnixMillis(1_800_000_000_000);
        hub.add_municipality(m, "Bunkyo-ku", t).unwrap();
        // Accounts A1..A12, then A13 whose My Key ID is "A12".
        for i in 1..=13u8 {
            let alias = if i == 13 {
                "A12".to_owned()
            } else {
                format!("holder{i}")
            };
            let card = CardKey::new(vec![0x30], vec![i]).unwrap();
            hub.register_account(&MyKeyId::parse(&alias).unwrap(), m, &card, t)
                .unwrap();
        }
        let err = account(&mut hub, "A12").unwrap_err().to_string();
        assert!(err.contains("ambiguous") && err.contains("A13"), "{err}");
        assert!(err.contains("--my-key-id"), "{err}");
        // The other spelling of the id, and the flag for the alias, are not.
        assert_eq!(account(&mut hub, "12").unwrap().get(), 12);
        assert_eq!(account(&mut hub, "holder3").unwrap().get(), 3);
        assert_eq!(account(&mut hub, "a7").unwrap().get(), 7);
        assert!(matches!(
            account(&mut hub, "A14"),
            Err(NameError::NotFound { .. })
        ));
        assert!(matches!(
            account(&mut hub, "no!"),
            Err(NameError::Bad { .. })
        ));
    }
}
