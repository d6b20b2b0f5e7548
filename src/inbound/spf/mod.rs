//! SPF (RFC 7208): may this client send mail for that domain?  mailroom's
//! own evaluator, on the connection's resolver (the caller bounds it in
//! time), written to the RFC and checked against the OpenSPF RFC 7208
//! test suite (tests/spf_rfc7208.rs).
//!
//! ## Modules
//!
//! [`record`] reads a record per the RFC's grammar (every syntax error a
//! permerror with its reason); [`macros`] parses and expands macro
//! strings (§7); [`lookup`] asks DNS and sorts its answers; [`eval`] is
//! check_host() itself, with the processing limits and the explanation.

pub mod eval;
pub mod lookup;
pub mod macros;
pub mod record;

pub use eval::{Evaluation, Request, check, is_checkable_domain};

/// The results of check_host() (§2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpfResult {
    Pass,
    Fail,
    SoftFail,
    Neutral,
    None,
    TempError,
    PermError,
}

impl SpfResult {
    /// The result's name, as Authentication-Results writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            SpfResult::Pass => "pass",
            SpfResult::Fail => "fail",
            SpfResult::SoftFail => "softfail",
            SpfResult::Neutral => "neutral",
            SpfResult::None => "none",
            SpfResult::TempError => "temperror",
            SpfResult::PermError => "permerror",
        }
    }
}
