//! The names galley gives what it creates: the default instance and the labels the runner sets on
//! containers, networks and volumes, which the auditor, `gc` and the exporter read back.

/// The instance used when `--instance` is not given.
pub const DEFAULT_INSTANCE: &str = "default";

pub const LABEL_PROJECT: &str = "io.galley.project";
pub const LABEL_INSTANCE: &str = "io.galley.instance";
pub const LABEL_SANDBOX: &str = "io.galley.sandbox";
/// The digest of the sandbox manifest a container was started from.
pub const LABEL_MANIFEST: &str = "io.galley.manifest";
pub const LABEL_VOLUME: &str = "io.galley.volume";
pub const LABEL_NETWORK: &str = "io.galley.network";
/// Optional label pinning the image digest the manifest was resolved with, used until the lock
/// records it.
pub const LABEL_IMAGE: &str = "io.galley.image";
/// On everything of a `galley serve` preview: the server and the pull request it previews
/// (`<server>:owner/name#N`, the server a hash of its GALLEY_HOME).
/// Reconcile removes objects carrying it that no preview record accounts for.
pub const LABEL_PREVIEW: &str = "io.galley.preview";

/// What joins the parts of the names galley gives containers, networks and volumes. The name rule
/// ([`super::Name`]) never lets it into a part, so each name reads back as exactly one
/// (project, instance, sandbox or volume): names of different inputs never collide.
pub const NAME_SEPARATOR: char = '_';

/// The container of `sandbox` in `instance` of `project`: `galley_<project>_<instance>_<sandbox>`.
pub fn container_name(project: &str, instance: &str, sandbox: &str) -> String {
    format!("galley_{project}_{instance}_{sandbox}")
}

/// The internal network of an instance (no route out): `galley_<project>_<instance>`.
pub fn network_name(project: &str, instance: &str) -> String {
    format!("galley_{project}_{instance}")
}

/// The network with a route out of an instance, joined by 'egress sandboxes only:
/// `galley_<project>_<instance>_egress`, one part more than any internal network's name.
pub fn egress_network_name(project: &str, instance: &str) -> String {
    format!("galley_{project}_{instance}_egress")
}

/// The volume `volume` of an instance: `galley_<project>_<instance>_<volume>`.
pub fn volume_name(project: &str, instance: &str, volume: &str) -> String {
    format!("galley_{project}_{instance}_{volume}")
}

/// The name a volume had before names were joined with [`NAME_SEPARATOR`]
/// (`galley-<project>-<instance>-<volume>`), which apply moves to its new name.
pub fn legacy_volume_name(project: &str, instance: &str, volume: &str) -> String {
    format!("galley-{project}-{instance}-{volume}")
}
