//! An image's `files` resolved on disk at `check` time, as the build will read them: the source
//! exists, no directory on the way to it is a symbolic link leading out of the project, and a
//! link the build would copy as a link (not the file it points to) is reported.

use std::fs;
use std::path::{Path, PathBuf};

use crate::diagnostic::{Code, Diagnostic};
use crate::lang::SpanIndex;
use crate::model::Image;

/// The most entries of one copied directory looked at for links: the walk is a check, not the
/// build, and stops quietly there.
const MAX_ENTRIES: usize = 20_000;

pub fn run(at: &str, image: &Image, project_dir: &Path, spans: &SpanIndex, out: &mut Vec<Diagnostic>) {
    let Ok(root) = fs::canonicalize(project_dir) else { return };
    for (i, copy) in image.files.iter().enumerate() {
        let field = format!("{at}.files[{i}].src");
        let src = &copy.src;
        // Lexically, as the schema already refused `..`: `./a//b/` is `a/b`, `.` the project.
        let path = src.split('/').filter(|c| !c.is_empty() && *c != ".").fold(root.clone(), |p, c| p.join(c));
        let place = spans.locate_value(&field);
        // Every directory on the way is followed by the build: it must stay in the project.
        let parent = if path == root { root.as_path() } else { path.parent().unwrap_or(&root) };
        let parent_real = match fs::canonicalize(parent) {
            Ok(p) => p,
            Err(_) => {
                out.push(missing(src, place));
                continue;
            }
        };
        if !parent_real.starts_with(&root) {
            out.push(
                Diagnostic::new(Code::SourceEscapes, format!("`{src}` leads out of the project: a directory on its way is a symbolic link to {}", parent_real.display()))
                    .at(place)
                    .help("copy files that live inside the project directory; put the file there instead of linking to it"),
            );
            continue;
        }
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(_) => {
                out.push(missing(src, place));
                continue;
            }
        };
        if meta.file_type().is_symlink() {
            out.push(link(src, &path, &root, place, "it"));
        } else if meta.is_dir()
            && let Some((inner, rel)) = outside_link(&path, &root)
        {
            out.push(link(src, &inner, &root, place, &format!("`{rel}` in it")));
        }
    }
}

fn missing(src: &str, place: Option<crate::diagnostic::Location>) -> Diagnostic {
    Diagnostic::new(Code::MissingSource, format!("`{src}` does not exist in the project directory"))
        .at(place)
        .help("fix the path (it is relative to the directory holding galley.ncl), or create the file")
}

/// A link the build copies as a link: say where it points and what that means in the image.
fn link(src: &str, path: &Path, root: &Path, place: Option<crate::diagnostic::Location>, which: &str) -> Diagnostic {
    let target = fs::read_link(path).map(|t| t.display().to_string()).unwrap_or_default();
    let resolved = fs::canonicalize(path);
    let why = match &resolved {
        Err(_) => "a link to nothing on this machine".to_owned(),
        Ok(real) if !real.starts_with(root) => format!("a link to {}, outside the project", real.display()),
        Ok(_) => "a link".to_owned(),
    };
    Diagnostic::new(Code::SourceLink, format!("`{src}`: {which} is {why} (`{target}`), copied into the image as the link, not the file it points to"))
        .at(place)
        .help("copy the file itself (name the link's target in `src`), or keep the link if the image provides its target")
}

/// The first link under `dir` (sorted walk, at most [`MAX_ENTRIES`]) that leads out of the
/// project or to nothing, with its path relative to `dir`.
fn outside_link(dir: &Path, root: &Path) -> Option<(PathBuf, String)> {
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = 0;
    while let Some(d) = stack.pop() {
        let mut entries: Vec<_> = fs::read_dir(&d).ok()?.filter_map(Result::ok).map(|e| e.path()).collect();
        entries.sort();
        for p in entries.into_iter().rev() {
            seen += 1;
            if seen > MAX_ENTRIES {
                return None;
            }
            let Ok(meta) = fs::symlink_metadata(&p) else { continue };
            if meta.file_type().is_symlink() {
                if !fs::canonicalize(&p).is_ok_and(|real| real.starts_with(root)) {
                    let rel = p.strip_prefix(dir).unwrap_or(&p).display().to_string();
                    return Some((p, rel));
                }
            } else if meta.is_dir() {
                stack.push(p);
            }
        }
    }
    None
}
