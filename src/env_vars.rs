//! Every environment variable galley reads, in one place.

/// Root of all galley state: image store, caches, embedded library, secret store.
pub const GALLEY_HOME: &str = "GALLEY_HOME";
/// Hex or base64 encoding of the 32-byte master key of the secret store.
pub const GALLEY_MASTER_KEY: &str = "GALLEY_MASTER_KEY";
/// The new master key for `galley secret rotate-master` when not read from stdin.
pub const GALLEY_NEW_MASTER_KEY: &str = "GALLEY_NEW_MASTER_KEY";
/// OCI runtime passed to podman and buildah (`runc`, `crun`); detected when unset.
pub const GALLEY_OCI_RUNTIME: &str = "GALLEY_OCI_RUNTIME";
/// Time limit of one RUN step (`buildah run`) in seconds (default 3600); the step is stopped
/// and the build fails when it runs longer.
pub const GALLEY_RUN_TIMEOUT_SECS: &str = "GALLEY_RUN_TIMEOUT_SECS";
/// The clamp for file modification times in image layers (seconds since the epoch).
pub const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";
/// Turns colors off when set to anything.
pub const NO_COLOR: &str = "NO_COLOR";
/// Tests: a missing podman, buildah or registry is a failure instead of a skip.
pub const GALLEY_TEST_REQUIRE_RUNTIME: &str = "GALLEY_TEST_REQUIRE_RUNTIME";
/// Tests: the folder of real Debian packages (the python3-minimal closure and a few more) that
/// `scripts/setup.sh` fetches with `apt-get download` and the loopback APT repository of the tests
/// serves (default `/var/cache/galley/test-debs` as root, else `$XDG_CACHE_HOME/galley/test-debs`
/// or `~/.cache/galley/test-debs`).
pub const GALLEY_TEST_DEBS: &str = "GALLEY_TEST_DEBS";
/// Where galley looks for state when `GALLEY_HOME` is unset.
pub const XDG_DATA_HOME: &str = "XDG_DATA_HOME";
pub const HOME: &str = "HOME";
/// `galley lsp`: time limit of one evaluation in milliseconds (default 2000).
pub const GALLEY_LSP_TIMEOUT_MS: &str = "GALLEY_LSP_TIMEOUT_MS";
/// podman's own configuration file; when set, podman reads only it (`galley doctor` follows).
pub const CONTAINERS_CONF: &str = "CONTAINERS_CONF";
/// Where a rootless podman's containers.conf lives when set.
pub const XDG_CONFIG_HOME: &str = "XDG_CONFIG_HOME";
/// Every command: wall-clock limit of evaluating galley.ncl in milliseconds (default 10000).
pub const GALLEY_EVAL_TIMEOUT_MS: &str = "GALLEY_EVAL_TIMEOUT_MS";
/// Every command: memory limit of the evaluator process in MiB (default 2048).
pub const GALLEY_EVAL_MEMORY_MB: &str = "GALLEY_EVAL_MEMORY_MB";
/// Every command: stack of the evaluating thread in MiB (default 256; part of the memory limit).
pub const GALLEY_EVAL_STACK_MB: &str = "GALLEY_EVAL_STACK_MB";
/// `galley cp` out: caps on file data bytes, entries, directory depth and path bytes
/// (defaults in `runtime::copy_out`).
pub const GALLEY_CP_MAX_BYTES: &str = "GALLEY_CP_MAX_BYTES";
pub const GALLEY_CP_MAX_ENTRIES: &str = "GALLEY_CP_MAX_ENTRIES";
pub const GALLEY_CP_MAX_DEPTH: &str = "GALLEY_CP_MAX_DEPTH";
pub const GALLEY_CP_MAX_PATH_BYTES: &str = "GALLEY_CP_MAX_PATH_BYTES";
/// Tests only: the time galley takes as now for the audit log and API tokens (seconds since the
/// epoch, or an RFC 3339 UTC time), so token expiry and rotation grace can be tested. Never set
/// it on a real host: a stopped clock keeps expired tokens valid.
pub const GALLEY_TEST_NOW: &str = "GALLEY_TEST_NOW";
/// The port forwarder of a sandbox without egress: connections carried at once (default 256);
/// more are closed as they arrive.
pub const GALLEY_FORWARD_MAX_CONNECTIONS: &str = "GALLEY_FORWARD_MAX_CONNECTIONS";
/// The port forwarder of a sandbox without egress: seconds a connection may carry no byte either
/// way before it is closed (default 300), so idle clients cannot hold every connection.
pub const GALLEY_FORWARD_IDLE_SECONDS: &str = "GALLEY_FORWARD_IDLE_SECONDS";

/// Variables that hold secrets and that no child process inherits (`exec`'s environment policy).
pub const WITHHELD: &[&str] = &[GALLEY_MASTER_KEY, GALLEY_NEW_MASTER_KEY];
