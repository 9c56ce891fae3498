"""The README's code blocks, as written there: tests run them, so the docs cannot drift from the code."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def snippets(section: str, language: str = "python") -> list[str]:
    """The ``language`` code blocks of the README's ``## section``, in order."""
    text = README.read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return [block.split("\n```", 1)[0] for block in body.split(f"```{language}\n")[1:]]


def by_file(snippet: str) -> dict[str, str]:
    """A snippet made of parts headed ``# <file name>`` (``# settings.py``, ``# urls.py``...), by file name."""
    parts: dict[str, str] = {}
    name = None
    for line in snippet.splitlines():
        if line.startswith("# ") and line.endswith((".py", ".ini")) and " " not in line[2:]:
            name = line[2:]
            parts[name] = ""
        elif name is not None:
            parts[name] += line + "\n"
    return parts
