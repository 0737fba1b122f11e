//! SIP2 2.00 commands and the length of their fixed fields.

use std::fmt;

/// A SIP2 command: the two characters that start every message.
///
/// Every command of SIP2 2.00 is known with the total length of its fixed
/// fields; anything else is [`Command::Unknown`], whose body a bridge passes on
/// untouched (its layout is not known, so no field in it can be found).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// 93: SC login.
    Login,
    /// 94: login response.
    LoginResponse,
    /// 99: SC status.
    ScStatus,
    /// 98: ACS status.
    AcsStatus,
    /// 23: patron status request.
    PatronStatus,
    /// 24: patron status response.
    PatronStatusResponse,
    /// 63: patron information.
    PatronInformation,
    /// 64: patron information response.
    PatronInformationResponse,
    /// 11: checkout.
    Checkout,
    /// 12: checkout response.
    CheckoutResponse,
    /// 09: checkin.
    Checkin,
    /// 10: checkin response.
    CheckinResponse,
    /// 29: renew.
    Renew,
    /// 30: renew response.
    RenewResponse,
    /// 17: item information.
    ItemInformation,
    /// 18: item information response.
    ItemInformationResponse,
    /// 35: end patron session.
    EndSession,
    /// 36: end session response.
    EndSessionResponse,
    /// 37: fee paid.
    FeePaid,
    /// 38: fee paid response.
    FeePaidResponse,
    /// 01: block patron (answered with 24).
    BlockPatron,
    /// 15: hold.
    Hold,
    /// 16: hold response.
    HoldResponse,
    /// 19: item status update.
    ItemStatusUpdate,
    /// 20: item status update response.
    ItemStatusUpdateResponse,
    /// 25: patron enable.
    PatronEnable,
    /// 26: patron enable response.
    PatronEnableResponse,
    /// 65: renew all.
    RenewAll,
    /// 66: renew all response.
    RenewAllResponse,
    /// 97: request ACS resend (SC → ACS, after a bad checksum).
    RequestAcsResend,
    /// 96: request SC resend (ACS → SC, after a bad checksum).
    RequestScResend,
    /// Any other two letters or digits: a vendor extension, passed on as it came.
    Unknown([u8; 2]),
}

/// (command, code, fixed-field length in bytes, carries a patron id, name)
const TABLE: &[(Command, [u8; 2], usize, bool, &str)] = &[
    (Command::Login, *b"93", 2, false, "login"),
    (Command::LoginResponse, *b"94", 1, false, "login response"),
    (Command::ScStatus, *b"99", 8, false, "SC status"),
    (Command::AcsStatus, *b"98", 34, false, "ACS status"),
    (Command::PatronStatus, *b"23", 21, true, "patron status"),
    (
        Command::PatronStatusResponse,
        *b"24",
        35,
        true,
        "patron status response",
    ),
    (
        Command::PatronInformation,
        *b"63",
        31,
        true,
        "patron information",
    ),
    (
        Command::PatronInformationResponse,
        *b"64",
        59,
        true,
        "patron information response",
    ),
    (Command::Checkout, *b"11", 38, true, "checkout"),
    (
        Command::CheckoutResponse,
        *b"12",
        22,
        true,
        "checkout response",
    ),
    (Command::Checkin, *b"09", 37, false, "checkin"),
    (
        Command::CheckinResponse,
        *b"10",
        22,
        false,
        "checkin response",
    ),
    (Command::Renew, *b"29", 38, true, "renew"),
    (Command::RenewResponse, *b"30", 22, true, "renew response"),
    (
        Command::ItemInformation,
        *b"17",
        18,
        false,
        "item information",
    ),
    (
        Command::ItemInformationResponse,
        *b"18",
        24,
        false,
        "item information response",
    ),
    (Command::EndSession, *b"35", 18, true, "end session"),
    (
        Command::EndSessionResponse,
        *b"36",
        19,
        true,
        "end session response",
    ),
    (Command::FeePaid, *b"37", 25, true, "fee paid"),
    (
        Command::FeePaidResponse,
        *b"38",
        19,
        true,
        "fee paid response",
    ),
    (Command::BlockPatron, *b"01", 19, true, "block patron"),
    (Command::Hold, *b"15", 19, true, "hold"),
    (Command::HoldResponse, *b"16", 20, true, "hold response"),
    (
        Command::ItemStatusUpdate,
        *b"19",
        18,
        false,
        "item status update",
    ),
    (
        Command::ItemStatusUpdateResponse,
        *b"20",
        19,
        false,
        "item status update response",
    ),
    (Command::PatronEnable, *b"25", 18, true, "patron enable"),
    (
        Command::PatronEnableResponse,
        *b"26",
        35,
        true,
        "patron enable response",
    ),
    (Command::RenewAll, *b"65", 18, true, "renew all"),
    (
        Command::RenewAllResponse,
        *b"66",
        27,
        true,
        "renew all response",
    ),
    (
        Command::RequestAcsResend,
        *b"97",
        0,
        false,
        "request ACS resend",
    ),
    (
        Command::RequestScResend,
        *b"96",
        0,
        false,
        "request SC resend",
    ),
];

impl Command {
    /// The command for two bytes.
    pub fn from_code(code: [u8; 2]) -> Command {
        TABLE
            .iter()
            .find(|row| row.1 == code)
            .map_or(Command::Unknown(code), |row| row.0)
    }

    fn row(self) -> Option<&'static (Command, [u8; 2], usize, bool, &'static str)> {
        TABLE.iter().find(|row| row.0 == self)
    }

    /// The two bytes on the wire.
    pub fn code(self) -> [u8; 2] {
        match self {
            Command::Unknown(code) => code,
            known => known.row().map_or([b'?'; 2], |row| row.1),
        }
    }

    /// The total length of the fixed fields; `None` for an unknown command.
    pub fn fixed_len(self) -> Option<usize> {
        self.row().map(|row| row.2)
    }

    /// Whether the message carries a patron identifier (`AA`).
    pub fn carries_patron(self) -> bool {
        self.row().is_some_and(|row| row.3)
    }

    /// The response a request is answered with (`None` for responses, resend
    /// requests and unknown commands).
    pub fn response(self) -> Option<Command> {
        Some(match self {
            Command::Login => Command::LoginResponse,
            Command::ScStatus => Command::AcsStatus,
            Command::PatronStatus | Command::BlockPatron => Command::PatronStatusResponse,
            Command::PatronInformation => Command::PatronInformationResponse,
            Command::Checkout => Command::CheckoutResponse,
            Command::Checkin => Command::CheckinResponse,
            Command::Renew => Command::RenewResponse,
            Command::ItemInformation => Command::ItemInformationResponse,
            Command::EndSession => Command::EndSessionResponse,
            Command::FeePaid => Command::FeePaidResponse,
            Command::Hold => Command::HoldResponse,
            Command::ItemStatusUpdate => Command::ItemStatusUpdateResponse,
            Command::PatronEnable => Command::PatronEnableResponse,
            Command::RenewAll => Command::RenewAllResponse,
            _ => return None,
        })
    }

    /// A short English name for logs.
    pub fn name(self) -> &'static str {
        self.row().map_or("unknown", |row| row.4)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b] = self.code();
        if a.is_ascii_graphic() && b.is_ascii_graphic() {
            write!(f, "{}{}", a as char, b as char)
        } else {
            write!(f, "0x{a:02x}{b:02x}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_round_trip() {
        for (i, row) in TABLE.iter().enumerate() {
            assert_eq!(Command::from_code(row.1), row.0);
            assert_eq!(row.0.code(), row.1);
            assert!(
                TABLE[i + 1..].iter().all(|other| other.1 != row.1),
                "{} twice",
                row.0
            );
        }
        assert_eq!(Command::from_code(*b"XX"), Command::Unknown(*b"XX"));
        assert_eq!(Command::Unknown(*b"XX").fixed_len(), None);
    }

    #[test]
    fn requests_and_responses_pair_up() {
        let pairs = [
            ("93", "94"),
            ("99", "98"),
            ("23", "24"),
            ("63", "64"),
            ("11", "12"),
            ("09", "10"),
            ("29", "30"),
            ("17", "18"),
            ("35", "36"),
            ("37", "38"),
        ];
        for (req, resp) in pairs {
            let code = |s: &str| Command::from_code(s.as_bytes().try_into().unwrap());
            assert_eq!(code(req).response(), Some(code(resp)), "{req}");
        }
    }
}
