//! DKIM signatures on outbound mail: RFC 6376 with `rsa-sha256` and RFC
//! 8463 `ed25519-sha256`, relaxed/relaxed canonicalization, no `l=`.
//!
//! * [`keys`]: one private key: the PEM encodings read and written, its
//!   algorithm, its DNS record;
//! * [`keyring`]: the key files on disk, `/etc/mail/dkim/DOMAIN/*.key`,
//!   and the keys of one queue run, which choose the signing domain;
//! * [`sign`]: what is signed and the `DKIM-Signature:` field;
//! * [`canon`]: relaxed canonicalization and the header hash input;
//! * `verify` (tests only, behind the `dkim-test-verifier` feature): a
//!   verifier of the signatures [`sign`] makes, for the tests.

pub mod canon;
pub mod keyring;
pub mod keys;
pub mod sign;
#[cfg(test)]
mod test_vectors;
#[cfg(any(test, feature = "dkim-test-verifier"))]
pub mod verify;

pub use canon::{relaxed_body, relaxed_header};
pub use keyring::{Keyring, key_files, keys_dir, load_domain, load_key};
pub use keys::{Algorithm, Key, RSA_BITS, generate, valid_domain, valid_selector, zone_entry};
pub use sign::{SIGNED_FIELDS, sign_message};
#[cfg(any(test, feature = "dkim-test-verifier"))]
pub use verify::verify;
