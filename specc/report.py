"""What `specc validate` prints: located text for people, JSON for tools, GitHub Actions workflow commands (each
problem an annotation on the pull request's line) and SARIF 2.1.0 for code-scanning dashboards."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePath
from typing import Callable
from urllib.parse import quote

from .errors import Problem, dotted

FORMATS = ("text", "json", "github", "sarif")


@dataclass
class FileResult:
    file: str
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Rule:
    """A kind of problem, for tools that group and filter them (SARIF's rules)."""
    id: str
    description: str
    matches: Callable[[Problem], bool]


def _says(pattern: str) -> Callable[[Problem], bool]:
    regex = re.compile(pattern)
    return lambda problem: bool(regex.search(problem.message))


def _shape_problem(problem: Problem) -> bool:
    """A layer or model that cannot take the inputs it is given: its message starts with the layer type (as
    the compiler says it) or names the layer or model."""
    from .layers import LAYERS
    first = re.match(r"[A-Za-z0-9_]+", problem.message)
    return (first is not None and first[0] in LAYERS.names()) or \
        bool(re.match(r"(layer|model) '[^']*' (was built for|takes|expects|has \d+ outputs)", problem.message))


def _in_data_file(problem: Problem) -> bool:
    """Said of a data file the spec names: its message starts with the file, as the data checks say it."""
    return problem.path[:2] in (("data", "train"), ("data", "validation")) and ": " in problem.message


# The first rule that matches a problem is its kind; the order matters where two could match.
RULES = (
    Rule("unreadable-file", "The file cannot be read as a spec: missing, not a regular file, too large, not UTF-8, "
                            "empty, or not a mapping",
         lambda p: (p.line is None and not p.path)
         or _says(r"^(the file is empty|a spec is a mapping|is not UTF-8)")(p)),
    Rule("syntax", "Not valid YAML or JSON, or YAML a spec does not allow (tags, keys that are not names, deep "
                   "nesting, aliases that expand without end)",
         _says(r"^(invalid (YAML|JSON)|YAML tag|YAML aliases|a key must be)|nested more than")),
    Rule("duplicate-key", "A mapping gives the same key twice", _says(r"^duplicate key")),
    Rule("unknown-key", "A key the format does not have here", _says(r"^unknown key")),
    Rule("missing-key", "A required key is missing", _says(r"^missing (required key|`type:`)")),
    Rule("cycle", "Layers, models, wrappers or imports that lead back to themselves",
         _says(r"form a cycle|^cycle|calls itself|cannot wrap itself|wrap each other|leads back to")),
    Rule("unused", "An input or layer that reaches no output, or a layer defined and never called",
         _says(r"reaches no output|does not reach any output|defined but never called")),
    Rule("name-clash", "A name given twice, or an output listed twice",
         _says(r"is already (the name of|used by)|is listed twice")),
    Rule("unknown-name", "A name that is not defined: a layer type, tensor, layer, model, optimizer, loss, metric, "
                         "input or output",
         _says(r"^unknown [a-z ]+ '|is not one of|^no layer or model named|is not a model (input|output)|"
               r"defines no model")),
    Rule("shape", "A layer or model that cannot take the shapes or dtypes of its inputs", _shape_problem),
    Rule("data", "The data a spec names: a missing .npz file or array, an array of the wrong shape, dtype or "
                 "number of rows", _in_data_file),
    Rule("invalid-value", "A value of the wrong kind or out of range", lambda p: True),
)


def rule_of(problem: Problem) -> Rule:
    return next(rule for rule in RULES if rule.matches(problem))


def report(results: list[FileResult], fmt: str) -> tuple[str, str]:
    """(standard output, standard error) of `specc validate` in the format `fmt` (one of FORMATS)."""
    bad = sum(not r.ok for r in results)
    problems = sum(len(r.problems) for r in results)
    verdict = f"{problems} problem(s) in {bad} of {len(results)} file(s)" if bad else f"{len(results)} file(s) valid"
    if fmt == "json":
        return json.dumps([{"file": r.file, "ok": r.ok, "problems": [p.as_dict() for p in r.problems]}
                           for r in results], indent=2) + "\n", ""
    if fmt == "sarif":
        return json.dumps(sarif(results), indent=2) + "\n", ""
    if fmt == "github":
        return "".join(github_command(p) + "\n" for r in results for p in r.problems), verdict + "\n"
    said = "".join(str(p) + "\n" for r in results for p in r.problems)
    return ("", said + verdict + "\n") if bad else (verdict + "\n", "")


# -- GitHub Actions --------------------------------------------------------------------------------------------

def _command_data(text: str) -> str:
    """A workflow command's message: '%', CR and LF escaped, as GitHub's toolkit does."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _command_property(text: str) -> str:
    """A workflow command's property value: also ':' and ',', which separate properties."""
    return _command_data(text).replace(":", "%3A").replace(",", "%2C")


def github_command(problem: Problem) -> str:
    """`::error file=F,line=L,col=C,title=T::message`: GitHub shows it on that line of the pull request."""
    where = {"file": problem.file, "line": problem.line, "col": problem.column,
             "title": f"specc: {dotted(problem.path)}" if problem.path else "specc"}
    properties = ",".join(f"{k}={_command_property(str(v))}" for k, v in where.items() if v is not None)
    return f"::error {properties}::{_command_data(problem.message)}"


# -- SARIF 2.1.0 -------------------------------------------------------------------------------------------------

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"


def _uri(file: str) -> str:
    """A file as a URI reference: relative paths stay relative (code scanning resolves them against the
    repository), absolute ones become file: URIs."""
    path = PurePath(file)
    if path.is_absolute():
        return Path(file).as_uri()
    return quote(path.as_posix())


def sarif(results: list[FileResult]) -> dict:
    """A SARIF 2.1.0 log of one run: one result per problem, its rule the kind of problem."""
    index = {rule.id: i for i, rule in enumerate(RULES)}
    found = []
    for result in results:
        for problem in result.problems:
            rule = rule_of(problem)
            location: dict = {"artifactLocation": {"uri": _uri(problem.file or result.file)}}
            if problem.line is not None:
                location["region"] = {"startLine": problem.line, "startColumn": problem.column or 1}
            text = f"{dotted(problem.path)}: {problem.message}" if problem.path else problem.message
            found.append({"ruleId": rule.id, "ruleIndex": index[rule.id], "level": "error", "message": {"text": text},
                          "locations": [{"physicalLocation": location}]})
    driver = {"name": "specc", "version": metadata.version("specc"),
              "rules": [{"id": rule.id, "shortDescription": {"text": rule.description},
                         "defaultConfiguration": {"level": "error"}} for rule in RULES]}
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0",
            "runs": [{"tool": {"driver": driver}, "columnKind": "unicodeCodePoints", "results": found}]}
