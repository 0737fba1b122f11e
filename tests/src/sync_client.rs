//! A bare `/mykey/sync/1` client over real libp2p, for tests and benchmarks
//! that play nodes against a running `mykey-hub serve`: it sends whatever
//! requests it is given (several at once if asked) and hands back the hub's
//! answers, with none of a node's own logic. [`Signer`] signs the
//! transactions of one node's chain.

use ed25519_dalek::SigningKey;
use futures::StreamExt;
use libp2p::Multiaddr;
use libp2p::request_response::{Event, Message, OutboundRequestId};
use libp2p::swarm::SwarmEvent;
use libp2p::swarm::dial_opts::DialOpts;
use mykey_net::{Behaviour, BehaviourEvent, Frame, LinkTiming};
use mykey_sync_proto::wire::{Request, Response};
use mykey_sync_proto::{
    AccountId, CardKey, FacilityId, MunicipalityCode, NodeId, Points, Redeem, SignedTx, TxBody,
    TxId, TxPayload, UnixMillis,
};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

type Answer = Result<Response, String>;

/// A connected client; its swarm runs on a task of the current runtime.
#[derive(Debug, Clone)]
pub struct SyncClient {
    asks: mpsc::UnboundedSender<(Frame, oneshot::Sender<Answer>)>,
}

/// Why a client could not connect.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The hub address is not `/ip4/…/tcp/…/p2p/…`.
    #[error("hub address {0:?} is not a multiaddr ending in /p2p/<peer id>")]
    Address(String),
    /// The swarm could not be built.
    #[error(transparent)]
    Swarm(#[from] mykey_net::SwarmError),
    /// The dial failed or timed out.
    #[error("could not connect to the hub: {0}")]
    Dial(String),
}

impl SyncClient {
    /// Connects with `key` to the hub at `hub_addr` (with its `/p2p/` part)
    /// and returns once the connection is up.
    pub async fn connect(key: &SigningKey, hub_addr: &str) -> Result<SyncClient, ConnectError> {
        let mut addr: Multiaddr = hub_addr
            .parse()
            .map_err(|_| ConnectError::Address(hub_addr.to_owned()))?;
        let hub = match addr.pop() {
            Some(libp2p::multiaddr::Protocol::P2p(p)) => p,
            _ => return Err(ConnectError::Address(hub_addr.to_owned())),
        };
        let timing = LinkTiming::default();
        let mut swarm = mykey_net::build_swarm(key, &timing, |k| {
            Ok(Behaviour::new(k, "mykey-sync-client", &timing))
        })?;
        swarm
            .dial(DialOpts::peer_id(hub).addresses(vec![addr]).build())
            .map_err(|e| ConnectError::Dial(e.to_string()))?;
        let up = async {
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == hub => {
                        return Ok(());
                    }
                    SwarmEvent::OutgoingConnectionError { error, .. } => {
                        return Err(ConnectError::Dial(error.to_string()));
                    }
                    _ => {}
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), up)
            .await
            .map_err(|_| ConnectError::Dial("no connection within 30 s".into()))??;
        let (asks, mut rx) = mpsc::unbounded_channel::<(Frame, oneshot::Sender<Answer>)>();
        tokio::spawn(async move {
            let mut waiting: HashMap<OutboundRequestId, oneshot::Sender<Answer>> = HashMap::new();
            loop {
                tokio::select! {
                    ask = rx.recv() => match ask {
                        Some((frame, reply)) => {
                            let id = swarm.behaviour_mut().sync.send_request(&hub, frame);
                            waiting.insert(id, reply);
                        }
                        None => return,
                    },
                    ev = swarm.select_next_some() => match ev {
                        SwarmEvent::Behaviour(BehaviourEvent::Sync(Event::Message {
                            message: Message::Response { request_id, response },
                            ..
                        })) => {
                            if let Some(reply) = waiting.remove(&request_id) {
                                let answer = response
                                    .into_message()
                                    .and_then(|b| Response::decode(&b).map_err(|e| e.to_string()));
                                let _ = reply.send(answer);
                            }
                        }
                        SwarmEvent::Behaviour(BehaviourEvent::Sync(Event::OutboundFailure {
                            request_id, error, ..
                        })) => {
                            if let Some(reply) = waiting.remove(&request_id) {
                                let _ = reply.send(Err(error.to_string()));
                            }
                        }
                        SwarmEvent::ConnectionClosed { num_established: 0, .. } => {
                            for (_, reply) in waiting.drain() {
                                let _ = reply.send(Err("connection closed".into()));
                            }
                        }
                        _ => {}
                    },
                }
            }
        });
        Ok(SyncClient { asks })
    }

    /// Sends `req` and waits for the answer.
    pub async fn ask(&self, req: &Request) -> Answer {
        self.ask_frame(Frame::Message(req.encode())).await
    }

    /// Sends a raw frame and waits for the answer.
    pub async fn ask_frame(&self, frame: Frame) -> Answer {
        let (tx, rx) = oneshot::channel();
        self.asks
            .send((frame, tx))
            .map_err(|_| "the client stopped".to_owned())?;
        rx.await.map_err(|_| "the client stopped".to_owned())?
    }
}

/// Signs one node's chain of transactions.
#[derive(Debug)]
pub struct Signer {
    key: SigningKey,
    /// The node.
    pub node: NodeId,
    /// The last seq signed.
    pub seq: u64,
    prev: TxId,
}

impl Signer {
    /// A fresh chain of `key` (nothing signed yet).
    pub fn new(key: SigningKey) -> Signer {
        let node = NodeId::from_bytes(key.verifying_key().to_bytes())
            .expect("an ed25519 key is a node id");
        Signer {
            key,
            node,
            seq: 0,
            prev: TxId::GENESIS,
        }
    }

    /// The next transaction of the chain.
    pub fn sign(&mut self, body: TxBody, at: UnixMillis) -> SignedTx {
        self.seq += 1;
        let tx = SignedTx::sign(
            &TxPayload {
                node: self.node,
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

/// A redeem of `points` by `card` (of `account`) at `merchant`, without PIN
/// or basis (the hub bounds it by the node's offline limits).
pub fn redeem(
    card: &CardKey,
    account: AccountId,
    municipality: MunicipalityCode,
    points: u64,
    merchant: &FacilityId,
) -> TxBody {
    TxBody::Redeem(Redeem {
        card: card.clone(),
        account,
        municipality,
        points: Points::new(points).expect("points in range"),
        merchant: merchant.clone(),
        basis: None,
        card_proof: None,
    })
}
