//! The bridge's deciding core: pure, takes `now`, does no I/O.
//!
//! It knows the self-check machines, which of them a card was just tapped
//! for, each machine's patron session, and the live one-time tokens. For each
//! message a machine sends it decides: pass it on to the library system
//! (with the placeholder patron id replaced by the tapped card's library card
//! number, and nothing else changed), or answer it here (a refused card, no
//! tap, a login the bridge handles itself).
//!
//! It never sees a card key (only a short hash for logs) and keeps nothing
//! of what is borrowed: item ids pass through [`Bridge::from_machine`] and
//! are not stored.

use mykey_sip2::{Charset, Command, FieldId, Message, reply};
use mykey_sync_proto::{FacilityCardNumber, UnixMillis};

/// Timings and switches of the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// How long after a tap the machine may send its placeholder.
    pub tap_window_ms: u64,
    /// A patron session ends after this long without a message.
    pub session_idle_ms: u64,
    /// How long a token may be typed.
    pub token_window_ms: u64,
    /// Digits in a token.
    pub token_digits: usize,
    /// Misses before a machine's token use is locked.
    pub max_token_misses: u32,
    /// Whether tokens are in use at all (a token reader is configured).
    pub tokens: bool,
    /// Whether the bridge logs in to the library system itself (machines'
    /// logins are then answered here).
    pub own_login: bool,
}

/// How long token misses are remembered, and a lock lasts.
const TOKEN_LOCK_MS: u64 = 10 * 60 * 1000;
/// Live tokens kept at most (the oldest goes first).
const MAX_TOKENS: usize = 64;

/// A self-check machine, as the core knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineSpec {
    /// Its name.
    pub name: String,
    /// The patron id it sends for "the card just tapped", in its character set.
    pub placeholder: Vec<u8>,
    /// Its character set.
    pub charset: Charset,
    /// With the bridge's own login: the (user, password) it must log in with.
    pub login: Option<(Vec<u8>, Vec<u8>)>,
}

/// Index of a machine in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MachineId(pub usize);

/// Why a tapped card is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not registered (or not known to this node).
    Unknown,
    /// Reported lost.
    Suspended,
    /// Replaced by a renewed card.
    Replaced,
    /// The card's certificate has expired.
    Expired,
    /// Registered, but no library card of this facility is linked.
    NoLibraryCard,
    /// Registered in another municipality, with no library card of this
    /// facility linked.
    Visitor,
}

impl Refusal {
    /// What the machine shows the patron.
    pub fn screen_message(self) -> &'static str {
        match self {
            Refusal::Unknown => {
                "This card is not registered. Register a My Key ID at a municipal counter."
            }
            Refusal::Suspended => "This card is suspended. Please ask at the library counter.",
            Refusal::Replaced => {
                "This card was replaced by a renewed one. Please use the new card."
            }
            Refusal::Expired => "This card has expired. Please renew it at a municipal counter.",
            Refusal::NoLibraryCard => {
                "No library card is linked to this card. Link one at the library counter."
            }
            Refusal::Visitor => {
                "This card is registered in another municipality and has no library card here. Ask at the library counter."
            }
        }
    }
    /// A word for logs.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::Unknown => "unknown",
            Refusal::Suspended => "suspended",
            Refusal::Replaced => "replaced",
            Refusal::Expired => "expired",
            Refusal::NoLibraryCard => "no-library-card",
            Refusal::Visitor => "visitor",
        }
    }
}

/// Shown when a machine sends its placeholder with no tap before it.
pub const NO_TAP: &str = "Tap your My Number card on the reader first, then start again.";

/// What a tapped card resolved to in the node's store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// A holder with this facility's library card number.
    Patron(FacilityCardNumber),
    /// A card the bridge answers for itself.
    Refused(Refusal),
}

/// A tap: the card's short hash (for logs only) and what it resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tap {
    /// `CardKey::short()`.
    pub card: String,
    /// The resolution.
    pub holder: Holder,
}

/// What the reader side shows after a tap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TapShown {
    /// The machine may now start: its placeholder is this card for a while.
    Armed {
        /// The machine's name.
        machine: String,
    },
    /// The card is refused; the machine will say so too.
    Refused(Refusal),
    /// Type this token at any machine as the patron number.
    Token {
        /// The digits.
        digits: String,
        /// Until when it may be typed.
        until: UnixMillis,
    },
}

/// What to do with a machine's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Send this to the library system (in its character set).
    Forward(Message),
    /// Send this back to the machine (in its character set); nothing goes upstream.
    Answer(Message),
}

/// What the core did with the patron id, for the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Patron {
    /// The message names no patron, or one the bridge passed through as sent.
    AsSent,
    /// The placeholder (or a token) became the card's library card number.
    Substituted {
        /// The card's short hash.
        card: String,
    },
    /// The card was refused here.
    Refused {
        /// The card's short hash.
        card: String,
        /// Why.
        refusal: Refusal,
    },
    /// The placeholder came with no tap before it.
    NoTap,
}

#[derive(Debug, Clone)]
struct Armed {
    tap: Tap,
    at: UnixMillis,
}

#[derive(Debug, Clone)]
struct Session {
    number: FacilityCardNumber,
    card: String,
    last: UnixMillis,
}

#[derive(Debug, Clone, Default)]
struct MachineState {
    armed: Option<Armed>,
    session: Option<Session>,
    token_misses: Vec<UnixMillis>,
}

#[derive(Debug, Clone)]
struct LiveToken {
    digits: String,
    number: FacilityCardNumber,
    card: String,
    until: UnixMillis,
}

/// The deciding core of the SIP2 bridge.
#[derive(Debug)]
pub struct Bridge {
    policy: Policy,
    machines: Vec<MachineSpec>,
    state: Vec<MachineState>,
    upstream_charset: Charset,
    tokens: Vec<LiveToken>,
}

impl Bridge {
    /// A core for these machines, speaking `upstream_charset` to the library system.
    pub fn new(policy: Policy, machines: Vec<MachineSpec>, upstream_charset: Charset) -> Bridge {
        let state = vec![MachineState::default(); machines.len()];
        Bridge {
            policy,
            machines,
            state,
            upstream_charset,
            tokens: Vec::new(),
        }
    }

    /// The machines.
    pub fn machines(&self) -> &[MachineSpec] {
        &self.machines
    }

    /// A card was tapped on the reader paired with `machine`: its next
    /// placeholder within the tap window is this card. A new tap also ends
    /// the machine's current patron session (a new person stands there).
    pub fn tap(&mut self, machine: MachineId, tap: Tap, now: UnixMillis) -> TapShown {
        let Some(state) = self.state.get_mut(machine.0) else {
            return TapShown::Refused(Refusal::Unknown);
        };
        state.session = None;
        let shown = match &tap.holder {
            Holder::Patron(_) => TapShown::Armed {
                machine: self.machines[machine.0].name.clone(),
            },
            Holder::Refused(r) => TapShown::Refused(*r),
        };
        state.armed = Some(Armed { tap, at: now });
        shown
    }

    /// A card was tapped on a token reader: a refused card is told so; a
    /// patron gets `digits` (drawn by the caller from OS randomness) to type
    /// at a machine within the token window, once.
    pub fn tap_for_token(&mut self, tap: Tap, digits: String, now: UnixMillis) -> TapShown {
        let number = match tap.holder {
            Holder::Refused(r) => return TapShown::Refused(r),
            Holder::Patron(n) => n,
        };
        self.tokens.retain(|t| t.until > now && t.digits != digits);
        if self.tokens.len() >= MAX_TOKENS {
            self.tokens.remove(0);
        }
        let until = now.plus_ms(self.policy.token_window_ms);
        self.tokens.push(LiveToken {
            digits: digits.clone(),
            number,
            card: tap.card,
            until,
        });
        TapShown::Token { digits, until }
    }

    /// Decides what to do with a message from `machine`.
    pub fn from_machine(
        &mut self,
        machine: MachineId,
        msg: Message,
        now: UnixMillis,
    ) -> (Verdict, Patron) {
        let Some(spec) = self.machines.get(machine.0).cloned() else {
            let answer = reply::login_response(false);
            return (Verdict::Answer(answer), Patron::AsSent);
        };
        let date = mykey_sip2::transaction_date(now.0);
        if msg.command() == Command::Login && self.policy.own_login {
            let ok = match &spec.login {
                None => true,
                Some((user, password)) => {
                    msg.field(FieldId::LOGIN_USER) == Some(user.as_slice())
                        && msg.field(FieldId::LOGIN_PASSWORD) == Some(password.as_slice())
                }
            };
            return (Verdict::Answer(reply::login_response(ok)), Patron::AsSent);
        }
        let patron_id = match msg.field(FieldId::PATRON_ID) {
            Some(id) if msg.command().carries_patron() => id.to_vec(),
            _ => return (self.forward(&spec, msg, None), Patron::AsSent),
        };
        let state = &mut self.state[machine.0];
        if state
            .session
            .as_ref()
            .is_some_and(|s| now.since(s.last) > self.policy.session_idle_ms)
        {
            state.session = None;
        }
        if patron_id == spec.placeholder {
            let armed = state
                .armed
                .take()
                .filter(|a| now.since(a.at) <= self.policy.tap_window_ms && a.at <= now);
            if let Some(a) = armed {
                match a.tap.holder {
                    Holder::Patron(number) => {
                        state.session = Some(Session {
                            number,
                            card: a.tap.card,
                            last: now,
                        });
                    }
                    Holder::Refused(refusal) => {
                        state.session = None;
                        let text = spec.charset.encode(refusal.screen_message());
                        let patron = Patron::Refused {
                            card: a.tap.card,
                            refusal,
                        };
                        return (self.refuse(&msg, &text, &date), patron);
                    }
                }
            }
            let Some(session) = state.session.as_mut() else {
                if msg.command() == Command::EndSession
                    && let Some(done) = reply::session_ended(&msg, &date)
                {
                    return (Verdict::Answer(done), Patron::NoTap);
                }
                let text = spec.charset.encode(NO_TAP);
                return (self.refuse(&msg, &text, &date), Patron::NoTap);
            };
            session.last = now;
            let (number, card) = (session.number.clone(), session.card.clone());
            if msg.command() == Command::EndSession {
                state.session = None;
            }
            let patron = Patron::Substituted { card };
            return (self.forward(&spec, msg, Some(&number)), patron);
        }
        if let Some(token) = self.claim_token(machine, &spec, &patron_id, now) {
            let state = &mut self.state[machine.0];
            state.armed = None;
            state.session = Some(Session {
                number: token.number.clone(),
                card: token.card.clone(),
                last: now,
            });
            let patron = Patron::Substituted { card: token.card };
            return (self.forward(&spec, msg, Some(&token.number)), patron);
        }
        // A library card typed or scanned the old way: a new patron whose id
        // the library system checks itself.
        if matches!(
            msg.command(),
            Command::PatronStatus | Command::PatronInformation
        ) {
            self.state[machine.0].session = None;
        }
        (self.forward(&spec, msg, None), Patron::AsSent)
    }

    /// A response from the library system to a message of `machine`: in the
    /// machine's character set, otherwise as it came.
    pub fn from_upstream(&self, machine: MachineId, mut msg: Message) -> Message {
        if let Some(spec) = self.machines.get(machine.0) {
            let (from, to) = (self.upstream_charset, spec.charset);
            if from != to {
                msg.map_values(|_, v| from.transcode(to, v));
            }
        }
        msg
    }

    /// Ends every session and forgets every tap and token (e.g. at shutdown).
    pub fn forget_all(&mut self) {
        for s in &mut self.state {
            *s = MachineState::default();
        }
        self.tokens.clear();
    }

    fn forward(
        &self,
        spec: &MachineSpec,
        mut msg: Message,
        number: Option<&FacilityCardNumber>,
    ) -> Verdict {
        let (from, to) = (spec.charset, self.upstream_charset);
        if from != to {
            msg.map_values(|_, v| from.transcode(to, v));
        }
        if let Some(n) = number {
            // A card number is 1–32 ASCII letters, digits or '-': always a valid value.
            let _ = msg.set_field(FieldId::PATRON_ID, to.encode(n.as_str()));
        }
        Verdict::Forward(msg)
    }

    fn refuse(&self, msg: &Message, text: &[u8], date: &[u8; 18]) -> Verdict {
        match reply::patron_refused(msg, text, date) {
            Some(answer) => Verdict::Answer(answer),
            // Every command that carries a patron has a refusal; should one not,
            // refusing the request outright beats passing a placeholder on.
            None => Verdict::Answer(reply::request_sc_resend()),
        }
    }

    fn claim_token(
        &mut self,
        machine: MachineId,
        spec: &MachineSpec,
        patron_id: &[u8],
        now: UnixMillis,
    ) -> Option<LiveToken> {
        if !self.policy.tokens {
            return None;
        }
        let text = spec.charset.decode(patron_id);
        let shaped =
            text.len() == self.policy.token_digits && text.bytes().all(|b| b.is_ascii_digit());
        if !shaped {
            return None;
        }
        let state = &mut self.state[machine.0];
        state
            .token_misses
            .retain(|t| now.since(*t) < TOKEN_LOCK_MS && *t <= now);
        let locked = state.token_misses.len() >= self.policy.max_token_misses as usize;
        self.tokens.retain(|t| t.until > now);
        let found = self.tokens.iter().position(|t| t.digits == text);
        match (locked, found) {
            (false, Some(i)) => Some(self.tokens.remove(i)),
            (false, None) => {
                state.token_misses.push(now);
                None
            }
            // Locked: even a right token is not taken (it stays live for
            // another machine); the id goes on as typed.
            (true, _) => None,
        }
    }
}

#[cfg(test)]
mod tests;
