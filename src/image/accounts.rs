//! Declared `users` and `groups` rendered as /etc/passwd, /etc/group and a locked /etc/shadow,
//! merged over the base image's files: a base line whose name is declared is replaced in place,
//! declared names the base lacks are appended in declaration order. Without a base file, root
//! comes first. Users' primary groups that are not declared are added with the user's name.

use crate::model::{Group, User};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Files {
    pub passwd: String,
    pub group: String,
    pub shadow: String,
}

/// The base image's account files, where present.
#[derive(Debug, Default, Clone)]
pub struct Base {
    pub passwd: Option<String>,
    pub group: Option<String>,
    pub shadow: Option<String>,
}

fn merge(base: Option<&str>, default: &[String], declared: Vec<(String, String)>) -> String {
    let mut lines: Vec<String> = match base {
        Some(text) => text.lines().map(str::to_owned).collect(),
        None => default.to_vec(),
    };
    for (name, line) in declared {
        let prefix = format!("{name}:");
        match lines.iter_mut().find(|l| l.starts_with(&prefix)) {
            Some(l) => *l = line,
            None => lines.push(line),
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

pub fn render(base: &Base, users: &[User], groups: &[Group]) -> Files {
    // Groups: declared, then primary groups of users that no declared group covers.
    let mut all_groups: Vec<(String, u32)> = groups.iter().map(|g| (g.name.clone(), g.gid)).collect();
    for u in users {
        if !all_groups.iter().any(|(_, gid)| *gid == u.gid) && !base_has_gid(base.group.as_deref(), u.gid) {
            all_groups.push((u.name.clone(), u.gid));
        }
    }
    let group_lines = all_groups
        .iter()
        .map(|(name, gid)| {
            let members: Vec<&str> =
                users.iter().filter(|u| u.groups.iter().any(|g| g == name)).map(|u| u.name.as_str()).collect();
            (name.clone(), format!("{name}:x:{gid}:{}", members.join(",")))
        })
        .collect();
    let passwd_lines = users
        .iter()
        .map(|u| (u.name.clone(), format!("{}:x:{}:{}::{}:{}", u.name, u.uid, u.gid, u.home, u.shell)))
        .collect();
    let shadow_lines = users.iter().map(|u| (u.name.clone(), format!("{}:!:0:0:99999:7:::", u.name))).collect();
    Files {
        passwd: merge(base.passwd.as_deref(), &["root:x:0:0:root:/root:/bin/sh".into()], passwd_lines),
        group: merge(base.group.as_deref(), &["root:x:0:".into()], group_lines),
        shadow: merge(base.shadow.as_deref(), &["root:!:0:0:99999:7:::".into()], shadow_lines),
    }
}

fn base_has_gid(group: Option<&str>, gid: u32) -> bool {
    group.is_some_and(|g| g.lines().any(|l| l.split(':').nth(2) == Some(&gid.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, uid: u32, groups: &[&str]) -> User {
        User {
            name: name.into(),
            uid,
            gid: uid,
            home: format!("/home/{name}"),
            shell: "/sbin/nologin".into(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn scratch_gets_root_and_declared_accounts() {
        let f = render(&Base::default(), &[user("web", 1000, &["wheel"])], &[Group { name: "wheel".into(), gid: 10 }]);
        assert_eq!(f.passwd, "root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1000::/home/web:/sbin/nologin\n");
        assert_eq!(f.group, "root:x:0:\nwheel:x:10:web\nweb:x:1000:\n");
        assert_eq!(f.shadow, "root:!:0:0:99999:7:::\nweb:!:0:0:99999:7:::\n");
    }

    #[test]
    fn base_lines_are_kept_and_replaced_in_place() {
        let base = Base {
            passwd: Some("root:x:0:0:root:/root:/bin/bash\nweb:x:5:5::/old:/bin/sh\nnobody:x:65534:65534::/:/sbin/nologin\n".into()),
            group: Some("root:x:0:\nweb:x:1000:\n".into()),
            shadow: None,
        };
        let f = render(&base, &[user("web", 1000, &[])], &[]);
        assert_eq!(
            f.passwd,
            "root:x:0:0:root:/root:/bin/bash\nweb:x:1000:1000::/home/web:/sbin/nologin\nnobody:x:65534:65534::/:/sbin/nologin\n"
        );
        assert_eq!(f.group, "root:x:0:\nweb:x:1000:\n");
    }
}
