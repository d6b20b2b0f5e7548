//! Messages as bytes: the header kept raw ([`header`]) and the reading of a
//! submitted message with sendmail's line rules ([`collect`](mod@collect)).

pub mod collect;
pub mod header;

pub use collect::{CollectError, CollectOptions, Collected, collect};
pub use header::{Field, Header};
