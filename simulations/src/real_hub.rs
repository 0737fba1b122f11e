//! The real hub core (`mykey_hub::Hub`) behind [`HubCore`]: its SQLite
//! store on a file in the run's temporary directory, so a hub crash drops
//! the process state and reopens what was committed.

use crate::hub_host::{HubCore, SimLimits, SimTransfer, SiteKind};
use anyhow::Context;
use mykey_hub::economy::lots::ExpiryPolicy;
use mykey_hub::model::{FacilityKind, NodePolicy};
use mykey_hub::model::{LedgerAccount, TransferKind};
use mykey_hub::store::SqliteStore;
use mykey_hub::ticks::{Due, TickReport};
use mykey_hub::{CheckError, Hub, HubKey};
use mykey_jpki::TrustedCert;
use mykey_sync_proto::session::HubService;
use mykey_sync_proto::wire::{Facts, Hello, Receipts, Refusal, ShardList, ShardSync, Welcome};
use mykey_sync_proto::{
    AccountId, CardKey, CardStatus, FacilityCardNumber, FacilityId, MunicipalityCode, MyKeyId,
    NodeId, Points, ProgramId, SignedTx, TxId, UnixMillis,
};
use std::path::{Path, PathBuf};

/// The hub core with the file it lives on.
pub struct RealHub {
    hub: Hub,
    db: PathBuf,
    secret: [u8; 32],
    shard_target: Option<u64>,
}

fn open(db: &Path, secret: &[u8; 32]) -> anyhow::Result<Hub> {
    let store = SqliteStore::open(db).context("open hub store")?;
    let mut hub = Hub::with_store(Box::new(store), HubKey::from_secret_bytes(secret));
    // Results do not depend on it; the seeds already use every core.
    hub.set_threads(1);
    Ok(hub)
}

impl RealHub {
    /// A hub on `dir/hub.db` with the key from `secret`.
    pub fn create(dir: &Path, secret: [u8; 32]) -> anyhow::Result<RealHub> {
        let db = dir.join("hub.db");
        Ok(RealHub {
            hub: open(&db, &secret)?,
            db,
            secret,
            shard_target: None,
        })
    }
}

impl HubService for RealHub {
    fn open(&mut self, hello: &Hello, now: UnixMillis) -> Result<Welcome, Refusal> {
        self.hub.open(hello, now)
    }
    fn ingest(&mut self, carrier: &NodeId, txs: Vec<SignedTx>, now: UnixMillis) -> Receipts {
        self.hub.ingest(carrier, txs, now)
    }
    fn facts(&mut self, node: &NodeId, after: u64, max: u32, upto: u64) -> Facts {
        self.hub.facts(node, after, max, upto)
    }
    fn shards(&mut self, node: &NodeId) -> Result<ShardList, Refusal> {
        self.hub.shards(node)
    }
    fn shard_sync(
        &mut self,
        node: &NodeId,
        sync: ShardSync,
        now: UnixMillis,
    ) -> Result<ShardSync, Refusal> {
        self.hub.shard_sync(node, sync, now)
    }
}

impl HubCore for RealHub {
    fn hub_id(&self) -> NodeId {
        self.hub.hub_id()
    }
    fn add_municipality(&mut self, code: MunicipalityCode, now: UnixMillis) -> anyhow::Result<()> {
        Ok(self.hub.add_municipality(code, "Bunkyo", now)?)
    }
    fn add_facility(
        &mut self,
        id: &FacilityId,
        municipality: MunicipalityCode,
        kind: SiteKind,
        now: UnixMillis,
    ) -> anyhow::Result<()> {
        let kind = match kind {
            SiteKind::Library => FacilityKind::Library,
            SiteKind::CommunityCentre => FacilityKind::CommunityCentre,
            SiteKind::Shop => FacilityKind::Shop,
            SiteKind::Stall => FacilityKind::Stall,
        };
        let f = mykey_hub::admin::facility(id.clone(), municipality, kind, id.as_str());
        Ok(self.hub.add_facility(&f, now)?)
    }
    fn enrol(
        &mut self,
        node: NodeId,
        facility: &FacilityId,
        limits: &SimLimits,
        now: UnixMillis,
    ) -> anyhow::Result<()> {
        let policy = NodePolicy {
            allowed_ops: limits.allowed_ops.clone(),
            per_card_offline_limit: limits.per_card_offline_limit,
            node_exposure_limit: limits.node_exposure_limit,
            offline_voucher_cap: limits.node_exposure_limit,
            pin_threshold: limits.pin_threshold,
            valid_until: limits.valid_until,
        };
        self.hub.enrol_node(node, facility, policy, now)?;
        Ok(())
    }
    fn register(
        &mut self,
        my_key_id: &MyKeyId,
        municipality: MunicipalityCode,
        cert: &TrustedCert,
        now: UnixMillis,
    ) -> anyhow::Result<AccountId> {
        Ok(self
            .hub
            .register_account_with_certificate(my_key_id, municipality, cert, now)?)
    }
    fn add_program(
        &mut self,
        id: &ProgramId,
        municipality: MunicipalityCode,
        budget: Points,
        now: UnixMillis,
    ) -> anyhow::Result<()> {
        Ok(self.hub.create_program(id, municipality, budget, now)?)
    }
    fn credit(
        &mut self,
        account: AccountId,
        _municipality: MunicipalityCode,
        program: &ProgramId,
        points: Points,
        now: UnixMillis,
    ) -> anyhow::Result<()> {
        self.hub.admin_grant(account, program, points, now)?;
        Ok(())
    }
    fn suspend(&mut self, card: &CardKey, now: UnixMillis) -> anyhow::Result<()> {
        match self.hub.suspend_card(card, now) {
            Ok(()) => Ok(()),
            // Suspending a card that is already suspended is a no-op here.
            Err(mykey_hub::CardStatusError::WrongState { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
    fn reinstate(&mut self, card: &CardKey, now: UnixMillis) -> anyhow::Result<()> {
        match self.hub.reinstate_card(card, now) {
            Ok(()) => Ok(()),
            Err(mykey_hub::CardStatusError::WrongState { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
    fn renew(
        &mut self,
        account: AccountId,
        cert: &TrustedCert,
        now: UnixMillis,
    ) -> anyhow::Result<()> {
        Ok(self.hub.add_card_with_certificate(account, cert, now)?)
    }
    fn quarantined(&mut self) -> anyhow::Result<Vec<(TxId, NodeId, Points, String)>> {
        let all = mykey_hub::store::bounds::QuarantineFilter::default();
        Ok(self
            .hub
            .quarantined(&all)?
            .into_iter()
            .map(|q| (q.tx, q.node, q.points, q.rule))
            .collect())
    }
    fn balance(
        &mut self,
        account: AccountId,
        municipality: MunicipalityCode,
    ) -> anyhow::Result<(Points, Points)> {
        let b = self.hub.balance(account, municipality)?;
        Ok((b.balance, b.debt))
    }
    fn shard_heads(
        &mut self,
        node: &NodeId,
    ) -> anyhow::Result<Vec<(mykey_sync_proto::shard::ShardHead, Vec<[u8; 32]>)>> {
        let list = match self.hub.shard_list(node)? {
            Ok(l) => l,
            Err(r) => anyhow::bail!("the hub refused the shard list: {r}"),
        };
        let mut out = vec![];
        for h in list.shards {
            let heads = self.hub.shard_heads(&h.shard)?;
            out.push((h, heads));
        }
        Ok(out)
    }
    fn card_status(&mut self, card: &CardKey) -> anyhow::Result<Option<CardStatus>> {
        Ok(self.hub.card(card)?.map(|c| c.status))
    }
    fn processed(&mut self, node: &NodeId, seq: u64) -> anyhow::Result<Option<TxId>> {
        Ok(self.hub.processed_tx(node, seq)?.map(|p| p.id))
    }
    fn processed_seq(&mut self, node: &NodeId) -> anyhow::Result<u64> {
        Ok(self.hub.chain_head(node)?.processed_seq)
    }
    fn applications(&mut self, tx: &TxId) -> anyhow::Result<u64> {
        Ok(self.hub.tx_applications(tx)?)
    }
    fn check_conservation(&mut self) -> anyhow::Result<Result<(), String>> {
        match self.hub.check_conservation() {
            Ok(_) => Ok(Ok(())),
            Err(CheckError::Broken(e)) => Ok(Err(e.to_string())),
            Err(e) => Err(e.into()),
        }
    }
    fn total_debt(&mut self) -> anyhow::Result<Points> {
        Ok(Points::new(self.hub.total_debt()?)?)
    }
    fn crash_restart(&mut self) -> anyhow::Result<()> {
        // Dropping the hub closes its connection: whatever was not committed
        // is gone, as in a killed process.
        self.hub = open(&self.db, &self.secret)?;
        if let Some(t) = self.shard_target {
            self.hub.set_shard_target(t);
        }
        Ok(())
    }
    fn facility_numbers(
        &mut self,
        facility: &FacilityId,
        account: AccountId,
    ) -> anyhow::Result<Vec<FacilityCardNumber>> {
        Ok(self.hub.facility_numbers(facility, account)?)
    }
    fn set_strict(&mut self, m: MunicipalityCode, now: UnixMillis) -> anyhow::Result<()> {
        Ok(self.hub.set_strict_mode(m, true, now)?)
    }
    fn escrow_grant(
        &mut self,
        m: MunicipalityCode,
        nodes: &[NodeId],
        now: UnixMillis,
    ) -> anyhow::Result<u64> {
        Ok(self.hub.escrow_grant(m, nodes, None, now)?.points)
    }
    fn escrow_release(&mut self, m: MunicipalityCode, now: UnixMillis) -> anyhow::Result<u64> {
        Ok(self.hub.escrow_release(m, None, now)?.points)
    }
    fn transfers_after(&mut self, pos: u64, limit: u32) -> anyhow::Result<Vec<SimTransfer>> {
        let payable = |a: &LedgerAccount| match a {
            LedgerAccount::MerchantPayable(f, _) => Some(f.clone()),
            _ => None,
        };
        Ok(self
            .hub
            .transfers(pos, limit)?
            .into_iter()
            .map(|t| SimTransfer {
                pos: t.pos,
                amount: t.amount.get(),
                to_payable: payable(&t.credit),
                from_payable: payable(&t.debit),
                on_debt: t.kind == TransferKind::RedeemOnDebt,
                origin: t.origin_tx,
                expiry: t.kind == TransferKind::Expiry,
            })
            .collect())
    }
    fn lan_roster(
        &mut self,
        m: MunicipalityCode,
        group: &str,
        nodes: &[NodeId],
        now: UnixMillis,
    ) -> anyhow::Result<()> {
        let group = mykey_sync_proto::LanGroup::parse(group)?;
        self.hub.set_lan_roster(m, &group, nodes, now)?;
        Ok(())
    }
    fn escrows(&mut self, m: MunicipalityCode) -> anyhow::Result<Vec<(AccountId, NodeId, Points)>> {
        Ok(self
            .hub
            .escrow_status(m)?
            .into_iter()
            .map(|l| (l.account, l.node, l.points))
            .collect())
    }
    fn run_ticks(&mut self, due: Due, live: &[NodeId], now: UnixMillis) -> TickReport {
        self.hub.run_ticks(due, live, now)
    }
    fn set_program_expiry(&mut self, program: &ProgramId, days: u32) -> anyhow::Result<()> {
        Ok(self
            .hub
            .set_program_expiry(program, ExpiryPolicy::Days { days })?)
    }
    fn set_shard_target(&mut self, items_per_shard: u64) {
        self.shard_target = Some(items_per_shard);
        self.hub.set_shard_target(items_per_shard);
    }
    fn settle_now(&mut self, m: MunicipalityCode, now: UnixMillis) -> anyhow::Result<usize> {
        Ok(self.hub.close_periods_through_now(m, now)?.len())
    }
}
