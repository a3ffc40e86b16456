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
