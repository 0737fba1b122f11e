//! `mykey-node link-requests`: a facility's counter answers the card links
//! its holders asked for at a kiosk (issue 19 part 3), where the facility's
//! policy at the hub is `confirm`.
//!
//! The requests live at the hub; this node lists, confirms or refuses them
//! online, through the `mykey-node run` of its data directory, each ask
//! signed with the node's key (`mykey_sync_proto::link_request`). Nothing
//! of them is stored here: a confirmed number reaches this node (and every
//! node of the facility) as the hub's `FacilityCard` fact, as a link made
//! at the counter does, and `mykey-node lookup` then shows it.

use crate::config::{DataDir, DataDirError};
use crate::http::client::{HolderCallError, holder};
use crate::key::{KeyError, NodeKey};
use crate::net::unix_now;
use mykey_sync_proto::UnixMillis;
use mykey_sync_proto::holder::{HolderRefusal, HolderRequest, HolderResponse};
use mykey_sync_proto::link_request::{
    LinkRequest, LinkRequestAnswered, LinkRequestAsk, LinkRequestWhat, SignedLinkRequestAsk,
};

/// `mykey-node link-requests …`.
#[derive(clap::Subcommand, Debug)]
pub enum LinkRequestsCmd {
    /// List the link requests waiting for this node's facility, oldest
    /// first: request number, card number, account, card, when asked.
    List,
    /// Link the request's card number to the holder's account (every node
    /// of the facility learns it from the hub).
    Confirm {
        /// The request number, as `list` prints it (e.g. 3 or #3).
        #[arg(value_parser = parse_id)]
        id: u64,
    },
    /// Close the request with nothing linked (the holder may ask again).
    Refuse {
        /// The request number, as `list` prints it (e.g. 3 or #3).
        #[arg(value_parser = parse_id)]
        id: u64,
    },
}

/// Why `link-requests` did not answer.
#[derive(Debug, thiserror::Error)]
pub enum LinkRequestsError {
    /// The data directory could not be opened.
    #[error(transparent)]
    Open(#[from] DataDirError),
    /// The node key could not be read.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// No running node with a hub link.
    #[error(
        "the hub is not reachable from this node: link requests are answered online, so start `mykey-node run` on this data directory (or wait for its hub link) and try again"
    )]
    Offline,
    /// The running node is busy or answered oddly.
    #[error("{0}")]
    Call(HolderCallError),
    /// The hub refused; nothing changed.
    #[error("the hub refused: {0}")]
    Refused(HolderRefusal),
    /// The hub answered something else.
    #[error(
        "the hub answered something else than link requests: check that both run the same version"
    )]
    Unexpected,
}

fn parse_id(s: &str) -> Result<u64, String> {
    s.trim().trim_start_matches('#').parse().map_err(|_| {
        format!(
            "{s:?} is not a request number: use one `mykey-node link-requests list` prints, e.g. 3"
        )
    })
}

/// Runs `cmd` for the node of `dir` and prints its outcome.
pub fn run_cli(dir: &DataDir, cmd: &LinkRequestsCmd) -> Result<(), LinkRequestsError> {
    // Refuses a directory that holds no node before any key is touched.
    drop(dir.open()?);
    let key = NodeKey::load_or_create(&dir.key_path())?;
    let what = match cmd {
        LinkRequestsCmd::List => LinkRequestWhat::List,
        LinkRequestsCmd::Confirm { id } => LinkRequestWhat::Confirm { id: *id },
        LinkRequestsCmd::Refuse { id } => LinkRequestWhat::Refuse { id: *id },
    };
    let ask = SignedLinkRequestAsk::sign(
        LinkRequestAsk {
            node: key.id(),
            signed_at: unix_now(),
            what,
        },
        key.signing_key(),
    );
    match holder(dir, &HolderRequest::LinkRequests(ask)) {
        Ok(HolderResponse::LinkRequests(list)) => {
            print!("{}", list_text(&list));
            Ok(())
        }
        Ok(HolderResponse::LinkRequestAnswered(a)) => {
            println!("{}", answered_text(&a));
            Ok(())
        }
        Ok(HolderResponse::Refused(r)) => Err(LinkRequestsError::Refused(r)),
        Ok(_) => Err(LinkRequestsError::Unexpected),
        Err(HolderCallError::Offline) => Err(LinkRequestsError::Offline),
        Err(e) => Err(LinkRequestsError::Call(e)),
    }
}

/// The listing as printed: one line per request, then what to do.
pub fn list_text(list: &[LinkRequest]) -> String {
    if list.is_empty() {
        return "no link requests waiting for this facility\n".to_owned();
    }
    let mut out = format!(
        "{} link request{} waiting for {}:\n",
        list.len(),
        if list.len() == 1 { "" } else { "s" },
        list[0].facility
    );
    for r in list {
        out += &format!(
            "  #{}  number {}  account {}  card {}  asked {}\n",
            r.id,
            r.number,
            r.account,
            r.card,
            utc(r.requested_at)
        );
    }
    out += "check the holder's cards at the counter, then `mykey-node link-requests confirm N` (or `refuse N`)\n";
    out
}

/// The answer as printed.
pub fn answered_text(a: &LinkRequestAnswered) -> String {
    let r = &a.request;
    if a.confirmed {
        format!(
            "confirmed #{}: {} card number {} is linked to account {}; this facility's nodes learn it at their next sync",
            r.id, r.facility, r.number, r.account
        )
    } else {
        format!(
            "refused #{}: nothing linked ({} card number {}, account {})",
            r.id, r.facility, r.number, r.account
        )
    }
}

/// `YYYY-MM-DD HH:MM UTC`.
fn utc(t: UnixMillis) -> String {
    let d = mykey_civil::DateTime::from_unix_secs(i64::try_from(t.0 / 1000).unwrap_or(i64::MAX));
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        d.year, d.month, d.day, d.hour, d.minute
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use mykey_sync_proto::{AccountId, CardKey, FacilityCardNumber, FacilityId};

    fn req(id: u64) -> LinkRequest {
        LinkRequest {
            id,
            facility: FacilityId::parse("lib-1").unwrap(),
            number: FacilityCardNumber::parse("L-042").unwrap(),
            account: AccountId::new(12).unwrap(),
            card: CardKey::parse("3001:0a").unwrap(),
            requested_at: UnixMillis(1_796_391_600_000),
        }
    }

    #[test]
    fn the_listing_says_what_waits_and_what_to_do() {
        assert_eq!(
            list_text(&[]),
            "no link requests waiting for this facility\n"
        );
        let text = list_text(&[req(3), req(4)]);
        assert!(
            text.starts_with("2 link requests waiting for lib-1:\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "  #3  number L-042  account A12  card 3001:0a  asked 2026-12-04 13:40 UTC\n"
            ),
            "{text}"
        );
        assert!(text.ends_with("(or `refuse N`)\n"), "{text}");
        for (s, want) in [("3", Ok(3)), ("#4", Ok(4)), (" 5 ", Ok(5))] {
            assert_eq!(parse_id(s), want);
        }
        assert!(
            parse_id("L-042")
                .unwrap_err()
                .contains("link-requests list")
        );
    }
}
