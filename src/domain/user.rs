//! Who a sandbox or an image runs as: `uid[:gid]` or an account name of the image, optionally with a
//! group. One rule gives the numeric ids: a gid that is not written is the uid, as in the default
//! `65534:65534`. Every consumer (the podman argv, secret and copied file ownership, the
//! auditor, the Kubernetes security context, the root lint) takes the ids from [`UserSpec::ids`].

use std::fmt;

use super::Invalid;
use crate::diagnostic::Code;

/// One side of `user[:group]`: a numeric id or an account name resolved inside the image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Account {
    Id(u32),
    Name(String),
}

impl Account {
    fn parse(s: &str) -> Option<Account> {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s.parse().ok().map(Account::Id);
        }
        let name_ok = !s.is_empty() && s.chars().all(|c| !c.is_whitespace() && !c.is_control() && c != '/' && c != ':');
        name_ok.then(|| Account::Name(s.to_owned()))
    }

    fn id(&self) -> Option<u32> {
        match self {
            Account::Id(n) => Some(*n),
            Account::Name(_) => None,
        }
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Account::Id(n) => n.fmt(f),
            Account::Name(s) => f.write_str(s),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct UserSpec {
    pub user: Account,
    /// The group as written; `None` when only the user is.
    pub group: Option<Account>,
}

impl UserSpec {
    pub fn parse(s: &str) -> Result<UserSpec, Invalid> {
        let invalid = || {
            Invalid::new(Code::Contract, format!("invalid user \"{s}\""))
                .help("write uid[:gid] (for example \"1000:1000\") or the name of an account of the image")
        };
        let (user, group) = match s.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (s, None),
        };
        let user = Account::parse(user).ok_or_else(invalid)?;
        let group = group.map(|g| Account::parse(g).ok_or_else(invalid)).transpose()?;
        Ok(UserSpec { user, group })
    }

    /// The numeric uid and gid, when the user is numeric: the gid is the written one, or the uid
    /// when none is written. `None` when either side names an account.
    pub fn ids(&self) -> Option<(u32, u32)> {
        let uid = self.user.id()?;
        match &self.group {
            None => Some((uid, uid)),
            Some(g) => Some((uid, g.id()?)),
        }
    }

    /// The numeric uid, when written as one.
    pub fn uid(&self) -> Option<u32> {
        self.user.id()
    }

    /// Whether the user is root, by id or by name.
    pub fn is_root(&self) -> bool {
        self.user == Account::Id(0) || self.user == Account::Name("root".into())
    }

    /// What podman's `--user` gets: `uid:gid` by the rule above when numeric, else as written
    /// (podman resolves the names in the image's /etc/passwd and /etc/group).
    pub fn podman_arg(&self) -> String {
        match self.ids() {
            Some((uid, gid)) => format!("{uid}:{gid}"),
            None => self.to_string(),
        }
    }
}

impl fmt::Display for UserSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.user.fmt(f)?;
        if let Some(g) = &self.group {
            write!(f, ":{g}")?;
        }
        Ok(())
    }
}

super::text_serde!(UserSpec);

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(s: &str) -> Option<(u32, u32)> {
        UserSpec::parse(s).unwrap().ids()
    }

    #[test]
    fn an_unwritten_gid_is_the_uid_and_names_have_no_ids() {
        assert_eq!(ids("1000:1001"), Some((1000, 1001)));
        assert_eq!(ids("1000"), Some((1000, 1000)));
        assert_eq!(ids("app"), None);
        assert_eq!(ids("1000:web"), None);
        assert_eq!(UserSpec::parse("1000").unwrap().podman_arg(), "1000:1000");
        assert_eq!(UserSpec::parse("app:staff").unwrap().podman_arg(), "app:staff");
    }

    #[test]
    fn users_print_as_written_and_root_is_known_by_id_or_name() {
        for written in ["65534:65534", "1000", "app", "app:staff", "0:1000"] {
            assert_eq!(UserSpec::parse(written).unwrap().to_string(), written);
        }
        assert!(UserSpec::parse("root").unwrap().is_root());
        assert!(UserSpec::parse("0:0").unwrap().is_root());
        assert!(!UserSpec::parse("1000:0").unwrap().is_root());
        for bad in ["", ":1000", "1000:", "a b", "a:b:c", "99999999999"] {
            assert_eq!(UserSpec::parse(bad).unwrap_err().code, Code::Contract, "{bad}");
        }
    }
}
