//! `galley lsp`: a language server for `galley.ncl` over stdio.

mod scan;
mod text;
