//! Seccomp profiles: the standard library's named profiles and custom ones, as the JSON podman
//! reads, with a content digest recorded in the lock.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::model::Seccomp;

/// Names of the profiles the standard library ships, besides `unconfined`.
pub const NAMED: &[&str] = &["default", "strict"];

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("unknown seccomp profile `{0}`")]
    Unknown(String),
    #[error("cannot evaluate seccomp profile `{name}`: {message}")]
    Eval { name: String, message: String },
}

/// A resolved profile: its name for people, its canonical JSON and digest.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub name: String,
    pub json: serde_json::Value,
    pub digest: String,
}

impl Profile {
    /// Canonical bytes, as written to disk for podman.
    pub fn bytes(&self) -> Vec<u8> {
        crate::canonical::to_vec(&self.json)
    }
}

/// Resolve a sandbox's seccomp choice. `None` means unconfined.
pub fn resolve(lib_root: &Path, choice: &Seccomp) -> Result<Option<Profile>, SeccompError> {
    let (name, json) = match choice {
        Seccomp::Named(n) if n == "unconfined" => return Ok(None),
        Seccomp::Named(n) if NAMED.contains(&n.as_str()) => {
            let expr = format!("import \"seccomp/{n}.ncl\"");
            let json = crate::lang::eval_library_json(lib_root, &expr)
                .map_err(|message| SeccompError::Eval { name: n.clone(), message })?;
            (n.clone(), json)
        }
        Seccomp::Named(n) => return Err(SeccompError::Unknown(n.clone())),
        Seccomp::Custom(json) => ("custom".to_owned(), json.clone()),
    };
    let json = crate::canonical::to_value(&json);
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(crate::canonical::to_vec(&json))));
    Ok(Some(Profile { name, json, digest }))
}
