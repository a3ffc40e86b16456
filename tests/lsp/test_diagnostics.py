"""Diagnostics over LSP match `galley check`: codes, messages, ranges (in UTF-16), files."""

import asyncio

from lsprotocol import types
from pytest_lsp import LanguageClient

from conftest import check_json, diagnostics_for, open_doc, replace_all, uri_of, utf16_col

BROKEN = """{
  name = "demo",
  images.app = {},
  sandboxes.app = {
    image = "app", network = 'egress,
    env = { GREETING = "h\u00e9llo \U0001F600" }, ports = [{ container = 8080, host = 70000 }],
  },
}
"""

FIXED = BROKEN.replace("70000", "18080")


async def test_contract_violation_is_reported_then_cleared(client: LanguageClient, tmp_path):
    (tmp_path / "galley.ncl").write_text(BROKEN)
    expected = check_json(tmp_path)
    assert [d["code"] for d in expected] == ["G021"]

    uri = open_doc(client, tmp_path / "galley.ncl", BROKEN)
    got = await diagnostics_for(client, uri, lambda ds: len(ds) > 0)
    assert len(got) == 1
    d = got[0]
    assert d.code == "G021"
    assert d.message == expected[0]["message"] == "port 70000 is out of range"
    assert d.severity == types.DiagnosticSeverity.Error
    # Line 6 (0-based 5); the column counts the emoji as two UTF-16 units.
    line = BROKEN.splitlines()[5]
    chars = line.index("70000")
    assert d.range.start == types.Position(line=5, character=utf16_col(line, chars))
    assert d.range.end == types.Position(line=5, character=utf16_col(line, chars + 5))
    assert expected[0]["start"]["line"] == 6 and expected[0]["start"]["column"] == chars + 1

    # Fix it without saving: the buffer is evaluated, and an empty list clears the error.
    replace_all(client, uri, FIXED, 2)
    assert await diagnostics_for(client, uri, lambda ds: len(ds) == 0) == []


async def test_incremental_edits_are_applied(client: LanguageClient, tmp_path):
    uri = open_doc(client, tmp_path / "galley.ncl", FIXED)
    assert await diagnostics_for(client, uri) == []
    line = FIXED.splitlines()[5]
    at = utf16_col(line, line.index("18080"))
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=types.Position(5, at), end=types.Position(5, at + 5)), text="0"
                )
            ],
        )
    )
    got = await diagnostics_for(client, uri, lambda ds: len(ds) > 0)
    assert [(d.code, d.message) for d in got] == [("G021", "port 0 is out of range")]
    assert got[0].range.start == types.Position(5, at)


async def test_lints_parse_and_type_errors_match_check(client: LanguageClient, tmp_path):
    cases = [
        '{ name = "x", images.i = {}, sandboxes.s = { image = "i", seccomp = \'unconfined } }',
        '{ name = "x", images.i = {, }',
        '{ name = "x", images.i = { base = 1 + "a" } }',
        '{ name = "x", sandboxes.s = { image = "i", prots = [] } }',
    ]
    uri = open_doc(client, tmp_path / "galley.ncl", "{ name = \"x\" }")
    await diagnostics_for(client, uri)
    for version, text in enumerate(cases, start=2):
        (tmp_path / "galley.ncl").write_text(text)
        expected = check_json(tmp_path)
        assert expected, text
        replace_all(client, uri, text, version)
        want = [(e["code"], e["message"], e["start"]["line"] - 1, e["start"]["column"] - 1) for e in expected]
        got = await diagnostics_for(
            client, uri, lambda ds: [(d.code, d.message, d.range.start.line, d.range.start.character) for d in ds] == want
        )
        assert len(got) == len(expected)


async def test_diagnostics_in_imported_files_go_to_those_files(client: LanguageClient, tmp_path):
    sandbox = "{ image = \"i\", network = 'wide }\n"
    (tmp_path / "sandbox.ncl").write_text(sandbox)
    text = '{ name = "x", images.i = {}, sandboxes.s = import "sandbox.ncl" }\n'
    uri = open_doc(client, tmp_path / "galley.ncl", text)
    imported = uri_of(tmp_path / "sandbox.ncl")
    got = await diagnostics_for(client, imported, lambda ds: len(ds) > 0)
    assert got[0].code == "G003"
    assert got[0].range.start == types.Position(0, sandbox.index("'wide"))
    assert list(client.diagnostics[uri]) == []

    # Fix the imported file on disk and save: its diagnostics are cleared.
    (tmp_path / "sandbox.ncl").write_text("{ image = \"i\", network = 'egress }\n")
    client.text_document_did_save(types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri)))
    assert await diagnostics_for(client, imported, lambda ds: len(ds) == 0) == []


async def test_an_infinite_loop_times_out_and_the_server_keeps_answering(client: LanguageClient, tmp_path):
    looping = '{\n  name = "x",\n  sandboxes.s = { image = (let rec f = fun x => f (x + 1) in f 0) },\n}\n'
    uri = open_doc(client, tmp_path / "galley.ncl", looping)

    async def hover_name():
        params = types.HoverParams(text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(1, 3))
        hover = await asyncio.wait_for(client.text_document_hover_async(params), timeout=2)
        assert hover is not None and "Project name" in hover.contents.value

    # While the evaluation loops, requests are answered at once.
    await asyncio.sleep(0.3)
    await hover_name()
    assert uri not in client.diagnostics

    got = await diagnostics_for(client, uri, lambda ds: len(ds) > 0, timeout=25)
    assert [(d.code, d.message) for d in got] == [("G009", "evaluation timed out after 3000 ms")]

    # Still answering afterwards, and recovering when the loop is gone.
    await hover_name()
    replace_all(client, uri, '{ name = "x" }', 2)
    assert await diagnostics_for(client, uri, lambda ds: len(ds) == 0, timeout=25) == []
