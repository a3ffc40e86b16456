"""Shared set-up for the language-server tests: a galley binary, a private GALLEY_HOME, and a
client connected to `galley lsp` over stdio (pytest-lsp)."""

import asyncio
import json
import os
import pathlib
import subprocess
import sys
import tempfile

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

ROOT = pathlib.Path(__file__).resolve().parents[2]
GALLEY = os.environ.get("GALLEY_BIN") or str(ROOT / "target" / "debug" / "galley")
HOME = tempfile.mkdtemp(prefix="galley-lsp-home-")
ENV = {**os.environ, "GALLEY_HOME": HOME, "NO_COLOR": "1"}


@pytest_lsp.fixture(
    config=ClientServerConfig(server_command=[GALLEY, "lsp"], server_env=ENV),
)
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(),
            initialization_options={"evalTimeoutMs": 3000},
        )
    )
    yield
    await lsp_client.shutdown_session()


def uri_of(path: pathlib.Path) -> str:
    return path.resolve().as_uri()


def open_doc(client: LanguageClient, path: pathlib.Path, text: str, version: int = 1) -> str:
    uri = uri_of(path)
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="nickel", version=version, text=text)
        )
    )
    return uri


def replace_all(client: LanguageClient, uri: str, text: str, version: int) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )


async def diagnostics_for(client: LanguageClient, uri: str, predicate=lambda ds: True, timeout: float = 20.0):
    """Wait until the diagnostics published for `uri` satisfy `predicate`; return them."""

    async def wait():
        while True:
            if uri in client.diagnostics and predicate(client.diagnostics[uri]):
                return list(client.diagnostics[uri])
            await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)

    return await asyncio.wait_for(wait(), timeout)


def check_json(project: pathlib.Path) -> list:
    """`galley check --format json` on a project on disk."""
    out = subprocess.run(
        [GALLEY, "-C", str(project), "--format", "json", "check"],
        env=ENV, capture_output=True, text=True, check=False,
    )
    return json.loads(out.stdout)["diagnostics"]


def utf16_col(line: str, chars: int) -> int:
    """The UTF-16 column of character column `chars` (0-based) of `line`."""
    return len(line[:chars].encode("utf-16-le")) // 2
