"""`faq learn`: write a question people asked into the tenant's knowledge base.

The FAQ learns a help desk's people from their questions (docs/faq.md, "Learning from use"):
`faq report` lists the questions that got no card or whose card did not help; an admin decides
which article answers each (it becomes one of the article's example questions) or that none
should (it joins the `out_of_scope` list). This writes that decision into the file that holds
the article (or the list), keeping the file's comments and layout (ruamel.yaml's round trip), so
the bot answers it from its next start (the index is built when the configuration loads).

Safe to run twice, by two admins at once, or to kill: a question already there is left alone;
one lock per configuration serialises the read-check-write; the new file is written beside the
old, synced, and renamed over it, so a reader sees the old file or the new one, never half.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from pipelines.config import SwitchboardConfig, TenantConfig
from pipelines.knowledge import MAX_QUESTION, parse_knowledge_file
from pipelines.loader import MAX_CONFIG_BYTES


class LearnError(Exception):
    """What the admin asked cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class Learnt:
    file: Path
    where: str  # "article 'it-vpn-connect'" or "the out-of-scope list"
    added: bool  # False: the question was there already, nothing written
    count: int  # questions there now
    reformatted: bool  # lines of the file other than the new one changed their layout


def lock_for(config_path: Path) -> FileLock:
    """One lock per configuration: a check spans all of a tenant's files."""
    return FileLock(str(config_path.parent / f".{config_path.name}.faq-learn.lock"), timeout=60)


def learn(config: SwitchboardConfig, config_path: Path, tenant_id: str, question: str, *,
          article_id: str | None) -> Learnt:
    """Add `question` to article `article_id`'s examples, or to the out-of-scope list when None.
    `config` must have loaded without problems; the caller holds `lock_for(config_path)`."""
    question = " ".join(question.split())  # one line, as the files hold them
    if not question or len(question) > MAX_QUESTION:
        raise LearnError(f"the question must be 1 to {MAX_QUESTION} characters (it has "
                         f"{len(question)})")
    if any(unicodedata.category(c) == "Cc" for c in question):
        raise LearnError("the question holds a control character: type it as people wrote it")
    tenant = _tenant(config, tenant_id)
    files = [config_path.parent / ref for ref in tenant.knowledge_base_files]
    held = {path: _read(path) for path in files}
    where = f"article {article_id!r}" if article_id else "the out-of-scope list"
    known = _known(held)
    if question.casefold() in known:
        there, path, count = known[question.casefold()]
        if there == where:
            return Learnt(path, where, added=False, count=count, reformatted=False)
        raise LearnError(f"{question!r} is already in {there} ({_rel(path, config_path)}): "
                         f"a question belongs to one place; remove it there first")
    path = _target(held, article_id, tenant, config_path)
    raw, text = held[path]
    count = _add(raw, question, article_id, as_yaml=not _is_json(path))
    new_text = _dump(raw, path)
    _, problems = parse_knowledge_file(_parse(new_text, path))
    if problems:  # e.g. the out-of-scope list already at its limit
        raise LearnError(f"{_rel(path, config_path)} would not load after the change: "
                         f"{problems[0]}")
    if len(new_text.encode("utf-8")) > MAX_CONFIG_BYTES:
        raise LearnError(f"{_rel(path, config_path)} would be over {MAX_CONFIG_BYTES // 1024} "
                         "KB: split it into several files (`knowledge_base` takes a list)")
    _replace(path, new_text)
    kept = set(text.splitlines()) <= set(new_text.splitlines())
    return Learnt(path, where, added=True, count=count, reformatted=not kept)


def _tenant(config: SwitchboardConfig, tenant_id: str) -> TenantConfig:
    try:
        tenant = config.tenant(tenant_id)
    except KeyError:
        raise LearnError(f"unknown tenant {tenant_id!r}: the configuration has "
                         f"{', '.join(t.id for t in config.tenants)}") from None
    if not tenant.knowledge_base_files:
        raise LearnError(f"tenant {tenant_id!r} has no `knowledge_base`: add one to its "
                         "configuration first (docs/faq.md, Configure)")
    return tenant


def _read(path: Path) -> tuple[Any, str]:
    text = path.read_text("utf-8")
    return _parse(text, path), text


def _is_json(path: Path) -> bool:
    return path.suffix.lower() == ".json"  # as the loader reads it


def _parse(text: str, path: Path) -> Any:
    if _is_json(path):
        return json.loads(text)
    return _yaml().load(text)


def _yaml() -> Any:
    from ruamel.yaml import YAML

    yaml = YAML()  # round trip: comments, key order, quotes and block scalars kept
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a long line the admin wrote on one
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def _dump(raw: Any, path: Path) -> str:
    if _is_json(path):
        return json.dumps(raw, indent=2, ensure_ascii=False) + "\n"
    out = io.StringIO()
    _yaml().dump(raw, out)
    return out.getvalue()


def _known(held: dict[Path, tuple[Any, str]]) -> dict[str, tuple[str, Path, int]]:
    """Every example and out-of-scope question of the tenant: where it is, and how many are
    there."""
    known: dict[str, tuple[str, Path, int]] = {}
    for path, (raw, _) in held.items():
        parsed, _problems = parse_knowledge_file(raw)
        for question in parsed.out_of_scope:
            known[question.casefold()] = ("the out-of-scope list", path, len(parsed.out_of_scope))
        for article in parsed.articles:
            for question in article.questions:
                known[question.casefold()] = (f"article {article.id!r}", path,
                                              len(article.questions))
    return known


def _target(held: dict[Path, tuple[Any, str]], article_id: str | None, tenant: TenantConfig,
            config_path: Path) -> Path:
    """The file holding the article; for the out-of-scope list, the first file that has one,
    else the first file."""
    for path, (raw, _) in held.items():
        if article_id is None and "out_of_scope" in raw:
            return path
        if article_id is not None and any(isinstance(a, dict) and a.get("id") == article_id
                                          for a in raw.get("articles") or []):
            return path
    if article_id is None:
        return next(iter(held))
    ids = sorted(a.id for raw, _ in held.values() for a in parse_knowledge_file(raw)[0].articles)
    close = [i for i in ids if article_id.casefold() in i.casefold()][:5]
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise LearnError(f"tenant {tenant.id!r} has no article {article_id!r} in "
                     f"{', '.join(tenant.knowledge_base_files)}{hint}")


def _add(raw: Any, question: str, article_id: str | None, *, as_yaml: bool) -> int:
    """Append the question where it goes; how many are there now."""
    entry: str = question
    if as_yaml:  # double quotes, as the example's files: a question may hold a colon
        from ruamel.yaml.scalarstring import DoubleQuotedScalarString

        entry = DoubleQuotedScalarString(question)
    if article_id is None:
        listed = raw.setdefault("out_of_scope", [])
    else:
        article = next(a for a in raw["articles"]
                       if isinstance(a, dict) and a.get("id") == article_id)
        listed = article.setdefault("questions", [])
    listed.append(entry)
    return len(listed)


def _replace(path: Path, text: str) -> None:
    """Write beside the file, sync, rename over it, sync the folder: the old file or the new."""
    mode = path.stat().st_mode & 0o777
    for left in path.parent.glob(f".{path.name}.*.tmp"):  # a killed run's; the lock is ours
        left.unlink(missing_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    with contextlib.suppress(OSError):  # not every platform opens a folder
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def _rel(path: Path, config_path: Path) -> str:
    try:
        return str(path.relative_to(config_path.parent))
    except ValueError:
        return str(path)
