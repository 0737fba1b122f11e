//! Holder orders signed at the kiosk while the hub was away (issue 19): the
//! card's signed order waits in `<data>/kiosk-orders/`, one file each, and
//! is sent when the node's link returns, then removed once the hub looked
//! at it (done or refused: a refused order is never retried, and sending
//! one twice changes nothing at the hub). An answer that the hub could not
//! look at it (`Unavailable`, `NotServed`) keeps it waiting, as offline.
//!
//! A file holds only the signed request as it will travel (the card key,
//! the ID asked for, the card's signature and, for a registration, its
//! public certificate): no PIN, no history. It is written whole (a
//! temporary file renamed), so a card pulled or a crash leaves either the
//! whole order or none.

use std::path::{Path, PathBuf};

use mykey_sync_proto::codec;
use mykey_sync_proto::holder::{HolderRefusal, HolderRequest, HolderResponse};
use mykey_sync_proto::wire::MAX_MESSAGE_BYTES;
use sha2::Digest as _;

use crate::config::DataDir;
use crate::http::client::HolderCallError;

/// Orders waiting at most (a kiosk offline for days keeps taking them
/// until this many wait; then it says it cannot).
pub const MAX_QUEUED: usize = 1000;

/// Why an order could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Too many orders wait already.
    #[error(
        "{MAX_QUEUED} holder orders wait for the hub already: bring the node's link back first"
    )]
    Full,
    /// The directory or file could not be written.
    #[error("cannot write the holder order queue in {path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// What one pass over the queue did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// Orders the hub carried out.
    pub done: usize,
    /// Orders the hub refused (removed too).
    pub refused: usize,
    /// Orders still waiting.
    pub waiting: usize,
}

/// The queue of one data directory.
#[derive(Clone, Debug)]
pub struct OrderQueue {
    dir: PathBuf,
}

impl OrderQueue {
    /// The queue in `data`.
    pub fn of(data: &DataDir) -> OrderQueue {
        OrderQueue {
            dir: data.root().join("kiosk-orders"),
        }
    }

    /// Where the orders wait.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Keeps `req` until [`OrderQueue::drain`] delivers it.
    pub fn put(&self, req: &HolderRequest) -> Result<(), QueueError> {
        let io = |source| QueueError::Io {
            path: self.dir.clone(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        if self.files().len() >= MAX_QUEUED {
            return Err(QueueError::Full);
        }
        let bytes = codec::encode(req);
        let digest: [u8; 32] = sha2::Sha256::digest(&bytes).into();
        let name = hex::encode(&digest[..12]);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let path = self.dir.join(format!("{name}.order"));
        {
            use std::io::Write as _;
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(&bytes).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &path).map_err(io)?;
        Ok(())
    }

    /// Orders waiting.
    pub fn len(&self) -> usize {
        self.files().len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn files(&self) -> Vec<PathBuf> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return vec![];
        };
        let mut v: Vec<PathBuf> = rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "order"))
            .collect();
        v.sort();
        v
    }

    /// Sends each waiting order with `send`; removes those the hub
    /// answered. Stops at the first that finds the hub away.
    pub fn drain(
        &self,
        mut send: impl FnMut(&HolderRequest) -> Result<HolderResponse, HolderCallError>,
    ) -> Drained {
        let mut out = Drained::default();
        let files = self.files();
        for (i, path) in files.iter().enumerate() {
            let req = std::fs::read(path).ok().and_then(|b| {
                codec::decode_canonical::<HolderRequest>("holder order", &b, MAX_MESSAGE_BYTES).ok()
            });
            let Some(req) = req else {
                tracing::warn!(file = %path.display(), "an unreadable holder order was removed");
                let _ = std::fs::remove_file(path);
                continue;
            };
            match send(&req) {
                // The hub could not look at it (its store unreadable, or
                // holder requests not served now): the order keeps its
                // place and the pass ends, as when the hub is away.
                Ok(HolderResponse::Refused(
                    HolderRefusal::Unavailable | HolderRefusal::NotServed,
                ))
                | Err(_) => {
                    out.waiting = files.len() - i;
                    return out;
                }
                Ok(HolderResponse::Done(_)) => {
                    tracing::info!("a queued holder order was carried out by the hub");
                    out.done += 1;
                }
                Ok(HolderResponse::Refused(r)) => {
                    tracing::warn!(reason = %r, "a queued holder order was refused by the hub");
                    out.refused += 1;
                }
                Ok(_) => {
                    tracing::warn!("the hub answered a queued holder order with something else");
                    out.refused += 1;
                }
            }
            let _ = std::fs::remove_file(path);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mykey_sync_proto::holder::{HolderAction, HolderDone, HolderOrder};
    use mykey_sync_proto::{AccountId, CardKey, CardSignature, MyKeyId, NodeId, UnixMillis};

    fn req(n: u8) -> HolderRequest {
        HolderRequest::Order {
            order: HolderOrder {
                node: NodeId::from_bytes(
                    ed25519_dalek::SigningKey::from_bytes(&[1; 32])
                        .verifying_key()
                        .to_bytes(),
                )
                .unwrap(),
                card: CardKey::new(vec![0x30, 1], vec![n]).unwrap(),
                signed_at: UnixMillis(1),
                nonce: [n; 16],
                action: HolderAction::Register {
                    my_key_id: MyKeyId::parse("Hana7").unwrap(),
                },
            },
            proof: CardSignature::new(vec![n; 256]).unwrap(),
            certificate: Some(vec![1, 2, 3]),
        }
    }

    #[test]
    fn orders_wait_whole_until_the_hub_answers() {
        let dir = tempfile::tempdir().unwrap();
        let q = OrderQueue::of(&DataDir::new(dir.path()));
        q.put(&req(1)).unwrap();
        q.put(&req(2)).unwrap();
        assert_eq!(q.len(), 2);
        // Offline: nothing leaves.
        let d = q.drain(|_| Err(HolderCallError::Offline));
        assert_eq!((d.done, d.waiting), (0, 2));
        assert_eq!(q.len(), 2);
        // The hub could not look at them: they wait too.
        for busy in [HolderRefusal::Unavailable, HolderRefusal::NotServed] {
            let d = q.drain(|_| Ok(HolderResponse::Refused(busy.clone())));
            assert_eq!((d.done, d.refused, d.waiting), (0, 0, 2));
            assert_eq!(q.len(), 2);
        }
        let mut seen = vec![];
        let d = q.drain(|r| {
            seen.push(r.clone());
            Ok(if seen.len() == 1 {
                HolderResponse::Done(HolderDone::Registered {
                    account: AccountId::new(2).unwrap(),
                    my_key_id: MyKeyId::parse("Hana7").unwrap(),
                    municipality: mykey_sync_proto::MunicipalityCode::parse("131059").unwrap(),
                })
            } else {
                HolderResponse::Refused(HolderRefusal::MyKeyIdTaken)
            })
        });
        assert_eq!(
            d,
            Drained {
                done: 1,
                refused: 1,
                waiting: 0
            }
        );
        assert!(seen.contains(&req(1)) && seen.contains(&req(2)));
        assert!(q.is_empty());
        // No temporary file is left behind either.
        assert_eq!(std::fs::read_dir(q.path()).unwrap().count(), 0);
    }
}
