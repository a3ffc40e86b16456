//! `galley show`: the resolved config as canonical JSON, the input of every later stage.

use std::process::ExitCode;

use crate::project;
use crate::settings::Settings;

pub fn run(settings: &Settings) -> ExitCode {
    let loaded = match project::load(settings, None) {
        Ok(loaded) => loaded,
        Err(diagnostics) => return super::render::report(settings, &diagnostics, true),
    };
    if loaded.has_errors() {
        return super::render::report(settings, &loaded.diagnostics, true);
    }
    let text = crate::canonical::to_string_pretty(&loaded.project);
    println!("{text}");
    ExitCode::SUCCESS
}
