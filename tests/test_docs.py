"""The docs stay true to the code: every variable the code reads is in `.env.example`, and
every module is in the README's layout table."""
import re

from bot.config import ROOT

INTERNAL = {"PATH", "PWD", "STARTED_REDIS"}  # the script's own bookkeeping


def read(path: str) -> str:
    return (ROOT / path).read_text()


def test_env_example_lists_every_variable_the_code_reads():
    used = set()
    for path in [p for p in (ROOT / "bot").rglob("*.py")] + [p for p in (ROOT / "web").rglob("*.py")]:
        used |= set(re.findall(r'\bget\("([A-Z][A-Z0-9_]+)"', path.read_text()))
        used |= set(re.findall(r'environ(?:\.get\(|\[)"([A-Z][A-Z0-9_]+)"', path.read_text()))
    for path in ("scripts/run-local.sh", "Procfile"):
        used |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)", read(path)))
    listed = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", read(".env.example"), re.M))
    assert "HOTLINE_REDIS_PORT" in used and "HOTLINE_BIND" in used
    assert sorted(used - listed - INTERNAL) == []


def test_readme_layout_names_every_module():
    layout = read("README.md").split("## Layout", 1)[1].split("\n## ", 1)[0]
    modules = [p for folder in ("bot", "handlers", "web") for p in (ROOT / folder).rglob("*.py")
               if p.name != "__init__.py" or p.parent.name == "web"]
    missing = [str(p.relative_to(ROOT)) for p in modules if f"`{p.name}`" not in layout]
    assert missing == []
