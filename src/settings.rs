//! Settings every command shares, resolved once from flags and environment.

use std::path::{Path, PathBuf};

use crate::env_vars;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// The project directory (`-C`), holding galley.ncl.
    pub project_dir: PathBuf,
    /// All of galley's state.
    pub home: PathBuf,
    pub format: Format,
    /// -1 quiet, 0 normal, 1+ verbose.
    pub verbosity: i8,
    pub color: bool,
}

impl Settings {
    pub fn config_path(&self) -> PathBuf {
        self.project_dir.join(crate::lang::CONFIG_FILE)
    }

    /// Where the embedded Nickel library is written.
    pub fn lib_root(&self) -> PathBuf {
        self.home.join("lib")
    }
}

/// `GALLEY_HOME`, else `$XDG_DATA_HOME/galley`, else `~/.local/share/galley`.
pub fn default_home(get: impl Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(h) = get(env_vars::GALLEY_HOME).filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    if let Some(x) = get(env_vars::XDG_DATA_HOME).filter(|h| Path::new(h).is_absolute()) {
        return Path::new(&x).join("galley");
    }
    let home = get(env_vars::HOME).unwrap_or_else(|| "/".into());
    Path::new(&home).join(".local/share/galley")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_follows_galley_home_then_xdg() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert_eq!(default_home(env(&[(env_vars::GALLEY_HOME, "/g"), ("HOME", "/h")])), PathBuf::from("/g"));
        assert_eq!(default_home(env(&[("XDG_DATA_HOME", "/x"), ("HOME", "/h")])), PathBuf::from("/x/galley"));
        assert_eq!(default_home(env(&[("HOME", "/h")])), PathBuf::from("/h/.local/share/galley"));
    }
}
