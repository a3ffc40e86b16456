//! The user namespace of every sandbox: podman's `--userns=auto`, which gives each container its
//! own range of [`AUTO_SIZE`] host ids, taken from the subordinate ids of [`SUBID_USER`]
//! (`/etc/subuid`, `/etc/subgid`) when podman runs as root, of the invoking user otherwise, and
//! never handed to two containers at once. Uid N inside is then an unused high uid outside, so
//! no host account shares a sandbox's ids, its secret files or its processes.

/// Host ids each sandbox gets. podman's default `auto-userns-max-size` (storage.conf) is this
/// too; ids inside the sandbox run from 0 to `AUTO_SIZE - 1`, which covers `nobody` (65534).
pub const AUTO_SIZE: u32 = crate::domain::idmap::SANDBOX_IDS;

/// The user whose subordinate ids rootful podman hands out (storage.conf's
/// `root-auto-userns-user`, whose default is this).
pub const SUBID_USER: &str = "containers";

/// The range `scripts/setup.sh` gives [`SUBID_USER`]: the upper half of the id space, far above
/// every account and every user's own subordinate range (32,768 sandboxes at a time).
pub const SETUP_RANGE: (u64, u64) = (2_147_483_647, 2_147_483_648);

/// podman's `--userns` option for a sandbox.
pub fn podman_arg() -> String {
    format!("--userns=auto:size={AUTO_SIZE}")
}
