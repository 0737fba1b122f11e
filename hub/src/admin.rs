//! Operator actions on the registry and the ledger: what the CLI, the
//! operator API, the tests and the simulation call. Each checks its input
//! against the store, writes, emits the facts nodes must learn and commits,
//! all in one storage transaction. Time comes in as `now`.

use crate::facts::emit;
use crate::hub::Hub;
use crate::model::{
    Account, Balance, CardRecord, ChainHead, DebtLine, Facility, FacilityKind, Incident,
    IncidentKind, LedgerAccount, Municipality, NodePolicy, NodeRecord, NodeStatus, Posted, Program,
    ProgramLine, TransferDraft, TransferKind,
};
use crate::store::{StoreError, StoreTx};
use crate::{ledger, rules, wallet};
use mykey_jpki::TrustedCert;
use mykey_sync_proto::fact::CardStatus;
use mykey_sync_proto::{
    AccountId, CardKey, FacilityId, FactBody, MunicipalityCode, MyKeyId, NodeId, NodeLimits,
    Points, ProgramId, Scope, SignedFact, UnixMillis,
};

/// Why a municipality could not be added.
#[derive(Debug, thiserror::Error)]
pub enum AddMunicipalityError {
    /// Already registered.
    #[error("municipality {0} is already registered")]
    Exists(MunicipalityCode),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a facility could not be added.
#[derive(Debug, thiserror::Error)]
pub enum AddFacilityError {
    /// Already registered.
    #[error("facility {0} is already registered")]
    Exists(FacilityId),
    /// Its municipality is unknown.
    #[error("municipality {0} is not registered; add it first with `mykey-hub municipality add`")]
    UnknownMunicipality(MunicipalityCode),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a node could not be enrolled.
#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    /// Its facility is unknown.
    #[error("facility {0} is not registered; add it first with `mykey-hub facility add`")]
    UnknownFacility(FacilityId),
    /// A revoked key never comes back.
    #[error(
        "node {0} was revoked; a revoked key cannot be enrolled again: generate a new node key"
    )]
    Revoked(NodeId),
    /// The hub's own key.
    #[error("{0} is the hub's own key, not a node key")]
    HubKey(NodeId),
    /// The certificate would be void at once.
    #[error("valid-until lies in the past; give a validity period that ends in the future")]
    Expired,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a node could not be revoked.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    /// Not enrolled.
    #[error("node {0} is not enrolled; `mykey-hub nodes` lists the enrolled ones")]
    UnknownNode(NodeId),
    /// Already revoked.
    #[error("node {0} is already revoked")]
    AlreadyRevoked(NodeId),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why an account could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// Unknown municipality.
    #[error("municipality {0} is not registered; add it first with `mykey-hub municipality add`")]
    UnknownMunicipality(MunicipalityCode),
    /// The alias is (or was) someone's.
    #[error(
        "My Key ID {0} is taken (aliases are unique ignoring case, and never reused); choose another"
    )]
    MyKeyIdTaken(MyKeyId),
    /// The card is registered already.
    #[error("card {} is already registered to account {}", .0.short(), .1)]
    CardTaken(CardKey, AccountId),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a card's certificate key could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum CardCertificateError {
    /// The certificate's card is not registered.
    #[error(
        "card {} is not registered: register it with `mykey-hub account register --cert FILE` instead",
        .0.short()
    )]
    UnknownCard(CardKey),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a card could not be added to an account.
#[derive(Debug, thiserror::Error)]
pub enum AddCardError {
    /// Unknown account.
    #[error("account {0} does not exist")]
    UnknownAccount(AccountId),
    /// The card is registered already.
    #[error("card {} is already registered to account {}", .0.short(), .1)]
    CardTaken(CardKey, AccountId),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why an alias could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum ChangeMyKeyIdError {
    /// Unknown account.
    #[error("account {0} does not exist")]
    UnknownAccount(AccountId),
    /// The alias is (or was) another account's.
    #[error(
        "My Key ID {0} is taken (aliases are unique ignoring case, and never reused); choose another"
    )]
    Taken(MyKeyId),
    /// The account's My Key ID is no longer the one the change was asked from.
    #[error("account {account} has My Key ID {current} now, not {from}; nothing was changed")]
    Moved {
        /// The account.
        account: AccountId,
        /// The ID the change was asked from.
        from: MyKeyId,
        /// The ID it has.
        current: MyKeyId,
    },
    /// The holder's signed order for this change was carried out already.
    #[error("this holder order was carried out already; nothing was changed")]
    Replayed,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a card's status could not change.
#[derive(Debug, thiserror::Error)]
pub enum CardStatusError {
    /// Unknown card.
    #[error("card {} is not registered", .0.short())]
    UnknownCard(CardKey),
    /// The card is not in a state the change applies to.
    #[error("card {} is {}; only {} cards can be {}", .card.short(), .status.name(), .from, .to)]
    WrongState {
        /// The card.
        card: CardKey,
        /// Its status.
        status: CardStatus,
        /// The state the change needs.
        from: &'static str,
        /// The change.
        to: &'static str,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a programme could not be created or funded.
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    /// Exists already.
    #[error("programme {0} already exists; fund it with `mykey-hub program fund`")]
    Exists(ProgramId),
    /// Unknown programme.
    #[error("programme {0} does not exist; create it with `mykey-hub program create`")]
    UnknownProgram(ProgramId),
    /// Unknown municipality.
    #[error("municipality {0} is not registered; add it first with `mykey-hub municipality add`")]
    UnknownMunicipality(MunicipalityCode),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a hub-side grant failed.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// Unknown account.
    #[error("account {0} does not exist")]
    UnknownAccount(AccountId),
    /// Unknown programme.
    #[error("programme {0} does not exist; create it with `mykey-hub program create`")]
    UnknownProgram(ProgramId),
    /// Zero points.
    #[error("a grant must be of at least 1 point")]
    Zero,
    /// The balance would pass the largest amount.
    #[error("the grant would take the balance of {0} past {max} pt", max = Points::MAX)]
    TooLarge(AccountId),
    /// The programme's budget cannot pay it (offline grants from nodes are
    /// honoured and reported instead; a grant made at the hub is declined).
    #[error(
        "programme {program} has {left} pt of budget left, not enough for a grant of {asked}; \
         fund it with `mykey-hub program fund`"
    )]
    BudgetExhausted {
        /// The programme.
        program: ProgramId,
        /// Budget left (0 when overdrawn).
        left: i128,
        /// The grant asked for.
        asked: Points,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// Unknown account.
    #[error("account {0} does not exist")]
    UnknownAccount(AccountId),
    /// Unknown alias.
    #[error("no account has My Key ID {0}")]
    UnknownMyKeyId(MyKeyId),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why the full ledger check failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// An invariant is broken.
    #[error(transparent)]
    Broken(#[from] ledger::ConservationError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Emits a card's registration or status fact to the nodes of every
/// municipality, not only the holder's own: a visitor's card is then known
/// at another town's counters as registered elsewhere (its home in the
/// fact), never as unregistered, and its suspension reaches them too.
/// Balances and spends stay in the home municipality's scope.
fn emit_card_everywhere(
    st: &mut dyn StoreTx,
    key: &crate::key::HubKey,
    body: &FactBody,
    now: UnixMillis,
) -> Result<(), StoreError> {
    for m in st.municipalities()? {
        emit(st, key, Scope::Municipality(m.code), body.clone(), now)?;
    }
    Ok(())
}

pub(crate) fn card_fact(card: &CardKey, account: &Account) -> FactBody {
    FactBody::CardRegistered {
        card: card.clone(),
        account: account.id,
        my_key_id: account.my_key_id.clone(),
        municipality: account.municipality,
    }
}

impl Hub {
    /// Registers a municipality.
    pub fn add_municipality(
        &mut self,
        code: MunicipalityCode,
        name: &str,
        now: UnixMillis,
    ) -> Result<(), AddMunicipalityError> {
        let mut st = self.store.begin()?;
        if st.municipality(code)?.is_some() {
            return Err(AddMunicipalityError::Exists(code));
        }
        st.insert_municipality(
            &Municipality {
                code,
                name: name.to_owned(),
            },
            now,
        )?;
        // The new town's nodes learn the other towns' cards as visitors'.
        let accounts: std::collections::BTreeMap<AccountId, Account> =
            st.accounts(None)?.into_iter().map(|a| (a.id, a)).collect();
        for rec in st.cards()? {
            let Some(acct) = accounts.get(&rec.account) else {
                return Err(StoreError::Corrupt {
                    what: "card",
                    detail: format!("card of missing account {}", rec.account),
                }
                .into());
            };
            if rec.status != CardStatus::Superseded {
                let scope = Scope::Municipality(code);
                emit(
                    &mut *st,
                    &self.key,
                    scope.clone(),
                    card_fact(&rec.card, acct),
                    now,
                )?;
                if rec.status == CardStatus::Suspended {
                    let body = FactBody::CardStatusChanged {
                        card: rec.card,
                        status: rec.status,
                    };
                    emit(&mut *st, &self.key, scope, body, now)?;
                }
            }
        }
        ledger::commit(st)?;
        Ok(())
    }

    /// Registers a facility of a municipality.
    pub fn add_facility(&mut self, f: &Facility, now: UnixMillis) -> Result<(), AddFacilityError> {
        let mut st = self.store.begin()?;
        if st.facility(&f.id)?.is_some() {
            return Err(AddFacilityError::Exists(f.id.clone()));
        }
        if st.municipality(f.municipality)?.is_none() {
            return Err(AddFacilityError::UnknownMunicipality(f.municipality));
        }
        st.insert_facility(f, now)?;
        ledger::commit(st)?;
        Ok(())
    }

    /// Enrols a node key at a facility (or updates its policy) and issues its
    /// certificate: a `NodeLimits` fact addressed to the node, returned too,
    /// and its offline voucher cap (a `NodeVoucherCap` fact).
    pub fn enrol_node(
        &mut self,
        node: NodeId,
        facility: &FacilityId,
        policy: NodePolicy,
        now: UnixMillis,
    ) -> Result<SignedFact, EnrolError> {
        if node == self.key.id() {
            return Err(EnrolError::HubKey(node));
        }
        if policy.valid_until <= now {
            return Err(EnrolError::Expired);
        }
        let mut st = self.store.begin()?;
        let f = st
            .facility(facility)?
            .ok_or_else(|| EnrolError::UnknownFacility(facility.clone()))?;
        if st.node(&node)?.is_some_and(|n| n.is_revoked()) {
            return Err(EnrolError::Revoked(node));
        }
        let record = NodeRecord {
            id: node,
            facility: f.id.clone(),
            municipality: f.municipality,
            policy,
            enrolled_at: now,
            revoked_at: None,
        };
        st.upsert_node(&record)?;
        let mut ops = record.policy.allowed_ops.clone();
        ops.sort();
        ops.dedup();
        let cert = emit(
            &mut *st,
            &self.key,
            Scope::Node(node),
            FactBody::NodeLimits(NodeLimits {
                node,
                facility: f.id,
                municipality: f.municipality,
                allowed_ops: ops,
                per_card_offline_limit: record.policy.per_card_offline_limit,
                node_exposure_limit: record.policy.node_exposure_limit,
                pin_threshold: record.policy.pin_threshold,
                valid_until: record.policy.valid_until,
            }),
            now,
        )?;
        // Its own fact, so that `NodeLimits` keeps the encoding nodes hold.
        emit(
            &mut *st,
            &self.key,
            Scope::Node(node),
            FactBody::NodeVoucherCap {
                node,
                offline_voucher_cap: record.policy.offline_voucher_cap,
            },
            now,
        )?;
        ledger::commit(st)?;
        tracing::info!(node = %node.short(), facility = %facility, "enrolled node");
        Ok(cert)
    }

    /// Revokes a node key: its sessions and transactions are refused from
    /// now on, and every node learns it (priority fact); every LAN roster
    /// that named it is issued again without it.
    pub fn revoke_node(&mut self, node: NodeId, now: UnixMillis) -> Result<(), RevokeError> {
        let mut st = self.store.begin()?;
        let municipality = match st.node(&node)? {
            None => return Err(RevokeError::UnknownNode(node)),
            Some(n) if n.is_revoked() => return Err(RevokeError::AlreadyRevoked(node)),
            Some(n) => n.municipality,
        };
        st.revoke_node(&node, now)?;
        emit(
            &mut *st,
            &self.key,
            Scope::All,
            FactBody::NodeRevoked { node },
            now,
        )?;
        // A revoked key drops out of every LAN roster that named it.
        crate::rosters::drop_from_rosters(&mut *st, &self.key, node, municipality, now)?;
        ledger::commit(st)?;
        tracing::info!(node = %node.short(), "revoked node");
        Ok(())
    }

    /// Registers a holder: a new account with a My Key ID and a first card.
    /// The hub keeps no certificate key for the card, so it can verify no
    /// card proof from it: prefer [`Hub::register_account_with_certificate`].
    pub fn register_account(
        &mut self,
        my_key_id: &MyKeyId,
        municipality: MunicipalityCode,
        card: &CardKey,
        now: UnixMillis,
    ) -> Result<AccountId, RegisterError> {
        self.register(my_key_id, municipality, card, None, now)
    }

    /// Registers a holder with the card's user-authentication certificate
    /// (checked against the trusted JPKI CAs by the caller: a
    /// [`TrustedCert`]): the hub keeps its public key and verifies the card
    /// proofs that redeems above a node's PIN threshold carry.
    pub fn register_account_with_certificate(
        &mut self,
        my_key_id: &MyKeyId,
        municipality: MunicipalityCode,
        cert: &TrustedCert,
        now: UnixMillis,
    ) -> Result<AccountId, RegisterError> {
        let card = cert.cert().card_key().clone();
        self.register(my_key_id, municipality, &card, Some(cert), now)
    }

    fn register(
        &mut self,
        my_key_id: &MyKeyId,
        municipality: MunicipalityCode,
        card: &CardKey,
        cert: Option<&TrustedCert>,
        now: UnixMillis,
    ) -> Result<AccountId, RegisterError> {
        let mut st = self.store.begin()?;
        if st.municipality(municipality)?.is_none() {
            return Err(RegisterError::UnknownMunicipality(municipality));
        }
        if st.account_by_my_key_id(my_key_id)?.is_some() {
            return Err(RegisterError::MyKeyIdTaken(my_key_id.clone()));
        }
        if let Some(c) = card_spelled_any_way(&mut *st, card)? {
            return Err(RegisterError::CardTaken(card.clone(), c.account));
        }
        let id = st.insert_account(my_key_id, municipality, now)?;
        st.insert_card(
            &CardRecord {
                card: card.clone(),
                account: id,
                status: CardStatus::Active,
            },
            now,
        )?;
        if let Some(c) = cert {
            st.set_card_public_key(card, c.cert().public_key_der(), now)?;
        }
        let account = Account {
            id,
            my_key_id: my_key_id.clone(),
            municipality,
            created_at: now,
        };
        emit_card_everywhere(&mut *st, &self.key, &card_fact(card, &account), now)?;
        ledger::commit(st)?;
        tracing::info!(account = %id, card = %card.short(), "registered account");
        Ok(id)
    }

    /// Links a renewed or reissued card to an existing account; the
    /// account's active cards become superseded. The hub keeps no
    /// certificate key for it: prefer [`Hub::add_card_with_certificate`].
    pub fn add_card(
        &mut self,
        account: AccountId,
        card: &CardKey,
        now: UnixMillis,
    ) -> Result<(), AddCardError> {
        self.link_card(account, card, None, now)
    }

    /// [`Hub::add_card`] with the renewed card's checked certificate: the
    /// hub keeps its public key for the card proofs.
    pub fn add_card_with_certificate(
        &mut self,
        account: AccountId,
        cert: &TrustedCert,
        now: UnixMillis,
    ) -> Result<(), AddCardError> {
        let card = cert.cert().card_key().clone();
        self.link_card(account, &card, Some(cert), now)
    }

    /// Keeps the public key of a registered card's checked certificate
    /// (for a card registered without it): from now on the hub verifies
    /// the card proofs it signs.
    pub fn set_card_certificate(
        &mut self,
        cert: &TrustedCert,
        now: UnixMillis,
    ) -> Result<AccountId, CardCertificateError> {
        let card = cert.cert().card_key();
        let mut st = self.store.begin()?;
        let rec = st
            .card(card)?
            .ok_or_else(|| CardCertificateError::UnknownCard(card.clone()))?;
        st.set_card_public_key(card, cert.cert().public_key_der(), now)?;
        ledger::commit(st)?;
        tracing::info!(card = %card.short(), account = %rec.account, "card certificate key kept");
        Ok(rec.account)
    }

    fn link_card(
        &mut self,
        account: AccountId,
        card: &CardKey,
        cert: Option<&TrustedCert>,
        now: UnixMillis,
    ) -> Result<(), AddCardError> {
        let mut st = self.store.begin()?;
        let acct = st
            .account(account)?
            .ok_or(AddCardError::UnknownAccount(account))?;
        if let Some(c) = card_spelled_any_way(&mut *st, card)? {
            return Err(AddCardError::CardTaken(card.clone(), c.account));
        }
        for old in st.cards_of(account)? {
            if old.status == CardStatus::Active {
                st.set_card_status(&old.card, CardStatus::Superseded, now)?;
                let body = FactBody::CardStatusChanged {
                    card: old.card,
                    status: CardStatus::Superseded,
                };
                emit_card_everywhere(&mut *st, &self.key, &body, now)?;
            }
        }
        st.insert_card(
            &CardRecord {
                card: card.clone(),
                account,
                status: CardStatus::Active,
            },
            now,
        )?;
        if let Some(c) = cert {
            st.set_card_public_key(card, c.cert().public_key_der(), now)?;
        }
        emit_card_everywhere(&mut *st, &self.key, &card_fact(card, &acct), now)?;
        ledger::commit(st)?;
        Ok(())
    }

    /// Gives an account a new My Key ID. The old one stays reserved to the
    /// account and resolvable (audit); nodes learn the new one.
    pub fn change_my_key_id(
        &mut self,
        account: AccountId,
        new: &MyKeyId,
        now: UnixMillis,
    ) -> Result<(), ChangeMyKeyIdError> {
        self.change_my_key_id_from(account, None, new, now)
    }

    /// [`Hub::change_my_key_id`] for a holder's order: only while the
    /// account's ID is `from` (checked in the same transaction), and only
    /// once for the order's challenge, claimed in that transaction, so a
    /// replay changes nothing, even after the holder changed back.
    pub(crate) fn change_my_key_id_from(
        &mut self,
        account: AccountId,
        order: Option<(&MyKeyId, &[u8; 32])>,
        new: &MyKeyId,
        now: UnixMillis,
    ) -> Result<(), ChangeMyKeyIdError> {
        let from = order.map(|(from, _)| from);
        let mut st = self.store.begin()?;
        if let Some((_, challenge)) = order
            && !st.claim_holder_order(challenge, now)?
        {
            return Err(ChangeMyKeyIdError::Replayed);
        }
        let mut acct = st
            .account(account)?
            .ok_or(ChangeMyKeyIdError::UnknownAccount(account))?;
        if let Some(from) = from
            && from.as_str() != acct.my_key_id.as_str()
        {
            return Err(ChangeMyKeyIdError::Moved {
                account,
                from: from.clone(),
                current: acct.my_key_id,
            });
        }
        match st.account_by_my_key_id(new)? {
            Some(other) if other != account => return Err(ChangeMyKeyIdError::Taken(new.clone())),
            _ => {}
        }
        st.set_my_key_id(account, new, now)?;
        acct.my_key_id = new.clone();
        for c in st.cards_of(account)? {
            if c.status != CardStatus::Superseded {
                emit_card_everywhere(&mut *st, &self.key, &card_fact(&c.card, &acct), now)?;
            }
        }
        ledger::commit(st)?;
        Ok(())
    }

    /// Suspends a lost card: every node of its municipality refuses it,
    /// learning it before other facts.
    pub fn suspend_card(&mut self, card: &CardKey, now: UnixMillis) -> Result<(), CardStatusError> {
        self.change_card_status(card, CardStatus::Active, CardStatus::Suspended, now)
    }

    /// Reinstates a suspended card (at a municipal counter).
    pub fn reinstate_card(
        &mut self,
        card: &CardKey,
        now: UnixMillis,
    ) -> Result<(), CardStatusError> {
        self.change_card_status(card, CardStatus::Suspended, CardStatus::Active, now)
    }

    fn change_card_status(
        &mut self,
        card: &CardKey,
        from: CardStatus,
        mut to: CardStatus,
        now: UnixMillis,
    ) -> Result<(), CardStatusError> {
        let mut st = self.store.begin()?;
        let rec = st
            .card(card)?
            .ok_or_else(|| CardStatusError::UnknownCard(card.clone()))?;
        if rec.status != from {
            return Err(CardStatusError::WrongState {
                card: card.clone(),
                status: rec.status,
                from: from.name(),
                to: if to == CardStatus::Suspended {
                    "suspended"
                } else {
                    "reinstated"
                },
            });
        }
        // A card renewed while it was suspended comes back as superseded:
        // an account has one active card.
        if to == CardStatus::Active
            && st
                .cards_of(rec.account)?
                .iter()
                .any(|c| c.status == CardStatus::Active)
        {
            to = CardStatus::Superseded;
        }
        if st.account(rec.account)?.is_none() {
            return Err(StoreError::Corrupt {
                what: "card",
                detail: format!("card of missing account {}", rec.account),
            }
            .into());
        }
        st.set_card_status(card, to, now)?;
        let body = FactBody::CardStatusChanged {
            card: card.clone(),
            status: to,
        };
        emit_card_everywhere(&mut *st, &self.key, &body, now)?;
        ledger::commit(st)?;
        tracing::info!(card = %card.short(), status = to.name(), "card status changed");
        Ok(())
    }

    /// Creates a programme with an initial budget funded by its municipality.
    pub fn create_program(
        &mut self,
        id: &ProgramId,
        municipality: MunicipalityCode,
        budget: Points,
        now: UnixMillis,
    ) -> Result<(), ProgramError> {
        let mut st = self.store.begin()?;
        if st.program(id)?.is_some() {
            return Err(ProgramError::Exists(id.clone()));
        }
        if st.municipality(municipality)?.is_none() {
            return Err(ProgramError::UnknownMunicipality(municipality));
        }
        st.insert_program(
            &Program {
                id: id.clone(),
                municipality,
            },
            now,
        )?;
        fund(&mut *st, id, municipality, budget, now)?;
        ledger::commit(st)?;
        Ok(())
    }

    /// Adds to a programme's budget.
    pub fn fund_program(
        &mut self,
        id: &ProgramId,
        points: Points,
        now: UnixMillis,
    ) -> Result<(), ProgramError> {
        let mut st = self.store.begin()?;
        let p = st
            .program(id)?
            .ok_or_else(|| ProgramError::UnknownProgram(id.clone()))?;
        fund(&mut *st, id, p.municipality, points, now)?;
        ledger::commit(st)?;
        Ok(())
    }

    /// A hub-side grant (not from a node): the programme's budget credits the
    /// holder's wallet in the programme's municipality, recovering debt first.
    pub fn admin_grant(
        &mut self,
        account: AccountId,
        program: &ProgramId,
        points: Points,
        now: UnixMillis,
    ) -> Result<Balance, GrantError> {
        if points.is_zero() {
            return Err(GrantError::Zero);
        }
        let mut st = self.store.begin()?;
        if st.account(account)?.is_none() {
            return Err(GrantError::UnknownAccount(account));
        }
        let p = st
            .program(program)?
            .ok_or_else(|| GrantError::UnknownProgram(program.clone()))?;
        let m = p.municipality;
        let before = ledger::wallet_balance(&mut *st, account, m)?;
        if before.balance.checked_add(points).is_none() {
            return Err(GrantError::TooLarge(account));
        }
        let budget = LedgerAccount::ProgramBudget(program.clone(), m);
        let left = budget.balance(st.posted(&budget)?);
        if left < i128::from(points.get()) {
            return Err(GrantError::BudgetExhausted {
                program: program.clone(),
                left: left.max(0),
                asked: points,
            });
        }
        for t in rules::grant_transfers(
            program,
            account,
            m,
            points,
            before.balance,
            before.debt,
            None,
        ) {
            st.post(&t, now)?;
        }
        let after = wallet::tell_wallet(&mut *st, &self.key, account, m, now)?;
        ledger::commit(st)?;
        Ok(after)
    }

    /// The card numbers of one facility linked to an account (what that
    /// facility's nodes must hold once they have synced).
    pub fn facility_numbers(
        &mut self,
        facility: &FacilityId,
        account: AccountId,
    ) -> Result<Vec<mykey_sync_proto::FacilityCardNumber>, StoreError> {
        self.store
            .begin_read()?
            .facility_cards_of(facility, account)
    }

    /// A holder's balance and debt in one municipality.
    pub fn balance(
        &mut self,
        account: AccountId,
        municipality: MunicipalityCode,
    ) -> Result<Balance, LookupError> {
        let mut st = self.store.begin_read()?;
        if st.account(account)?.is_none() {
            return Err(LookupError::UnknownAccount(account));
        }
        Ok(ledger::wallet_balance(&mut *st, account, municipality)?)
    }

    /// A holder's balances in every municipality where they hold points or debt.
    pub fn balances(
        &mut self,
        account: AccountId,
    ) -> Result<Vec<(MunicipalityCode, Balance)>, LookupError> {
        let mut st = self.store.begin_read()?;
        if st.account(account)?.is_none() {
            return Err(LookupError::UnknownAccount(account));
        }
        let mut out = vec![];
        for m in st.municipalities()? {
            let b = ledger::wallet_balance(&mut *st, account, m.code)?;
            let w = LedgerAccount::Wallet(account, m.code);
            if st.posted(&w)? != Posted::default() || !b.debt.is_zero() {
                out.push((m.code, b));
            }
        }
        Ok(out)
    }

    /// A holder's points in `m` reserved for strict-mode rights, and how
    /// many nodes hold them.
    pub fn reserved(
        &mut self,
        account: AccountId,
        m: MunicipalityCode,
    ) -> Result<(Points, u64), StoreError> {
        ledger::reserved_balance(&mut *self.store.begin_read()?, account, m)
    }

    /// An account by id.
    pub fn account(&mut self, id: AccountId) -> Result<Account, LookupError> {
        let mut st = self.store.begin_read()?;
        st.account(id)?.ok_or(LookupError::UnknownAccount(id))
    }

    /// The account that holds or held a My Key ID.
    pub fn resolve_my_key_id(&mut self, id: &MyKeyId) -> Result<AccountId, LookupError> {
        let mut st = self.store.begin_read()?;
        st.account_by_my_key_id(id)?
            .ok_or_else(|| LookupError::UnknownMyKeyId(id.clone()))
    }

    /// The cards of an account.
    pub fn cards_of(&mut self, id: AccountId) -> Result<Vec<CardRecord>, StoreError> {
        self.store.begin_read()?.cards_of(id)
    }

    /// A card's record.
    pub fn card(&mut self, card: &CardKey) -> Result<Option<CardRecord>, StoreError> {
        self.store.begin_read()?.card(card)
    }

    /// A node's record.
    pub fn node(&mut self, node: &NodeId) -> Result<Option<NodeRecord>, StoreError> {
        self.store.begin_read()?.node(node)
    }

    /// How far a node's chain is processed.
    pub fn chain_head(&mut self, node: &NodeId) -> Result<ChainHead, StoreError> {
        self.store.begin_read()?.chain_head(node)
    }

    /// The transaction processed at (node, seq) and its verdict.
    pub fn processed_tx(
        &mut self,
        node: &NodeId,
        seq: u64,
    ) -> Result<Option<crate::store::ProcessedTx>, StoreError> {
        self.store.begin_read()?.processed_tx(node, seq)
    }

    /// How many times a transaction was applied (0 or 1; the schema refuses more).
    pub fn tx_applications(&mut self, tx: &mykey_sync_proto::TxId) -> Result<u64, StoreError> {
        self.store.begin_read()?.tx_count(tx)
    }

    /// Total outstanding debt across holders and municipalities.
    pub fn total_debt(&mut self) -> Result<u64, StoreError> {
        Ok(self.debts()?.iter().map(|d| d.debt.get()).sum())
    }

    /// Every outstanding debt.
    pub fn debts(&mut self) -> Result<Vec<DebtLine>, StoreError> {
        self.store.begin_read()?.debts()
    }

    /// Every programme with its remaining budget and overdraw.
    pub fn programs(&mut self) -> Result<Vec<ProgramLine>, StoreError> {
        let mut st = self.store.begin_read()?;
        let mut out = vec![];
        for program in st.programs()? {
            let acct = LedgerAccount::ProgramBudget(program.id.clone(), program.municipality);
            let b = acct.balance(st.posted(&acct)?);
            // A budget may be overdrawn (offline grants are honoured): each
            // side shows as points, past the largest amount as none.
            let pts = |v: i128| ledger::points_of(v.max(0)).unwrap_or_default();
            out.push(ProgramLine {
                program,
                budget: pts(b),
                overdrawn: pts(-b),
            });
        }
        Ok(out)
    }

    /// Every node with its chain, last contact and rejection counts (the
    /// dashboard's table).
    pub fn node_statuses(&mut self) -> Result<Vec<NodeStatus>, StoreError> {
        self.store.begin_read()?.node_statuses()
    }

    /// How many incidents of each kind the hub ever recorded.
    pub fn incident_counts(&mut self) -> Result<Vec<(IncidentKind, u64)>, StoreError> {
        self.store.begin_read()?.incident_counts()
    }

    /// The latest incidents, oldest first.
    pub fn incidents(&mut self, limit: u32) -> Result<Vec<Incident>, StoreError> {
        self.store.begin_read()?.incidents(limit)
    }

    /// The running ledger totals (debits, credits).
    pub fn ledger_totals(&mut self) -> Result<Posted, StoreError> {
        self.store.begin_read()?.ledger_totals()
    }

    /// Transfers after a ledger position.
    pub fn transfers(
        &mut self,
        after: u64,
        limit: u32,
    ) -> Result<Vec<crate::model::Transfer>, StoreError> {
        self.store.begin_read()?.transfers(after, limit)
    }

    /// Recomputes every total from the transfers and checks conservation per
    /// municipality (DESIGN §11.1). Reads the whole ledger: for tests,
    /// simulations and `mykey-hub ledger check`, not for every request.
    pub fn check_conservation(&mut self) -> Result<ledger::ConservationReport, CheckError> {
        let audit = self.store.begin_read()?.ledger_audit()?;
        Ok(ledger::check_conservation(audit)?)
    }

    /// Posts an operator's correcting transfer. Transfers are never edited:
    /// a mistake is undone by a new transfer the other way.
    pub fn post_correction(
        &mut self,
        debit: LedgerAccount,
        credit: LedgerAccount,
        amount: Points,
        now: UnixMillis,
    ) -> Result<u64, StoreError> {
        let mut st = self.store.begin()?;
        let pos = st.post(
            &TransferDraft {
                debit,
                credit,
                amount,
                kind: TransferKind::Correction,
                origin_tx: None,
                node_time: None,
            },
            now,
        )?;
        ledger::commit(st)?;
        Ok(pos)
    }
}

fn fund(
    st: &mut dyn StoreTx,
    id: &ProgramId,
    m: MunicipalityCode,
    points: Points,
    now: UnixMillis,
) -> Result<(), StoreError> {
    if points.is_zero() {
        return Ok(());
    }
    st.post(
        &TransferDraft {
            debit: LedgerAccount::MunicipalityFunding(m),
            credit: LedgerAccount::ProgramBudget(id.clone(), m),
            amount: points,
            kind: TransferKind::Funding,
            origin_tx: None,
            node_time: None,
        },
        now,
    )?;
    Ok(())
}

/// The registered card `card` names, however its serial's leading zero
/// bytes were written (openssl prints none, a certificate one before a high
/// byte): one card is one key, never a second account.
fn card_spelled_any_way(
    st: &mut dyn StoreTx,
    card: &CardKey,
) -> Result<Option<CardRecord>, StoreError> {
    for k in card.spellings() {
        if let Some(c) = st.card(&k)? {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

/// Helper for CLIs and tests: a facility record.
pub fn facility(
    id: FacilityId,
    municipality: MunicipalityCode,
    kind: FacilityKind,
    name: &str,
) -> Facility {
    Facility {
        id,
        municipality,
        kind,
        name: name.to_owned(),
    }
}
