//! Secrets: resolving sources on the host, the encrypted per-project store, and a redacting
//! in-memory value type. Values never reach the lock, logs, errors or output.
//!
//! - [`value`]: [`SecretValue`], printed as `[redacted]`, zeroized on drop.
//! - [`crypto`]: AES-256-GCM sealing, the master key.
//! - [`store`]: the envelope-encrypted store under `$GALLEY_HOME/secrets/`.
//! - [`resolve`](mod@resolve): env, file, command and store sources to values.
//! - [`input`]: reading a value from stdin or a no-echo prompt.
//!
//! The store format and the cryptography are described in docs/secrets.md.

pub mod crypto;
pub mod input;
pub mod resolve;
pub mod store;
pub mod value;

#[cfg(test)]
mod barrier_tests;

pub use crypto::{CryptoError, SecretKey};
pub use resolve::{Resolver, SecretError};
pub use store::{Entry, Store, StoreError};
pub use value::SecretValue;

use crate::env_vars;

/// The master key from `GALLEY_MASTER_KEY`.
pub fn master_key() -> Result<SecretKey, CryptoError> {
    SecretKey::from_env(env_vars::GALLEY_MASTER_KEY)
}
