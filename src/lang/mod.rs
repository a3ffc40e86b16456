//! The only module that knows Nickel: evaluate `galley.ncl` under the schema contract and hand
//! back the typed [`Project`](crate::model::Project) with a map from field paths to source spans,
//! or the diagnostics that explain why that failed.
//!
//! Architecture invariant: nothing outside `lang/` imports `nickel_lang_core`.

mod convert;
pub mod docs;
mod imported;
pub mod embedded;
pub mod fields;
mod piecewise;
mod spans;

use std::convert::Infallible;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nickel_lang_core::eval::cache::CacheImpl;
use nickel_lang_core::files::Files;
use nickel_lang_core::program::{Program, ProgramBuilder};
use nickel_lang_core::serialize::{self, ExportFormat};

use crate::diagnostic::{Code, Diagnostic};
use crate::domain::Invalid;
use crate::model::Project;

pub use spans::{SpanIndex, child as child_path};

/// The project file galley reads in a project directory.
pub const CONFIG_FILE: &str = "galley.ncl";

/// The lock file galley writes next to it.
pub const LOCK_FILE: &str = "galley.lock";

/// What to evaluate.
pub struct Input<'a> {
    /// Path of `galley.ncl`.
    pub config: &'a Path,
    /// Unsaved contents of `config` (an editor buffer); read from disk when `None`.
    pub text: Option<&'a str>,
    /// Root for the embedded library (`GALLEY_HOME/lib`).
    pub lib_root: &'a Path,
}

/// A successfully evaluated project.
#[derive(Debug)]
pub struct Evaluated {
    pub project: Project,
    /// The exported JSON value, defaults filled in.
    pub json: serde_json::Value,
    pub spans: SpanIndex,
}

/// Evaluate a project. Errors are returned as diagnostics with spans in the user's files.
pub fn evaluate(input: &Input<'_>) -> Result<Evaluated, Vec<Diagnostic>> {
    let project_dir = input.config.parent().map(Path::to_path_buf).unwrap_or_default();
    let lib = embedded::materialize(input.lib_root).map_err(|e| {
        vec![
            Diagnostic::new(Code::Unreadable,
                format!("cannot write the galley library under {}: {e}", input.lib_root.display()),
            )
            .help("set GALLEY_HOME to a writable directory"),
        ]
    })?;
    let namer = Namer { project_dir: project_dir.clone(), lib: lib.clone() };

    let mut program = build_program(input, &lib, Some(PROJECT_CONTRACT)).map_err(|d| vec![d])?;
    let evaluated = program.eval_full_for_export();
    // Whatever the evaluation made of them, files read from outside the project are never
    // shown, in a value or in a diagnostic's source lines.
    if let Some(outside) = read_outside(&program.files(), input.config, &lib) {
        return Err(vec![outside]);
    }
    let value = match evaluated {
        Ok(value) => value,
        Err(error) => {
            let files = program.files();
            let mut diagnostics = convert::from_nickel(error, files.clone(), &namer);
            // Nickel reports an unknown field against the whole record; find the field itself,
            // and a near miss, by walking the config without the contract.
            if diagnostics.iter().any(|d| d.code == Code::UnknownField) {
                if let Some(better) = unknown_fields(input, &lib, &namer) {
                    diagnostics = better;
                }
            }
            return Err(diagnostics);
        }
    };

    let files = program.files();
    // Nickel's JSON export, straight into a JSON value rather than through its text.
    let json = serde_json::to_value(&value).map_err(|e| {
        let kind = nickel_lang_core::error::ExportErrorKind::Other(e.to_string());
        let error = nickel_lang_core::error::Error::export_error(program.pos_table().clone(), kind);
        convert::from_nickel(error, files.clone(), &namer)
    })?;
    let spans = spans::index(&value, program.pos_table(), &files, &namer);
    let project: Project = serde_path_to_error::deserialize(&json).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        vec![match Invalid::decode(&inner) {
            // A value the schema let through that its domain type refuses, at its field.
            Some(invalid) => {
                let d = Diagnostic::new(invalid.code, invalid.message).at(spans.locate_value(&path));
                match invalid.help {
                    Some(help) => d.help(help),
                    None => d,
                }
            }
            // A whole number the schema takes (Nat) that galley's model holds in fewer bits.
            None if inner.starts_with("invalid value: integer") && inner.contains(", expected u") => {
                let bits = inner.rsplit(", expected u").next().unwrap_or_default().trim_end_matches(|c: char| !c.is_ascii_digit());
                let max = match bits {
                    "8" => u64::from(u8::MAX),
                    "16" => u64::from(u16::MAX),
                    "32" => u64::from(u32::MAX),
                    _ => u64::MAX,
                };
                let number = inner.split('`').nth(1).unwrap_or("the number");
                let field = path.rsplit('.').next().unwrap_or(&path);
                Diagnostic::new(Code::NumberTooLarge, format!("{number} is too large for `{field}`, which holds at most {max}"))
                    .at(spans.locate_value(&path))
                    .help(format!("write a number from 0 to {max}"))
            }
            None => Diagnostic::new(Code::SchemaBug, format!("configuration does not match galley's model at `{path}`: {inner}"))
                .at(spans.locate(""))
                .help("this is a bug in galley's schema, which accepted the file; please report it"),
        }]
    })?;
    Ok(Evaluated { project, json, spans })
}

fn build_program(
    input: &Input<'_>,
    lib: &Path,
    contract: Option<&str>,
) -> Result<Program<CacheImpl>, Diagnostic> {
    let config = absolute(input.config);
    let mut builder = ProgramBuilder::new().add_import_paths([lib.to_path_buf()]);
    let text = match input.text {
        Some(text) => text.to_owned(),
        None => {
            if !config.is_file() {
                return Err(Diagnostic::new(Code::Unreadable,
                    format!("no {CONFIG_FILE} in {}", config.parent().unwrap_or(&config).display()),
                )
                .help("run `galley init` to write a starter config, or pass -C DIR"));
            }
            let bytes = std::fs::read(&config).map_err(|e| {
                Diagnostic::new(Code::Unreadable, format!("cannot read {}: {e}", config.display()))
                    .help("check that the file exists and is readable")
            })?;
            let shown = input.config.file_name().map_or_else(|| input.config.to_path_buf(), PathBuf::from);
            source_text(bytes, &shown).map_err(|d| *d)?
        }
    };
    // A byte-order mark is not Nickel; editors hide it, so positions are counted without it.
    let text = text.strip_prefix('\u{feff}').map(str::to_owned).unwrap_or(text);
    builder = builder.add_source_string(text, OsString::from(config.as_os_str()));
    if let Some(contract) = contract {
        builder = builder.add_contract_paths([lib.join(embedded::PREFIX).join(contract)]);
    }
    let mut program = builder.build().map_err(|e| {
        Diagnostic::new(Code::Unreadable, format!("cannot read {}: {e}", config.display()))
    })?;
    // Joining piecewise definitions only saves time: a file that does not parse is left for the
    // evaluation to report.
    if program.compile().is_ok() {
        let mut main = true;
        let joined = program.custom_transform(0, |cache, pos_table, value| {
            if std::mem::take(&mut main) {
                piecewise::for_typecheck(cache, pos_table, &value);
            }
            Ok::<_, Infallible>(piecewise::join_all(value))
        });
        debug_assert!(joined.is_ok(), "the main file was just parsed");
    }
    Ok(program)
}

/// The files a config may read: those of its project, up to the top of the git work tree that
/// holds it (a repository's shared files), and galley's library.
fn read_outside(files: &Files, config: &Path, lib: &Path) -> Option<Diagnostic> {
    let config = absolute(config);
    let dir = config.parent()?;
    // A project directory whose real path cannot be had leaves nothing to compare with: every
    // file must then be the config itself or the library's.
    let top = project_top(dir).unwrap_or_else(|| dir.join("\0unresolved"));
    let lib = std::fs::canonicalize(lib).unwrap_or_else(|_| lib.to_path_buf());
    for name in files.filenames() {
        let path = Path::new(name);
        // Nickel's own modules and in-memory sources are not files.
        if !path.is_absolute() || path == config {
            continue;
        }
        let allowed = std::fs::canonicalize(path).is_ok_and(|real| real.starts_with(&top) || real.starts_with(&lib));
        if !allowed {
            return Some(imports_outside(path, &top));
        }
    }
    None
}

/// G016: the config imports `path`, outside `top` (its [`project_top`]).
fn imports_outside(path: &Path, top: &Path) -> Diagnostic {
    Diagnostic::new(Code::ImportOutside, format!("the config imports {}, which is outside the project ({})", path.display(), top.display()))
        .help("import only files inside the project directory or its git work tree, and galley's library as \"galley/std.ncl\"; copy the file into the project, never link to it")
}

/// The directory a config's files may come from: the real path of the top of the git work tree
/// holding `project_dir`, else of `project_dir` itself.
fn project_top(project_dir: &Path) -> Option<PathBuf> {
    let project = std::fs::canonicalize(project_dir).ok()?;
    Some(project.ancestors().find(|a| a.join(".git").exists()).unwrap_or(&project).to_path_buf())
}

/// The text of a source file, or a finding at the first byte that is not UTF-8 (in the file
/// users know as `shown`).
fn source_text(bytes: Vec<u8>, shown: &Path) -> Result<String, Box<Diagnostic>> {
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let bytes = e.into_bytes();
        let bad = bytes[at];
        let source: Arc<str> = Arc::from(String::from_utf8_lossy(&bytes).as_ref());
        let location = crate::diagnostic::Location::new(shown.to_path_buf(), source, at, at + 1);
        Diagnostic::new(
            Code::NotUtf8,
            format!("byte 0x{bad:02x} at line {}, column {} is not UTF-8", location.start_line, location.start_col),
        )
        .at(Some(location))
        .help("save the file as UTF-8 (an editor's \"save with encoding\"); Latin-1 or UTF-16 text must be converted")
        .into()
    })
}

/// The contract file every `galley.ncl` is checked against.
const PROJECT_CONTRACT: &str = "project-contract.ncl";

/// Evaluate `galley serve`'s operator config (`lang/serve.ncl`'s `Serve` contract applied) and
/// export it as JSON, defaults filled in. The file may import the galley library.
pub fn evaluate_serve_config(config: &Path, lib_root: &Path) -> Result<serde_json::Value, Vec<Diagnostic>> {
    let lib = embedded::materialize(lib_root)
        .map_err(|e| vec![Diagnostic::new(Code::Unreadable, format!("cannot write the galley library under {}: {e}", lib_root.display()))])?;
    let project_dir = config.parent().map(Path::to_path_buf).unwrap_or_default();
    let namer = Namer { project_dir, lib: lib.clone() };
    if !config.is_file() {
        return Err(vec![Diagnostic::new(Code::Unreadable, format!("cannot read {}: no such file", config.display()))
            .help("write the operator config (see docs/previews.md) and pass its path with --config")]);
    }
    let input = Input { config, text: None, lib_root };
    let mut program = build_program(&input, &lib, Some("serve-contract.ncl")).map_err(|d| vec![d])?;
    let value = program.eval_full_for_export().map_err(|e| convert::from_nickel(e, program.files(), &namer))?;
    let text = serialize::to_string(ExportFormat::Json, &value).map_err(|e| {
        let error = nickel_lang_core::error::Error::export_error(program.pos_table().clone(), e);
        convert::from_nickel(error, program.files(), &namer)
    })?;
    Ok(serde_json::from_str(&text).expect("nickel's JSON export is valid JSON"))
}

/// Re-evaluate without the schema and report fields the schema does not know, with suggestions.
fn unknown_fields(input: &Input<'_>, lib: &Path, namer: &Namer) -> Option<Vec<Diagnostic>> {
    let mut program = build_program(input, lib, None).ok()?;
    let value = program.eval_full_for_export().ok()?;
    let files = program.files();
    let spans = spans::index(&value, program.pos_table(), &files, namer);
    let schema = fields::Schema::embedded(input.lib_root).ok()?;
    let found = fields::unknown(schema, &spans);
    (!found.is_empty()).then_some(found)
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Turns Nickel file names into the names users see.
pub(crate) struct Namer {
    project_dir: PathBuf,
    lib: PathBuf,
}

impl Namer {
    fn display(&self, name: &Path) -> PathBuf {
        let abs_project = absolute(&self.project_dir);
        if let Ok(rest) = name.strip_prefix(&self.lib) {
            rest.to_path_buf()
        } else if let Ok(rest) = name.strip_prefix(&abs_project) {
            rest.to_path_buf()
        } else {
            name.to_path_buf()
        }
    }

    /// Whether a file is the user's (not the embedded library, not nickel's stdlib).
    fn is_user(&self, name: &Path) -> bool {
        !name.starts_with(&self.lib) && name.is_absolute()
    }
}

/// Source text and user-facing name of a Nickel file id.
fn file_info(files: &Files, id: nickel_lang_core::files::FileId, namer: &Namer) -> (PathBuf, Arc<str>, bool) {
    let name = PathBuf::from(files.name(id));
    (namer.display(&name), files.clone_source(id), namer.is_user(&name) && !files.is_stdlib(id))
}

/// Evaluate a Nickel expression in the context of the embedded library (it may
/// `import "seccomp/strict.ncl"` and so on) and export it as JSON.
pub fn eval_library_json(lib_root: &Path, expr: &str) -> Result<serde_json::Value, String> {
    let lib = embedded::materialize(lib_root).map_err(|e| format!("cannot write the galley library: {e}"))?;
    let name = lib.join(embedded::PREFIX).join("<expr>.ncl");
    let mut program: Program<CacheImpl> = ProgramBuilder::new()
        .add_import_paths([lib.clone()])
        .add_source_string(expr.to_owned(), OsString::from(name.as_os_str()))
        .build()
        .map_err(|e| format!("{e:?}"))?;
    let namer = Namer { project_dir: lib.clone(), lib };
    let value = program.eval_full_for_export().map_err(|e| {
        let d = convert::from_nickel(e, program.files(), &namer);
        d.first().map(|d| d.message.clone()).unwrap_or_default()
    })?;
    let text = serialize::to_string(ExportFormat::Json, &value).map_err(|e| format!("{e:?}"))?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}
