//! Reading a Containerfile: its stages and what each `FROM` names (after the `ARG`s declared
//! before the first `FROM`), `COPY --from`/`ADD --from` and `RUN --mount=from=` images, `ADD`
//! of a URL, `RUN --mount` options (secrets), and `USER` lines, each with its line number, so
//! that every error and finding can point into the file. Only what galley must pin, rewrite or
//! refuse is read: the rest of each instruction is buildah's.

use std::collections::BTreeMap;
use std::ops::Range;

use crate::domain::Reference;

/// The largest Containerfile galley reads, in bytes.
pub const MAX_CONTAINERFILE: u64 = 1 << 20;

/// What a stage is built on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum From {
    Scratch,
    /// An earlier stage, by index.
    Stage(usize),
    Image(Reference),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub name: Option<String>,
    pub from: From,
    /// Line of the stage's `FROM` (from 1).
    pub line: usize,
    /// The last `USER` of the stage: its value and line.
    pub user: Option<(String, usize)>,
}

/// An image a Containerfile names outside its own stages, and where in the text its name is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUse {
    pub reference: Reference,
    pub line: usize,
    /// Byte range of the name as written (variables unexpanded) in the file.
    pub span: Range<usize>,
}

/// A parsed Containerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Containerfile {
    pub stages: Vec<Stage>,
    /// Every image named outside the stages (`FROM`, `--from=`), in file order.
    pub images: Vec<ImageUse>,
    /// Secret ids `RUN --mount=type=secret` asks for, with the first line of each.
    pub secrets: BTreeMap<String, usize>,
    /// Lines of `ADD` from a URL (not reproducible, and they need network).
    pub add_urls: Vec<usize>,
}

/// An error at a line of the Containerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
    pub help: String,
}

impl Containerfile {
    /// The index of the stage that is built: `target`, else the last.
    pub fn target(&self, target: Option<&str>) -> Result<usize, String> {
        match target {
            None => Ok(self.stages.len() - 1),
            Some(t) => self.stages.iter().position(|s| s.name.as_deref() == Some(t)).ok_or_else(|| {
                let names: Vec<&str> = self.stages.iter().filter_map(|s| s.name.as_deref()).collect();
                format!("the Containerfile has no stage named `{t}` (its named stages: {})", if names.is_empty() { "none".into() } else { names.join(", ") })
            }),
        }
    }

    /// The image a stage ultimately starts from (following earlier stages), `None` for scratch.
    pub fn root_image(&self, mut stage: usize) -> Option<&Reference> {
        loop {
            match &self.stages[stage].from {
                From::Scratch => return None,
                From::Stage(i) => stage = *i,
                From::Image(r) => return Some(r),
            }
        }
    }

    /// The `USER` in effect at the end of `stage` (inherited through earlier stages), if any
    /// line sets one.
    pub fn user(&self, mut stage: usize) -> Option<&(String, usize)> {
        loop {
            if let Some(u) = &self.stages[stage].user {
                return Some(u);
            }
            match &self.stages[stage].from {
                From::Stage(i) => stage = *i,
                _ => return None,
            }
        }
    }

    /// `text` with every outside image name replaced by `pinned(reference)`.
    pub fn rewrite(&self, text: &str, pinned: impl Fn(&Reference) -> String) -> String {
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for u in &self.images {
            out.push_str(&text[at..u.span.start]);
            out.push_str(&pinned(&u.reference));
            at = u.span.end;
        }
        out.push_str(&text[at..]);
        out
    }
}

/// One instruction: its logical text (continuations joined) and, for each byte of it, the byte
/// offset in the file it came from.
struct Logical {
    line: usize,
    text: String,
    offsets: Vec<usize>,
}

/// Parse `text`; `args` are the build arguments given for the build.
pub fn parse(text: &str, args: &BTreeMap<String, String>) -> Result<Containerfile, ParseError> {
    let mut cf = Containerfile { stages: Vec::new(), images: Vec::new(), secrets: BTreeMap::new(), add_urls: Vec::new() };
    let mut globals: BTreeMap<String, String> = BTreeMap::new();
    for ins in logical_lines(text) {
        let err = |message: String, help: &str| ParseError { line: ins.line, message, help: help.into() };
        let trimmed = ins.text.trim_start();
        let (word, rest) = trimmed.split_once(char::is_whitespace).unwrap_or((trimmed, ""));
        let rest_at = ins.text.len() - rest.len();
        let keyword = word.to_ascii_uppercase();
        if cf.stages.is_empty() && keyword != "FROM" && keyword != "ARG" {
            return Err(err(format!("`{word}` before the first FROM"), "only ARG may come before the first FROM"));
        }
        match keyword.as_str() {
            "ARG" if cf.stages.is_empty() => {
                for decl in rest.split_whitespace() {
                    let (name, default) = decl.split_once('=').map(|(n, d)| (n, Some(unquote(d)))).unwrap_or((decl, None));
                    let value = args.get(name).cloned().or(default.map(str::to_owned)).unwrap_or_default();
                    globals.insert(name.to_owned(), value);
                }
            }
            "FROM" => {
                let tokens = tokens(rest, rest_at);
                let mut words = tokens.iter().filter(|(w, _)| !w.starts_with("--"));
                let Some((image, range)) = words.next() else {
                    return Err(err("FROM names no image".into(), "write `FROM registry.example.com/repo:tag` or `FROM scratch`"));
                };
                let name = match (words.next(), words.next(), words.next()) {
                    (None, ..) => None,
                    (Some((as_, _)), Some((n, _)), None) if as_.eq_ignore_ascii_case("as") => Some(n.to_ascii_lowercase()),
                    _ => return Err(err(format!("cannot read `FROM {}`", rest.trim()), "write `FROM image` or `FROM image AS name`")),
                };
                let expanded = expand(image, &globals).map_err(|m| err(m, "declare the variable with ARG before the first FROM, or give it in `build_args`"))?;
                let from = if expanded.eq_ignore_ascii_case("scratch") {
                    From::Scratch
                } else if let Some(i) = cf.stages.iter().position(|s| s.name.as_deref() == Some(&expanded.to_ascii_lowercase())) {
                    From::Stage(i)
                } else {
                    let reference = Reference::parse(&expanded).map_err(|why| {
                        err(
                            format!("FROM `{expanded}` cannot be pinned: {why}"),
                            "name a stage of this file, `scratch`, or a fully qualified image such as registry.example.com/library/debian:12",
                        )
                    })?;
                    cf.images.push(ImageUse { reference: reference.clone(), line: ins.line, span: span(&ins, range) });
                    From::Image(reference)
                };
                cf.stages.push(Stage { name, from, line: ins.line, user: None });
            }
            "COPY" | "ADD" => {
                let tokens = tokens(rest, rest_at);
                for (t, range) in &tokens {
                    if let Some(v) = t.strip_prefix("--from=") {
                        external(&mut cf, &ins, v, range.start + "--from=".len()..range.end).map_err(|m| err(m, FROM_HELP))?;
                    }
                }
                if keyword == "ADD" {
                    let sources = tokens.iter().filter(|(t, _)| !t.starts_with("--")).count().saturating_sub(1);
                    if tokens.iter().filter(|(t, _)| !t.starts_with("--")).take(sources).any(|(t, _)| is_url(t)) {
                        cf.add_urls.push(ins.line);
                    }
                }
            }
            "RUN" => {
                for (t, range) in tokens(rest, rest_at).iter().take_while(|(t, _)| t.starts_with("--")) {
                    if let Some(opts) = t.strip_prefix("--mount=") {
                        mount(&mut cf, &ins, opts, range.start + "--mount=".len()).map_err(|(m, h)| err(m, h))?;
                    } else if t.starts_with("--network") || t.starts_with("--security") {
                        return Err(err(
                            format!("`RUN {t}` is not allowed"),
                            "a build's network is set by `containerfile.network`, and steps never run with extra privileges",
                        ));
                    }
                }
            }
            "USER" => {
                if let Some(stage) = cf.stages.last_mut() {
                    stage.user = Some((rest.trim().to_owned(), ins.line));
                }
            }
            "ONBUILD" => {
                return Err(err("ONBUILD is not supported".into(), "run the steps in the stage that needs them"));
            }
            _ => {}
        }
    }
    if cf.stages.is_empty() {
        return Err(ParseError { line: 1, message: "the Containerfile has no FROM".into(), help: "start the build with `FROM scratch` or `FROM registry/repo:tag`".into() });
    }
    Ok(cf)
}

const FROM_HELP: &str = "name a stage of this file, its index, or a fully qualified image such as registry.example.com/library/debian:12";

/// `--from=v` of COPY, ADD or a mount: a stage (by name or index), or an outside image to pin.
fn external(cf: &mut Containerfile, ins: &Logical, v: &str, range: Range<usize>) -> Result<(), String> {
    let is_stage = cf.stages.iter().any(|s| s.name.as_deref() == Some(&v.to_ascii_lowercase()))
        || v.parse::<usize>().is_ok_and(|i| i < cf.stages.len());
    if is_stage {
        return Ok(());
    }
    let reference = Reference::parse(v).map_err(|why| format!("--from=`{v}` is neither a stage of this file nor an image galley can pin: {why}"))?;
    cf.images.push(ImageUse { reference, line: ins.line, span: span(ins, &range) });
    Ok(())
}

/// One `--mount=` of a RUN; its options start at `at` in the logical line.
fn mount(cf: &mut Containerfile, ins: &Logical, opts: &str, at: usize) -> Result<(), (String, &'static str)> {
    let mut kind = "bind";
    let mut id = None;
    let mut target = None;
    let mut offset = at;
    let mut from = None;
    for opt in opts.split(',') {
        let (k, v) = opt.split_once('=').unwrap_or((opt, ""));
        match k {
            "type" => kind = v,
            "id" => id = Some(v),
            "target" | "dst" | "destination" => target = Some(v),
            "from" => from = Some((v, offset + k.len() + 1..offset + opt.len())),
            _ => {}
        }
        offset += opt.len() + 1;
    }
    match kind {
        "bind" | "tmpfs" => {}
        "secret" => {
            let id = id.or_else(|| target.and_then(|t| t.rsplit('/').next())).filter(|i| !i.is_empty()).ok_or((
                "a secret mount needs an id".to_owned(),
                "write `RUN --mount=type=secret,id=NAME ...` and declare NAME in `containerfile.secrets`",
            ))?;
            cf.secrets.entry(id.to_owned()).or_insert(ins.line);
        }
        "cache" => {
            return Err((
                "`RUN --mount=type=cache` is not allowed: a cache outlives the build and is shared between builds".into(),
                "copy what the step needs into the image, or fetch it in a step with network",
            ));
        }
        other => return Err((format!("`RUN --mount=type={other}` is not supported"), "use type=bind, type=tmpfs or type=secret")),
    }
    if let Some((v, range)) = from {
        external(cf, ins, v, range).map_err(|m| (m, FROM_HELP))?;
    }
    Ok(())
}

fn is_url(s: &str) -> bool {
    let s = s.to_ascii_lowercase();
    s.starts_with("http://") || s.starts_with("https://") || s.starts_with("git@") || s.starts_with("git://")
}

/// The file byte range of a range of `ins`'s logical text.
fn span(ins: &Logical, range: &Range<usize>) -> Range<usize> {
    let start = ins.offsets[range.start];
    let end = ins.offsets[range.end - 1] + 1;
    start..end
}

/// Whitespace-separated words of `s` with their byte ranges, `s` starting at `base` in the
/// logical line.
fn tokens(s: &str, base: usize) -> Vec<(String, Range<usize>)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in s.char_indices().chain(std::iter::once((s.len(), ' '))) {
        match (c.is_whitespace(), start) {
            (true, Some(st)) => {
                out.push((s[st..i].to_owned(), base + st..base + i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    out
}

fn unquote(s: &str) -> &str {
    s.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(s)
}

/// `$NAME`, `${NAME}`, `${NAME:-default}` and `${NAME:+alternative}` from `vars`.
fn expand(s: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        let (expr, after) = if let Some(r) = rest.strip_prefix('{') {
            let end = r.find('}').ok_or_else(|| format!("unclosed `${{` in `{s}`"))?;
            (&r[..end], &r[end + 1..])
        } else {
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        };
        let (name, op) = match expr.find(":-").or_else(|| expr.find(":+")) {
            Some(p) => (&expr[..p], Some((&expr[p..p + 2], &expr[p + 2..]))),
            None => (expr, None),
        };
        let value = vars.get(name).filter(|v| !v.is_empty());
        match (op, value) {
            (Some((":-", d)), None) => out.push_str(d),
            (Some((":+", a)), Some(_)) => out.push_str(a),
            (Some((":+", _)), None) => {}
            (_, Some(v)) => out.push_str(v),
            (None, None) if vars.contains_key(name) => {}
            (_, None) => return Err(format!("`${name}` is not declared")),
        }
        rest = after;
    }
    out.push_str(rest);
    Ok(out)
}

/// The instructions of `text`: comments and blank lines dropped, `\` continuations joined.
fn logical_lines(text: &str) -> Vec<Logical> {
    let mut out = Vec::new();
    let mut cur: Option<Logical> = None;
    let mut offset = 0;
    for (n, raw) in text.split_inclusive('\n').enumerate() {
        let line_start = offset;
        offset += raw.len();
        let body = raw.trim_end_matches(['\n', '\r']);
        let trimmed = body.trim_start();
        if trimmed.starts_with('#') || (trimmed.is_empty() && cur.is_none()) {
            continue;
        }
        let (content, continues) = match body.trim_end().strip_suffix('\\') {
            Some(c) => (c, true),
            None => (body, false),
        };
        let l = cur.get_or_insert_with(|| Logical { line: n + 1, text: String::new(), offsets: Vec::new() });
        if !l.text.is_empty() {
            l.text.push(' ');
            l.offsets.push(line_start);
        }
        l.text.push_str(content);
        l.offsets.extend((0..content.len()).map(|i| line_start + i));
        if !continues {
            out.extend(cur.take());
        }
    }
    out.extend(cur);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# syntax comment\nARG TAG=1\nARG REG\nFROM ${REG}/galley/busybox:${TAG} AS build\nRUN --mount=type=secret,id=token \\\n    cat /run/secrets/token > /dev/null\nFROM scratch\nCOPY --from=build /bin/busybox /bin/busybox\nCOPY --from=127.0.0.1:5000/other/img:2 /x /x\nADD https://example.invalid/f /f\nUSER 1000\n";

    #[test]
    fn stages_images_secrets_and_urls_are_found_with_their_lines() {
        let args = BTreeMap::from([("REG".to_owned(), "127.0.0.1:5000".to_owned())]);
        let cf = parse(FILE, &args).unwrap();
        assert_eq!(cf.stages.len(), 2);
        assert_eq!(cf.stages[0].name.as_deref(), Some("build"));
        assert_eq!(cf.stages[0].line, 4);
        assert_eq!(cf.stages[1].from, From::Scratch);
        assert_eq!(cf.stages[1].user, Some(("1000".into(), 11)));
        let refs: Vec<String> = cf.images.iter().map(|u| u.reference.to_string()).collect();
        assert_eq!(refs, ["127.0.0.1:5000/galley/busybox:1", "127.0.0.1:5000/other/img:2"]);
        assert_eq!(&FILE[cf.images[0].span.clone()], "${REG}/galley/busybox:${TAG}");
        assert_eq!(&FILE[cf.images[1].span.clone()], "127.0.0.1:5000/other/img:2");
        assert_eq!(cf.secrets, BTreeMap::from([("token".to_owned(), 5)]));
        assert_eq!(cf.add_urls, [10]);
        let rewritten = cf.rewrite(FILE, |r| format!("pinned-{}", r.repository.replace('/', "-")));
        assert!(rewritten.contains("FROM pinned-galley-busybox AS build\n"), "{rewritten}");
        assert!(rewritten.contains("COPY --from=pinned-other-img /x /x\n"), "{rewritten}");
        assert_eq!(cf.target(Some("build")), Ok(0));
        assert!(cf.target(Some("nope")).unwrap_err().contains("build"));
        assert_eq!(cf.root_image(1), None);
    }

    #[test]
    fn errors_name_their_line() {
        let e = parse("ARG X\n\nFROM debian:12\n", &BTreeMap::new()).unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("debian:12"), "{e:?}");
        let e = parse("FROM scratch\nRUN --mount=type=cache,target=/c true\n", &BTreeMap::new()).unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse("RUN true\n", &BTreeMap::new()).unwrap_err();
        assert_eq!(e.line, 1);
        let e = parse("FROM $NOPE/x:1\n", &BTreeMap::new()).unwrap_err();
        assert!(e.message.contains("NOPE"), "{e:?}");
        assert!(parse("# only a comment\n", &BTreeMap::new()).is_err());
    }
}
