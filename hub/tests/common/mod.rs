//! A hub in a temp dir with one municipality, a shop, a library and a
//! community centre, a node at each, two holders and a funded programme;
//! node chains that sign transactions the way a node does; and helpers that
//! run the real `mykey-hub` binary on a data directory or serve its HTTP
//! app on 127.0.0.1.
#![allow(dead_code, missing_docs)]

pub mod pki;

use ed25519_dalek::SigningKey;
pub use mykey_hub::access::{Role, Scope};
use mykey_hub::economy::exchange::{
    ExchangeOperator, ExchangeReceipt, ExchangeRequest, OperatorId, Rate, SignedExchange,
};
use mykey_hub::economy::liability::{BaseDateFigures, LiabilityReport, MunicipalityLiability};
use mykey_hub::economy::lots::ExpiryPolicy;
use mykey_hub::store::postgres::DatabaseUrl;
use mykey_hub::store::postgres::scratch::ScratchDatabase;
use mykey_hub::{FacilityKind, Hub, NodePolicy, admin::facility};
use mykey_sync_proto::wire::{Outcome, Receipts, RejectReason};
use mykey_sync_proto::{
    AccountId, CardKey, FacilityCardLink, FacilityCardNumber, FacilityId, Grant, MunicipalityCode,
    MyKeyId, NodeId, OpKind, Points, ProgramId, Redeem, SignedTx, TxBody, TxId, TxPayload,
    UnixMillis,
};
use std::process::{Command, Output};

pub const T0: UnixMillis = UnixMillis(1_750_000_000_000);

pub fn muni() -> MunicipalityCode {
    MunicipalityCode::parse("131059").unwrap()
}
pub fn other_muni() -> MunicipalityCode {
    MunicipalityCode::parse("131016").unwrap()
}
pub fn fid(s: &str) -> FacilityId {
    FacilityId::parse(s).unwrap()
}
pub fn pts(n: u64) -> Points {
    Points::new(n).unwrap()
}
pub fn card(n: u8) -> CardKey {
    CardKey::new(vec![0x30, 0x0b, n], vec![n, 0x42]).unwrap()
}
pub fn program() -> ProgramId {
    ProgramId::parse("volunteer").unwrap()
}

/// A node's signing chain.
pub struct Chain {
    pub key: SigningKey,
    pub id: NodeId,
    pub seq: u64,
    pub prev: TxId,
}

impl Chain {
    pub fn new(seed: u8) -> Chain {
        let key = SigningKey::from_bytes(&[seed; 32]);
        let id = NodeId::from_bytes(key.verifying_key().to_bytes()).unwrap();
        Chain {
            key,
            id,
            seq: 0,
            prev: TxId::GENESIS,
        }
    }

    /// Signs the next transaction of the chain.
    pub fn sign(&mut self, body: TxBody) -> SignedTx {
        let node_time = T0.plus_ms(self.seq + 1);
        self.sign_dated(body, node_time)
    }

    /// Signs the next transaction of the chain with the node's clock at `node_time`.
    pub fn sign_dated(&mut self, body: TxBody, node_time: UnixMillis) -> SignedTx {
        self.seq += 1;
        let tx = SignedTx::sign(
            &TxPayload {
                node: self.id,
                seq: self.seq,
                prev_hash: self.prev,
                created_at: node_time,
                body,
            },
            &self.key,
        );
        self.prev = tx.id();
        tx
    }

    /// Signs a transaction at an arbitrary position without moving the chain.
    pub fn sign_at(&self, seq: u64, prev: TxId, body: TxBody) -> SignedTx {
        SignedTx::sign(
            &TxPayload {
                node: self.id,
                seq,
                prev_hash: prev,
                created_at: T0,
                body,
            },
            &self.key,
        )
    }
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub hub: Hub,
    pub shop: Chain,
    pub library: Chain,
    pub centre: Chain,
    pub alice: AccountId,
    pub bob: AccountId,
    /// The hub's PostgreSQL database when `MYKEY_PG_URL` chose that backend
    /// (declared last: dropped after the hub closes its connection).
    pub _db: Option<ScratchDatabase>,
}

/// The one place hub tests choose their backend: a fresh PostgreSQL database
/// of its own on the server `MYKEY_PG_URL` names when it is set, else SQLite
/// in the data directory (the default).
pub fn init_hub(data: &std::path::Path) -> (Hub, Option<ScratchDatabase>) {
    match pg_server() {
        None => (Hub::init(data).unwrap(), None),
        Some(server) => {
            let db = ScratchDatabase::create(&server).unwrap();
            (Hub::init_with(data, Some(db.url())).unwrap(), Some(db))
        }
    }
}

/// The PostgreSQL server the hub tests run against, if any.
pub fn pg_server() -> Option<DatabaseUrl> {
    let url = std::env::var("MYKEY_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())?;
    Some(DatabaseUrl::parse(&url).expect("MYKEY_PG_URL is a postgres:// URL"))
}

/// Whether the hub tests run on PostgreSQL (tests about the SQLite file
/// itself make their own SQLite hub).
pub fn on_postgres() -> bool {
    pg_server().is_some()
}

pub fn policy(ops: &[OpKind]) -> NodePolicy {
    NodePolicy {
        allowed_ops: ops.to_vec(),
        per_card_offline_limit: pts(3000),
        node_exposure_limit: pts(50_000),
        offline_voucher_cap: pts(50_000),
        pin_threshold: pts(1000),
        valid_until: T0.plus_ms(10 * 365 * 86_400_000),
    }
}

impl Fixture {
    /// For tests of the economy rather than of the bounds: the shop is
    /// re-enrolled with bounds no spend of theirs reaches (no PIN proof
    /// needed, no per-card or exposure cap), so its redeems are paid as the
    /// ledger decides (hub/tests/bounds.rs tests the bounds).
    pub fn unbounded_shop(&mut self) {
        let max = Points::new(Points::MAX).unwrap();
        self.hub
            .enrol_node(
                self.shop.id,
                &fid("shop-1"),
                NodePolicy {
                    per_card_offline_limit: max,
                    node_exposure_limit: max,
                    offline_voucher_cap: max,
                    pin_threshold: max,
                    ..policy(&[OpKind::Redeem])
                },
                T0,
            )
            .unwrap();
    }
}

impl Fixture {
    /// Adds the admin operator `ops` and returns an admin-scope bearer
    /// token for the API (no expiry).
    pub fn api_token(&mut self) -> String {
        self.token_for("ops", Role::Admin, Scope::Admin)
    }

    /// Adds (or updates) operator `name` with `role` (password
    /// `correct horse battery`) and returns a bearer token with `scope`.
    pub fn token_for(&mut self, name: &str, role: Role, scope: Scope) -> String {
        self.hub
            .set_operator(name, "correct horse battery", role, T0)
            .unwrap();
        self.hub.new_api_token(name, scope, None, T0).unwrap().token
    }

    /// The fixture on the backend the tests run on ([`init_hub`]).
    pub fn new() -> Fixture {
        Fixture::on(init_hub)
    }

    /// The fixture on SQLite whatever `MYKEY_PG_URL` says: for tests that
    /// open the SQLite file itself.
    pub fn sqlite() -> Fixture {
        Fixture::on(|data| (Hub::init(data).unwrap(), None))
    }

    fn on(init: impl FnOnce(&std::path::Path) -> (Hub, Option<ScratchDatabase>)) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let (mut hub, db) = init(&dir.path().join("hub"));
        hub.add_municipality(muni(), "Bunkyo", T0).unwrap();
        hub.add_municipality(other_muni(), "Chiyoda", T0).unwrap();
        for (id, kind, m) in [
            ("shop-1", FacilityKind::Shop, muni()),
            ("lib-1", FacilityKind::Library, muni()),
            ("cc-1", FacilityKind::CommunityCentre, muni()),
            ("lib-2", FacilityKind::Library, muni()),
            ("shop-9", FacilityKind::Shop, other_muni()),
        ] {
            hub.add_facility(&facility(fid(id), m, kind, id), T0)
                .unwrap();
        }
        let shop = Chain::new(11);
        let library = Chain::new(12);
        let centre = Chain::new(13);
        hub.enrol_node(shop.id, &fid("shop-1"), policy(&[OpKind::Redeem]), T0)
            .unwrap();
        hub.enrol_node(
            library.id,
            &fid("lib-1"),
            policy(&[OpKind::Link, OpKind::Unlink]),
            T0,
        )
        .unwrap();
        hub.enrol_node(centre.id, &fid("cc-1"), policy(&[OpKind::Grant]), T0)
            .unwrap();
        let alice = hub
            .register_account(&MyKeyId::parse("Alice01").unwrap(), muni(), &card(1), T0)
            .unwrap();
        let bob = hub
            .register_account(&MyKeyId::parse("Bob02").unwrap(), muni(), &card(2), T0)
            .unwrap();
        hub.create_program(&program(), muni(), pts(100_000), T0)
            .unwrap();
        Fixture {
            dir,
            hub,
            shop,
            library,
            centre,
            alice,
            bob,
            _db: db,
        }
    }

    /// Runs `sql` on the hub's database behind the hub's back, on either
    /// backend (tests of what the schema refuses); the error as text.
    pub fn raw_execute(&self, sql: &str) -> Result<u64, String> {
        match &self._db {
            Some(db) => postgres::Client::connect(db.url().expose(), postgres::NoTls)
                .and_then(|mut c| c.execute(sql, &[]))
                .map_err(|e| format!("{e:?}")),
            None => rusqlite::Connection::open(self.db_path())
                .and_then(|c| c.execute(sql, []))
                .map(|n| n as u64)
                .map_err(|e| e.to_string()),
        }
    }

    /// The text in the first column of the first row `sql` returns.
    pub fn raw_text(&self, sql: &str) -> String {
        match &self._db {
            Some(db) => {
                let mut c = postgres::Client::connect(db.url().expose(), postgres::NoTls).unwrap();
                c.query_one(sql, &[]).unwrap().get(0)
            }
            None => rusqlite::Connection::open(self.db_path())
                .unwrap()
                .query_row(sql, [], |r| r.get(0))
                .unwrap(),
        }
    }

    pub fn db_path(&self) -> std::path::PathBuf {
        self.dir.path().join("hub").join("hub.db")
    }

    /// The shop's node spends `n` of `who`'s points (card `card_n`), signed
    /// at `node_time` and reaching the hub at `now`; the hub must accept it.
    pub fn spend(
        &mut self,
        who: AccountId,
        card_n: u8,
        n: u64,
        node_time: UnixMillis,
        now: UnixMillis,
    ) {
        let tx = self.shop.sign_dated(redeem(who, card_n, n), node_time);
        let shop = self.shop.id;
        let r = mykey_sync_proto::session::HubService::ingest(&mut self.hub, &shop, vec![tx], now);
        assert!(
            matches!(outcomes(&r)[..], [Outcome::Accepted { .. }]),
            "{r:?}"
        );
    }
}

/// Card X, a national point operator for exchange tests, and its signing key.
pub fn card_x() -> OperatorId {
    OperatorId::parse("card-x").unwrap()
}
pub fn card_x_key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

/// Enrols (or updates) Card X: rate 1/2, `holding_days`, `expiry`.
pub fn enrol_card_x(hub: &mut Hub, holding_days: u32, expiry: ExpiryPolicy, now: UnixMillis) {
    hub.upsert_exchange_operator(
        &ExchangeOperator {
            id: card_x(),
            name: "Card X".into(),
            public_key: card_x_key().verifying_key().to_bytes(),
            rate: Rate::new(1, 2).unwrap(),
            holding_days,
            expiry,
        },
        now,
    )
    .unwrap();
    // Allowed to credit the fixture's municipality, with room for any test.
    hub.allow_exchange(&card_x(), muni(), pts(1_000_000_000_000), now)
        .unwrap();
}

/// Card X's signed exchange of `operator_points` for `who` (a My Key ID)
/// at `now`, applied.
pub fn card_x_exchange(
    hub: &mut Hub,
    id: &str,
    who: &str,
    operator_points: u64,
    now: UnixMillis,
) -> ExchangeReceipt {
    let signed = SignedExchange::sign(
        &card_x(),
        &ExchangeRequest {
            request_id: id.into(),
            my_key_id: who.into(),
            operator_points,
            municipality: None,
            requested_at: now.0,
            donate_to: None,
        },
        &card_x_key(),
    );
    hub.exchange(&signed, now).unwrap()
}

/// The fixture municipality's figures in a liability report.
pub fn bunkyo(r: &LiabilityReport) -> &MunicipalityLiability {
    r.municipalities
        .iter()
        .find(|m| m.municipality == muni())
        .unwrap()
}

/// (source, unused, held, expired not posted, deposit share) per source of
/// a base date's figures.
pub fn base_date_rows(b: &BaseDateFigures) -> Vec<(String, u64, u64, u64, u64)> {
    b.by_source
        .iter()
        .map(|s| {
            (
                s.source.to_string(),
                s.unused_points,
                s.held_points,
                s.expired_not_posted_points,
                s.deposit_share_yen,
            )
        })
        .collect()
}

pub fn redeem(account: AccountId, card_n: u8, points: u64) -> TxBody {
    TxBody::Redeem(Redeem {
        card: card(card_n),
        account,
        municipality: muni(),
        points: pts(points),
        merchant: fid("shop-1"),
        basis: None,
        card_proof: None,
    })
}

pub fn grant(account: AccountId, card_n: u8, points: u64) -> TxBody {
    TxBody::Grant(Grant {
        card: card(card_n),
        account,
        municipality: muni(),
        program: program(),
        points: pts(points),
    })
}

pub fn link(account: AccountId, facility: &str, number: &str) -> TxBody {
    TxBody::LinkFacilityCard(FacilityCardLink {
        account,
        facility: fid(facility),
        number: FacilityCardNumber::parse(number).unwrap(),
    })
}

pub fn unlink(account: AccountId, facility: &str, number: &str) -> TxBody {
    TxBody::UnlinkFacilityCard(FacilityCardLink {
        account,
        facility: fid(facility),
        number: FacilityCardNumber::parse(number).unwrap(),
    })
}

pub fn outcomes(r: &Receipts) -> Vec<Outcome> {
    r.receipts.iter().map(|r| r.outcome.clone()).collect()
}

pub fn rejection(o: &Outcome) -> Option<&RejectReason> {
    match o {
        Outcome::Rejected(r) => Some(r),
        Outcome::Accepted { .. } => None,
    }
}

/// Everything an ingest could change, to compare before and after.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub totals: mykey_hub::Posted,
    pub n_transfers: usize,
    pub heads: Vec<(NodeId, mykey_hub::ChainHead)>,
    pub debts: Vec<mykey_hub::DebtLine>,
    pub last_fact: u64,
}

pub fn snapshot(hub: &mut Hub, nodes: &[NodeId]) -> Snapshot {
    Snapshot {
        totals: hub.ledger_totals().unwrap(),
        n_transfers: hub.transfers(0, u32::MAX).unwrap().len(),
        heads: nodes
            .iter()
            .map(|n| (*n, hub.chain_head(n).unwrap()))
            .collect(),
        debts: hub.debts().unwrap(),
        last_fact: hub.facts_for(&nodes[0], 0, 2000, u64::MAX).unwrap().cursor,
    }
}

// ---- the real `mykey-hub` binary ---------------------------------------

pub fn hub(data: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mykey-hub"))
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run mykey-hub")
}

pub fn ok(data: &std::path::Path, args: &[&str]) -> String {
    let out = hub(data, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn fails(data: &std::path::Path, args: &[&str]) -> String {
    let out = hub(data, args);
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

/// Serves the fixture's hub over HTTP on 127.0.0.1 as `mykey-hub serve`
/// builds the app (dashboard, API, economy routes) and serves it (the real
/// server, with its limits); returns the address.
pub fn serve(f: &Fixture) -> std::net::SocketAddr {
    serve_with(f, Default::default(), Default::default(), None)
}

/// [`serve`] with other settings, limits, and TLS.
pub fn serve_with(
    f: &Fixture,
    config: mykey_hub::http::AppConfig,
    limits: mykey_hub::http::server::HttpLimits,
    tls: Option<mykey_hub::http::server::TlsFiles>,
) -> std::net::SocketAddr {
    use mykey_hub::http::{AppConfig, AppState, Door};
    use mykey_hub::status::assess::Thresholds;
    // As `serve` does: the dashboard's hub sees what the fixture's hub observed.
    let hub = Hub::open(&f.dir.path().join("hub"))
        .unwrap()
        .observing(f.hub.observed().clone());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let acceptor = tls
                .as_ref()
                .map(|t| mykey_hub::http::server::tls_acceptor(t).unwrap());
            let config = AppConfig {
                tls: acceptor.is_some(),
                ..config
            };
            let state = AppState::with_config(hub, Thresholds::default(), config);
            let app = mykey_hub::http::app(state.clone(), mykey_hub::economy::http::admin_routes())
                .merge(mykey_hub::economy::http::router(state));
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            Door::new(l, acceptor, limits).serve(app).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

/// One HTTP/1.1 request with `headers` and a JSON `body`: (status, body).
pub fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    req += "\r\n";
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The bearer header for an API token.
pub fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("Authorization", format!("Bearer {token}"))]
}

/// A Zengin bank account for tests.
pub fn account(
    bank: &str,
    branch: &str,
    number: u32,
    holder: &str,
) -> mykey_hub::economy::zengin::BankAccount {
    use mykey_hub::economy::zengin::{AccountKind, BankAccount, BankCode, BranchCode};
    BankAccount {
        bank: BankCode::parse(bank).unwrap(),
        branch: BranchCode::parse(branch).unwrap(),
        kind: AccountKind::Ordinary,
        number,
        holder: holder.into(),
    }
}

/// Bank accounts for the settlement agent, the fixture's shop-1 and
/// Bunkyo-ku, so a settlement run has every payee it needs.
pub fn register_payees(hub: &mut mykey_hub::Hub) {
    use mykey_hub::economy::zengin::BuiltinBanks;
    use mykey_hub::store::economy::Party;
    let payees = [
        (
            Party::Agent,
            account("0009", "001", 1_234_567, "ｾｲｻﾝﾀﾞｲｺｳ"),
            1_234_567_890,
        ),
        (
            Party::Merchant(mykey_sync_proto::FacilityId::parse("shop-1").unwrap()),
            account("0001", "004", 7_654_321, "ﾌﾞﾝｷﾖｳｼﾖｳﾃﾝ"),
            1,
        ),
        (
            Party::Municipality(muni()),
            account("0005", "001", 111, "ﾌﾞﾝｷﾖｳｸ"),
            131_059,
        ),
    ];
    for (party, acct, code) in payees {
        hub.set_payee(&party, &acct, code, &BuiltinBanks).unwrap();
    }
}
