"""The static checks CI runs with the suite: ruff on everything, mypy --strict on freeim/ (pyproject.toml)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*command):
    return subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing():
    result = run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_finds_nothing_in_freeim():
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


USER_CODE = '''
from freeim import im

async def view() -> None:
    online: bool = im.has_online(1)
    which: dict[int | str, bool] = im.has_online([1, 2])
    message_id: str = await im.asend_message(1, [2], {"text": "hi"}, receipt=True)
    im.send_message(1, [2], "hi", recipt=True)
    reveal_type(im.get_client_nodes)
'''


def test_type_checkers_see_the_helpers_parameters(tmp_path):
    """The twins kept their signatures: a misspelt keyword is an error, has_online answers by its argument."""
    (tmp_path / "user_code.py").write_text(USER_CODE)
    result = run("mypy", "--strict", "--no-incremental", str(tmp_path / "user_code.py"))
    lines = [line.split(": ", 1)[1] for line in result.stdout.splitlines()
             if "user_code.py:" in line and " defined in " not in line]
    # Nothing about the has_online lines (each overload answers its own type), one error, one note.
    assert len(lines) == 2, result.stdout
    assert lines[0].startswith('error: Unexpected keyword argument "recipt"') and "[call-arg]" in lines[0]
    assert lines[1].startswith('note: Revealed type is "def (client_ids: ') and "dict[str, " in lines[1]
