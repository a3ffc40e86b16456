//! Every diagnostic code galley reports, in one catalogue: its id (`G021`), severity, title and
//! the help shown when a finding has no more specific one. The README's table of findings is
//! checked against it.

use std::fmt;

use super::Severity;

/// One entry of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub code: Code,
    pub id: &'static str,
    pub severity: Severity,
    pub title: &'static str,
    pub help: Option<&'static str>,
}

macro_rules! catalogue {
    ($($variant:ident = $id:literal, $severity:ident, $title:literal, $help:expr;)*) => {
        /// A diagnostic code. Codes from G001 to G031 come from evaluating the config (Nickel and
        /// galley's contracts); G1xx are galley's lints over the typed project.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $($variant,)*
        }

        /// Every code, in order of its id.
        pub const CATALOGUE: &[Entry] = &[
            $(Entry { code: Code::$variant, id: $id, severity: Severity::$severity, title: $title, help: $help },)*
        ];
    };
}

catalogue! {
    Unreadable = "G000", Error, "configuration cannot be read or evaluated", None;
    Syntax = "G001", Error, "syntax error", Some("fix the syntax at the marked place; galley.ncl is Nickel (https://nickel-lang.org)");
    Type = "G002", Error, "type error", Some("make the value match its declared type");
    Contract = "G003", Error, "contract violation (wrong type or value for a field)", Some("make the value match the field's contract; `galley lsp` shows each field's documentation");
    UnknownField = "G004", Error, "unknown field (with \"did you mean\")", Some("remove the field or fix its spelling");
    MissingField = "G005", Error, "missing required field", Some("give the field a value");
    Evaluation = "G006", Error, "evaluation error", None;
    Import = "G007", Error, "import error", Some("check the import path; galley's library is imported as \"galley/std.ncl\"");
    Export = "G008", Error, "value cannot be exported as data (a function or an unevaluated value)", None;
    Timeout = "G009", Error, "evaluation timed out", Some("look for unbounded recursion");
    SchemaBug = "G010", Error, "galley's schema accepted a value its model rejects (a bug in galley)", Some("please report it, with the config that triggers it");
    EvalTimeout = "G011", Error, "evaluation exceeded its time limit", None;
    EvalMemory = "G012", Error, "evaluation exceeded its memory limit", None;
    EvalStack = "G013", Error, "evaluation exceeded its stack limit (recursion too deep)", None;
    EvalCrashed = "G014", Error, "evaluation stopped without a result (a crash)", Some("please report it, with the config that triggers it");
    NotUtf8 = "G015", Error, "source file is not valid UTF-8", Some("save the file as UTF-8");
    ImportOutside = "G016", Error, "import of a file outside the project", Some("import only files of the project (its git work tree) and galley's library; copy the file into the project");
    InvalidName = "G020", Error, "invalid name", None;
    InvalidPort = "G021", Error, "invalid port", None;
    InvalidPath = "G022", Error, "invalid path in the sandbox", None;
    InvalidProjectPath = "G023", Error, "invalid path in the project", None;
    InvalidSize = "G024", Error, "invalid size", None;
    InvalidMode = "G025", Error, "invalid file mode", None;
    InvalidSecretName = "G026", Error, "invalid secret name", None;
    InvalidAddress = "G027", Error, "invalid IP address", None;
    InvalidCapability = "G028", Error, "invalid capability", None;
    InvalidCommand = "G029", Error, "invalid command", None;
    InvalidSecretSource = "G030", Error, "invalid secret source", None;
    InvalidSeccomp = "G031", Error, "invalid seccomp profile", None;
    InvalidCpus = "G032", Error, "CPU quota podman cannot apply", None;
    MemoryTooLow = "G033", Error, "memory limit of 0 or below podman's minimum of 6 MiB", None;
    TmpfsUnlimited = "G034", Error, "tmpfs size of 0 (the kernel reads it as no limit)", None;
    NumberTooLarge = "G035", Error, "number too large for its field", None;
    TmpfsOverMemory = "G036", Warning, "tmpfs larger than the sandbox's memory limit", None;
    ContainerfileConflict = "G040", Error, "image sets both `containerfile` and base, debian, packages, files, run, users or groups", None;
    ContainerfileInvalid = "G041", Error, "Containerfile cannot be read or parsed", None;
    BuildSecretUndeclared = "G042", Error, "Containerfile mounts a build secret that is not declared", None;
    InvalidPackage = "G050", Error, "invalid Debian package name", None;
    InvalidMirror = "G051", Error, "invalid Debian archive URL", None;
    PackagesWithoutSource = "G052", Error, "Debian packages declared without a `debian` source", None;
    MissingKeyring = "G053", Error, "Debian archive keyring not found in the project", None;
    PublicPort = "G101", Warning, "port published on a non-loopback address", None;
    LiteralSecret = "G102", Error, "secret written as a literal value", None;
    UnpinnableBase = "G103", Error, "base image reference cannot be pinned", None;
    CapabilityAdded = "G104", Warning, "capability added", None;
    SeccompUnconfined = "G105", Warning, "seccomp unconfined", None;
    RunsAsRoot = "G106", Warning, "sandbox runs as root", None;
    HostPath = "G107", Error, "host path mounted", None;
    UntrustedEgress = "G108", Warning, "egress allowed for an untrusted sandbox", None;
    MissingLimit = "G109", Warning, "resource limit missing", None;
    PortTwice = "G110", Error, "host port published twice", None;
    UndeclaredImage = "G111", Error, "sandbox uses an undeclared image", None;
    WritableRoot = "G112", Warning, "writable root filesystem", None;
    UndeclaredGroup = "G113", Error, "account in an undeclared group", None;
    DuplicateAccount = "G114", Error, "account or group declared twice", None;
    MountConflict = "G115", Error, "mount point used twice, or under /run/secrets", None;
    UdpWithoutEgress = "G116", Error, "UDP port on a sandbox without egress", None;
    MountOverSystem = "G117", Error, "mount at /, or under /proc or /sys", None;
    NestedMount = "G118", Warning, "mount nested inside a volume", None;
    SeccompAllowsDangerous = "G119", Warning, "custom seccomp profile allows syscalls podman's default profile blocks", None;
    MissingSource = "G120", Error, "file to copy does not exist", None;
    SourceEscapes = "G121", Error, "file to copy leads out of the project through a symbolic link", None;
    SourceLink = "G122", Warning, "symbolic link copied as a link", None;
    AddFromUrl = "G130", Warning, "Containerfile ADD from a URL (not reproducible, needs network)", None;
    ContainerfileRoot = "G131", Warning, "Containerfile image runs as root", None;
    UserOutsideNamespace = "G160", Error, "user id outside the sandbox's user namespace", None;
    PolicyCapability = "G180", Error, "preview asks for a capability the serve policy does not allow", None;
    PolicyNetwork = "G181", Error, "preview asks for a network the serve policy does not allow", None;
    PolicySeccomp = "G182", Error, "preview asks for a seccomp profile the serve policy does not allow", None;
    PolicyRoot = "G183", Error, "preview runs as root and the serve policy does not allow it", None;
    PolicyResources = "G184", Error, "preview asks for more resources than the serve policy's ceiling", None;
    PolicyVolume = "G185", Error, "preview declares a volume and the serve policy does not allow volumes", None;
    PolicySecret = "G186", Error, "preview asks for a secret the serve policy does not grant", None;
    PolicyRegistry = "G187", Error, "preview lets a registry reach private addresses", None;
}

impl Code {
    pub fn entry(self) -> &'static Entry {
        CATALOGUE.iter().find(|e| e.code == self).expect("every code has a catalogue entry")
    }

    pub fn as_str(self) -> &'static str {
        self.entry().id
    }

    pub fn severity(self) -> Severity {
        self.entry().severity
    }

    /// The help a finding of this code gets when it has no more specific one.
    pub fn default_help(self) -> Option<&'static str> {
        self.entry().help
    }

    /// The code with id `id` (`G021`).
    pub fn parse(id: &str) -> Option<Code> {
        CATALOGUE.iter().find(|e| e.id == id).map(|e| e.code)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Code {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Code, D::Error> {
        let id = String::deserialize(d)?;
        Code::parse(&id).ok_or_else(|| serde::de::Error::custom(format!("unknown diagnostic code `{id}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_sorted_and_well_formed() {
        let ids: Vec<&str> = CATALOGUE.iter().map(|e| e.id).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(ids, sorted);
        for e in CATALOGUE {
            assert!(e.id.len() == 4 && e.id.starts_with('G') && e.id[1..].bytes().all(|b| b.is_ascii_digit()), "{}", e.id);
            assert_eq!(Code::parse(e.id), Some(e.code));
            assert_eq!(e.code.entry(), e);
        }
    }

    #[test]
    fn every_code_in_the_schema_is_catalogued() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for file in ["lang/check.ncl", "lang/schema.ncl"] {
            let text = std::fs::read_to_string(root.join(file)).unwrap();
            for (i, _) in text.match_indices("\"G") {
                let id = &text[i + 1..i + 5];
                if id[1..].bytes().all(|b| b.is_ascii_digit()) {
                    assert!(Code::parse(id).is_some(), "{file} uses {id}, which the catalogue lacks");
                }
            }
        }
    }

    #[test]
    fn the_readme_table_of_findings_is_the_catalogue() {
        let readme = include_str!("../../README.md");
        let table = readme.split("### Findings").nth(1).expect("README has a Findings section");
        let rows: Vec<String> = table
            .lines()
            .skip_while(|l| !l.starts_with("| code |"))
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(str::to_owned)
            .collect();
        let expected: Vec<String> = CATALOGUE
            .iter()
            .map(|e| {
                let severity = if e.severity == Severity::Warning { "warning" } else { "error" };
                format!("| {} | {severity} | {} |", e.id, e.title)
            })
            .collect();
        assert_eq!(rows, expected, "README.md's table of findings must list the catalogue, one row per code");
    }

    #[test]
    fn codes_serialize_as_their_ids() {
        assert_eq!(serde_json::to_string(&Code::InvalidPort).unwrap(), "\"G021\"");
        assert_eq!(serde_json::from_str::<Code>("\"G115\"").unwrap(), Code::MountConflict);
        assert!(serde_json::from_str::<Code>("\"G999\"").is_err());
    }
}
