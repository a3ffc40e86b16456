//! A sandbox's tmpfs and volume mount points, compared in their normalised form
//! ([`MountPath`]): the same place twice, a place galley reserves (/run/secrets) or the runtime
//! owns (/, /proc, /sys), and a mount nested inside a volume, which hides part of it.

use std::collections::BTreeSet;

use crate::diagnostic::{Code, Diagnostic};
use crate::domain::MountPath;
use crate::lang::SpanIndex;
use crate::model::Sandbox;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tmpfs,
    Volume,
}

struct Mount<'a> {
    path: &'a MountPath,
    field: String,
    kind: Kind,
}

fn path(p: &str) -> MountPath {
    MountPath::parse(p).expect("an absolute path")
}

pub fn run(name: &str, at: &str, sandbox: &Sandbox, spans: &SpanIndex, out: &mut Vec<Diagnostic>) {
    let secrets = path("/run/secrets");
    let system = [path("/proc"), path("/sys")];
    let tmpfs = sandbox.tmpfs.iter().enumerate().map(|(i, t)| Mount { path: &t.path, field: format!("{at}.tmpfs[{i}].path"), kind: Kind::Tmpfs });
    let vols = sandbox.volumes.iter().enumerate().map(|(i, v)| Mount { path: &v.path, field: format!("{at}.volumes[{i}].path"), kind: Kind::Volume });
    let mut kept: Vec<Mount<'_>> = Vec::new();
    let mut seen: BTreeSet<&MountPath> = BTreeSet::new();
    for m in tmpfs.chain(vols) {
        let what = if m.kind == Kind::Tmpfs { "a tmpfs" } else { "a volume" };
        if m.path.is_within(&secrets) {
            out.push(
                Diagnostic::new(Code::MountConflict, format!("{} is reserved for secrets", m.path))
                    .at(spans.locate_value(&m.field))
                    .help("mount the volume elsewhere; galley places secrets under /run/secrets"),
            );
        } else if m.path.as_str() == "/" {
            out.push(
                Diagnostic::new(Code::MountOverSystem, format!("{what} at / would replace the image's whole filesystem"))
                    .at(spans.locate_value(&m.field))
                    .help("mount it at a directory of its own, for example \"/data\"; the root stays the image's (read_only = false makes it writable)"),
            );
        } else if let Some(sys) = system.iter().find(|s| m.path.is_within(s)) {
            out.push(
                Diagnostic::new(Code::MountOverSystem, format!("{what} at {} is inside {sys}, which the container runtime owns", m.path))
                    .at(spans.locate_value(&m.field))
                    .help(format!("{sys} is the kernel's view, mounted by the runtime; mount the {} elsewhere", if m.kind == Kind::Tmpfs { "tmpfs" } else { "volume" })),
            );
        } else if !seen.insert(m.path) {
            out.push(
                Diagnostic::new(Code::MountConflict, format!("mount point {} is used twice in sandbox `{name}`", m.path))
                    .at(spans.locate_value(&m.field))
                    .help("give each tmpfs and volume its own path"),
            );
        } else {
            kept.push(m);
        }
    }
    // A mount inside a volume hides that part of the volume: what the program writes there does
    // not persist with the volume (a tmpfs) or lands in another volume, and `galley cp` into the
    // outer volume is not what the program sees.
    for inner in &kept {
        let outer = kept.iter().filter(|o| o.kind == Kind::Volume && o.path != inner.path && inner.path.is_within(o.path)).max_by_key(|o| o.path.as_str().len());
        if let Some(outer) = outer {
            let (what, effect) = match inner.kind {
                Kind::Tmpfs => ("tmpfs", "what is written there is lost when the sandbox stops, not kept in the volume"),
                Kind::Volume => ("volume", "what is written there goes to the inner volume, and the outer volume's files there are hidden"),
            };
            out.push(
                Diagnostic::new(Code::NestedMount, format!("{what} {} is inside volume {}: {effect}", inner.path, outer.path))
                    .at(spans.locate_value(&inner.field))
                    .help("mount it beside the volume rather than inside it, or drop one of the two"),
            );
        }
    }
    // A tmpfs's pages are charged to the sandbox's memory: one larger than the memory limit
    // can never be filled, the program is killed first.
    if let Some(limit) = sandbox.resources.memory.bytes() {
        for (i, t) in sandbox.tmpfs.iter().enumerate().filter(|(_, t)| t.size.bytes() > limit) {
            out.push(
                Diagnostic::new(
                    Code::TmpfsOverMemory,
                    format!("tmpfs {} may hold {}, more than the sandbox's memory limit of {}: its pages count against that limit", t.path, t.size, sandbox.resources.memory),
                )
                .at(spans.locate_value(&format!("{at}.tmpfs[{i}].size")))
                .help("make the tmpfs smaller than resources.memory, or raise the memory limit; a volume holds large data without using memory"),
            );
        }
    }
    let holder = kept.iter().filter(|o| o.kind == Kind::Volume && secrets.is_within(o.path)).max_by_key(|o| o.path.as_str().len());
    if let Some(outer) = holder.filter(|_| !sandbox.secrets.is_empty()) {
        out.push(
            Diagnostic::new(Code::NestedMount, format!("volume {} contains /run/secrets, where galley mounts this sandbox's secrets", outer.path))
                .at(spans.locate_value(&outer.field))
                .help("mount the volume elsewhere, so the secrets' mount point is not created inside persistent storage"),
        );
    }
}
