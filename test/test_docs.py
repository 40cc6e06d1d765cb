"""The documentation cannot rot silently: every relative link and ``#anchor`` in README.md and
docs/*.md resolves (anchors by GitHub's rules), the README stays short, and its pictures small.

Pure Python: no ROS, no PyTorch.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 200
IMAGE_MAX_BYTES = 1_000_000

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# [text](target "title") and ![alt](target); the target may be wrapped in <...>
_INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*(<[^>]*>|[^)\s]*)(?:\s+\"[^\"]*\")?\s*\)")
_REF_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
_HTML_REF = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*\"([^\"]*)\"", re.IGNORECASE)
_HTML_ID = re.compile(r"<[a-z]+\b[^>]*?\b(?:id|name)\s*=\s*\"([^\"]*)\"", re.IGNORECASE)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _prose_lines(text: str) -> list[tuple[int, str]]:
    """``(line number, line)`` of the lines outside fenced code blocks."""
    out, fence = [], None
    for number, line in enumerate(text.splitlines(), 1):
        m = _FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)
            continue
        if fence is not None:
            closing = line.strip()
            if m and closing == closing[0] * len(closing) and closing[0] == fence[0] and len(closing) >= len(fence):
                fence = None
            continue
        out.append((number, line))
    return out


def _rendered_text(heading: str) -> str:
    """A heading's text as GitHub renders it: code spans keep their content, links and
    images their text, emphasis markers and HTML tags go."""
    text = _CODE_SPAN.sub(lambda m: m.group(2).strip(), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text)
    text = re.sub(r"(\*+|~~)", "", text)
    text = re.sub(r"(?<![\w])_+|_+(?![\w])", "", text)  # _emphasis_, not snake_case
    return text


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped except hyphens and
    underscores, each space a hyphen."""
    text = _rendered_text(heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor a Markdown file defines: its headings' slugs (a repeated slug gets -1,
    -2, ... as on GitHub) and explicit HTML ``id``/``name`` attributes."""
    seen: dict[str, int] = {}
    found: set[str] = set()

    def add(heading: str) -> None:
        base = slug = github_slug(heading)
        while slug in seen:
            seen[base] += 1
            slug = f"{base}-{seen[base]}"
        seen[slug] = 0
        found.add(slug)

    previous = ""
    for _, line in _prose_lines(text):
        m = _ATX.match(line)
        if m:
            add(m.group(2) or "")
        elif _SETEXT.match(line) and previous.strip() and not previous.lstrip().startswith(("|", ">", "-", "*")):
            add(previous.strip())
        found.update(_HTML_ID.findall(line))
        previous = line if not m else ""
    return found


def links(text: str) -> list[tuple[int, str]]:
    """``(line number, target)`` of every link and image outside code."""
    out = []
    for number, line in _prose_lines(text):
        prose = _CODE_SPAN.sub("", line)
        targets = [m.group(1) for m in _INLINE_LINK.finditer(prose)]
        targets += _HTML_REF.findall(prose)
        m = _REF_DEF.match(prose)
        if m:
            targets.append(m.group(1))
        out += [(number, t.strip("<>")) for t in targets]
    return out


def broken_links(path: Path) -> list[str]:
    """What is wrong with the relative links of one Markdown file (empty: nothing)."""
    problems = []
    for number, target in links(path.read_text(encoding="utf-8")):
        if not target or _SCHEME.match(target) or target.startswith("//"):
            continue  # absolute URLs are not checked (no network in tests)
        where, _, anchor = target.partition("#")
        dest = (path.parent / unquote(where)).resolve() if where else path
        if not dest.exists():
            problems.append(f"{path.name}:{number}: {target}: {where} does not exist")
            continue
        if anchor and dest.suffix == ".md" and unquote(anchor) not in anchors(dest.read_text(encoding="utf-8")):
            problems.append(f"{path.name}:{number}: {target}: no heading with anchor #{anchor} in {dest.name}")
    return problems


DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_and_anchors_resolve(path):
    assert broken_links(path) == []


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move details to docs/"


def test_doc_images_are_small():
    images = sorted((ROOT / "docs" / "images").glob("*"))
    assert images, "docs/images/ holds the README's picture"
    for image in images:
        assert image.stat().st_size <= IMAGE_MAX_BYTES, f"{image.name}: {image.stat().st_size} bytes"


def test_github_slugs():
    assert github_slug("Speed (GPU)") == "speed-gpu"
    assert github_slug("`d_model` 128: the bar") == "d_model-128-the-bar"
    assert github_slug("SAM 2.1's 3 candidate masks") == "sam-21s-3-candidate-masks"
    assert github_slug("Where the re-runs lose: the memory, not single frames") == (
        "where-the-re-runs-lose-the-memory-not-single-frames"
    )
    assert github_slug("**Bold** and [a link](x.md) → here") == "bold-and-a-link--here"
    assert github_slug("_emphasis_ and snake_case") == "emphasis-and-snake_case"


def test_the_checker_finds_broken_links_and_anchors(tmp_path):
    (tmp_path / "other.md").write_text("# Other\n\n## Same\n\n## Same\n\nSetext title\n---\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n## Intro\n\n"
        "[ok](other.md#same-1) [ok](#intro) [ok](other.md#setext-title) [ok](https://example.com/x#y)\n"
        "![missing picture](images/none.png) [bad file](nowhere.md) [bad anchor](other.md#same-2)\n"
        "[bad local anchor](#outro) `[in code](ignored.md)`\n\n"
        "```\n[in a fence](ignored.md)\n```\n\n[ref]: missing-ref.md\n"
    )
    problems = broken_links(page)
    assert [p.split(": ")[1] for p in problems] == [
        "images/none.png",
        "nowhere.md",
        "other.md#same-2",
        "#outro",
        "missing-ref.md",
    ], problems
