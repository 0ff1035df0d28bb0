"""README.md and docs/*.md: every relative link and anchor resolves.

A link is ``[text](target)`` outside code; a relative target must name a file or folder of the
checkout, and its ``#anchor`` (or a bare ``#anchor`` in the same page) must be a heading of that
page, slugged as GitHub does: the heading's text without markup, lower-cased, every character
that is not a letter, digit, space, hyphen or underscore dropped, spaces made hyphens, and a
repeated slug numbered ``-1``, ``-2``... Code names pages and anchors too (``docs/pricing.md#the-charge``
in a docstring or an error message): those must resolve as well.
"""

import re
from collections import Counter

import pytest
from conftest import PROJECT_DIR

PAGES = [PROJECT_DIR / "README.md", *sorted((PROJECT_DIR / "docs").glob("*.md"))]
FENCE = re.compile(r"^ {0,3}(```|~~~)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
LINK = re.compile(r"(?<!!)\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
CODE_REFERENCE = re.compile(r"((?:README|docs/[\w-]+)\.md)#([\w-]+)")
GITHUB_LINE = re.compile(r"L\d+(-L\d+)?\Z")


def prose_lines(text):
    """Yield the lines of a Markdown page that are not inside a fenced code block."""
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            yield line


def slug(heading):
    """Return GitHub's anchor for a heading's text (before numbering repeats)."""
    text = INLINE_CODE.sub(lambda match: match.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text).replace("*", "").lower()
    text = "".join(character for character in text if character.isalnum() or character in " -_")
    return text.replace(" ", "-")


def anchors(page):
    """Return every heading anchor of a Markdown page, repeated slugs numbered as GitHub does."""
    seen = Counter()
    found = set()
    for line in prose_lines(page.read_text(encoding="utf-8")):
        heading = HEADING.match(line)
        if heading:
            base = slug(heading.group(2))
            found.add(f"{base}-{seen[base]}" if seen[base] else base)
            seen[base] += 1
    return found


def links(page):
    """Yield every link target written in a page's prose (inline code left out)."""
    for line in prose_lines(page.read_text(encoding="utf-8")):
        yield from LINK.findall(INLINE_CODE.sub("", line))


def broken(page, target):
    """Return why a relative link of a page does not resolve, or None when it does."""
    path, _, anchor = target.partition("#")
    destination = (page.parent / path).resolve() if path else page
    if not destination.exists():
        return f"{target}: no such file"
    if not destination.is_relative_to(PROJECT_DIR):
        return f"{target}: outside the checkout"
    if not anchor:
        return None
    if destination.suffix != ".md":
        return None if GITHUB_LINE.match(anchor) else f"{target}: an anchor into a file that has no headings"
    return None if anchor in anchors(destination) else f"{target}: no heading with this anchor"


@pytest.mark.parametrize("page", PAGES, ids=[page.relative_to(PROJECT_DIR).as_posix() for page in PAGES])
def test_every_relative_link_and_anchor_of_the_docs_resolves(page):
    relative = [target for target in links(page) if not re.match(r"[a-z][a-z0-9+.-]*:", target)]
    assert [reason for target in relative if (reason := broken(page, target))] == []


def test_every_page_and_anchor_the_code_names_exists():
    sources = [*(PROJECT_DIR / "ziri_images").rglob("*.py"), *(PROJECT_DIR / "tests").rglob("*.py"),
               *(PROJECT_DIR / "bench").rglob("*.py")]
    named = {(source.relative_to(PROJECT_DIR).as_posix(), page, anchor)
             for source in sources for page, anchor in CODE_REFERENCE.findall(source.read_text(encoding="utf-8"))}
    missing = [(source, f"{page}#{anchor}") for source, page, anchor in sorted(named)
               if anchor not in anchors(PROJECT_DIR / page)]
    assert missing == []


@pytest.mark.parametrize(("heading", "anchor"), [
    pytest.param("### `POST /api/images/generations`", "post-apiimagesgenerations", id="code"),
    pytest.param("### Edits: `POST /v1/images/edits`, `POST /api/images/edits`",
                 "edits-post-v1imagesedits-post-apiimagesedits", id="punctuation"),
    pytest.param("### Keys: keys.json", "keys-keysjson", id="dot"),
    pytest.param("## `report` (alias `usage`)", "report-alias-usage", id="parentheses"),
    pytest.param("### What is not offered, because it cannot be bounded",
                 "what-is-not-offered-because-it-cannot-be-bounded", id="comma"),
    pytest.param("### gpt-image-2's per-image figures", "gpt-image-2s-per-image-figures", id="apostrophe"),
    pytest.param("## Errors in [OpenAI's](https://x.example) *SDKs*", "errors-in-openais-sdks", id="link-emphasis"),
])
def test_anchors_are_slugged_as_github_does(heading, anchor):
    assert slug(HEADING.match(heading).group(2)) == anchor


def test_a_repeated_heading_gets_a_numbered_anchor(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# A\n## Errors\n```\n# Errors\n```\n## Errors\n", encoding="utf-8")

    assert anchors(page) == {"a", "errors", "errors-1"}


def test_links_are_read_from_prose_not_code(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("See [a](a.md#x), ![img](i.png) and `[b](b.md)`.\n```\n[c](c.md)\n```\n[d](<d.md> \"t\")\n",
                    encoding="utf-8")

    assert list(links(page)) == ["a.md#x", "d.md"]
