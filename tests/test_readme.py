"""The README says what the code has: its vocabulary table is the registries', its layout the tree's."""
import re
from pathlib import Path

from specc.spec.vocabulary import vocabulary_markdown

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()


def test_vocabulary_table_is_the_registries():
    shown = re.search(r"<!-- vocabulary:[^\n]*-->\n(.*?)<!-- /vocabulary -->", README, re.S)
    assert shown is not None
    assert shown[1] == vocabulary_markdown(), "run `specc vocabulary` and paste its table into the README"


def test_layout_lists_every_module_and_folder():
    layout = re.search(r"## Layout.*?```\n(.*?)```", README, re.S)[1]
    listed = set(re.findall(r"\b([a-z_]+(?:\.py|/))", layout))
    package = ROOT / "specc"
    present = {p.name + ("/" if p.is_dir() else "") for p in package.iterdir()
               if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists())) and not p.name.startswith("_")}
    assert present <= listed, f"not in the README's layout: {sorted(present - listed)}"
    gone = [name for name in listed if not (package / name).exists() and not (ROOT / name).exists()]
    assert not gone, f"in the README's layout but not in the tree: {gone}"
