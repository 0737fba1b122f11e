//! Card-holder lifecycle actions that need an explicit actor: a suspended
//! card is reinstated only by a municipality action, at a counter of the
//! holder's own municipality.

use crate::hub::Hub;
use crate::{CardStatusError, StoreError};
use mykey_sync_proto::{CardKey, MunicipalityCode, UnixMillis};

/// Why a reinstatement was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReinstateError {
    /// The card is unknown.
    #[error("card {0} is not registered")]
    UnknownCard(String),
    /// The acting municipality is not the holder's.
    #[error(
        "card {card} belongs to a holder of municipality {holder}; only {holder} can reinstate it, \
         not {actor}"
    )]
    NotTheHoldersMunicipality {
        /// The card, short form.
        card: String,
        /// The holder's base municipality.
        holder: MunicipalityCode,
        /// Who tried.
        actor: MunicipalityCode,
    },
    /// The status change was refused (not suspended).
    #[error(transparent)]
    Status(#[from] CardStatusError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Hub {
    /// Reinstates a suspended card as a municipality action: `actor` must be
    /// the holder's base municipality. Nodes learn it through a card-status fact.
    pub fn reinstate_card_by(
        &mut self,
        actor: MunicipalityCode,
        card: &CardKey,
        now: UnixMillis,
    ) -> Result<(), ReinstateError> {
        let rec = self
            .card(card)?
            .ok_or_else(|| ReinstateError::UnknownCard(card.short()))?;
        let holder = self
            .account(rec.account)
            .map_err(|_| ReinstateError::UnknownCard(card.short()))?;
        if holder.municipality != actor {
            return Err(ReinstateError::NotTheHoldersMunicipality {
                card: card.short(),
                holder: holder.municipality,
                actor,
            });
        }
        self.reinstate_card(card, now)?;
        tracing::info!(card = %card.short(), municipality = %actor, "card reinstated by municipality");
        Ok(())
    }
}
