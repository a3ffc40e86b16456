"""Hover and completion from the schema's documentation."""

from lsprotocol import types
from pytest_lsp import LanguageClient

from conftest import diagnostics_for, open_doc

TEXT = """let galley = import "galley/std.ncl" in
{
  name = "demo",
  images.app = { base = "scratch" },
  sandboxes.app = {
    image = "app",
    network = 'none,
    resources = { memory = "1g" },

  },
}
"""


def where(text: str, needle: str, offset: int = 0) -> types.Position:
    for n, line in enumerate(text.splitlines()):
        if needle in line:
            return types.Position(line=n, character=line.index(needle) + offset)
    raise AssertionError(needle)


def doc_id(uri: str) -> types.TextDocumentIdentifier:
    return types.TextDocumentIdentifier(uri=uri)


async def hover(client, uri, pos):
    return await client.text_document_hover_async(types.HoverParams(text_document=doc_id(uri), position=pos))


async def complete(client, uri, pos):
    result = await client.text_document_completion_async(
        types.CompletionParams(text_document=doc_id(uri), position=pos)
    )
    items = result.items if isinstance(result, types.CompletionList) else result
    return [i.label for i in items]


async def test_hover_shows_schema_docs_and_types(client: LanguageClient, tmp_path):
    uri = open_doc(client, tmp_path / "galley.ncl", TEXT)
    h = await hover(client, uri, where(TEXT, "network", 2))
    assert h is not None
    assert "'isolated" in h.contents.value and "loopback only" in h.contents.value
    assert h.range.start == where(TEXT, "network")
    h = await hover(client, uri, where(TEXT, "memory", 1))
    assert "Memory limit" in h.contents.value
    h = await hover(client, uri, where(TEXT, "base"))
    assert "scratch" in h.contents.value
    # Not a schema field: a sandbox's name.
    assert await hover(client, uri, where(TEXT, "sandboxes.app", 11)) is None
    await diagnostics_for(client, uri)


async def test_completion_offers_the_fields_of_the_record_at_the_cursor(client: LanguageClient, tmp_path):
    uri = open_doc(client, tmp_path / "galley.ncl", TEXT)
    blank = types.Position(line=TEXT.splitlines().index(""), character=4)
    labels = await complete(client, uri, blank)
    assert labels == [
        "image", "trust", "command", "env", "ports", "network", "secrets", "seccomp",
        "capabilities", "user", "read_only", "tmpfs", "volumes", "resources",
    ]
    labels = await complete(client, uri, where(TEXT, "memory"))
    assert labels == ["memory", "cpus", "pids", "nofile", "nproc"]
    labels = await complete(client, uri, where(TEXT, "scratch", -1))
    assert labels == []
    labels = await complete(client, uri, types.Position(line=2, character=2))
    assert labels == ["name", "registries", "images", "sandboxes"]


async def test_completion_offers_enum_values_and_capabilities(client: LanguageClient, tmp_path):
    text = TEXT.replace("'none", "'").replace("\n\n", '\n    capabilities = ["NET_"],\n')
    uri = open_doc(client, tmp_path / "galley.ncl", text)
    assert await complete(client, uri, where(text, "'", 1)) == ["'none", "'isolated", "'egress"]
    caps = await complete(client, uri, where(text, "NET_", 4))
    assert "NET_BIND_SERVICE" in caps and "SYS_ADMIN" in caps
