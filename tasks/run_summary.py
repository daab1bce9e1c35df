"""A publish's Prefect artifacts: a table (counts, eval) and a markdown run summary (the ID
diff, then the files added, removed and failed, by name, capped) for the run's page."""

from __future__ import annotations

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from ace_index.storage.build.audit import run_files
from ace_index.storage.store import open_store

FILES_SHOWN = 20  # files of each kind the markdown names (`ace audit --json` lists all)


def publish_artifacts(store: str, m: dict) -> None:
    """The artifacts of the version ``m`` (its manifest) just published in ``store``."""
    key = f"ace-{open_store(store).key}-{m['version']}"
    rows = [{"metric": k, "value": m["counts"][k]} for k in ("items", "ok", "failed")]
    for which in ("generative", "dense", "served"):  # served: scored before publishing
        for k, v in (m["eval"].get(which) or {}).items():
            rows.append({"metric": f"{which} {k}", "value": v})
    create_table_artifact(rows, key=key, description=f"ACE index {m['version']}: counts and eval")
    create_markdown_artifact(
        summary_markdown(m, run_files(store, m["version"])),
        key=f"{key}-diff",
        description="identifier diff against the parent version, and the files that changed",
    )


def summary_markdown(m: dict, files: dict, limit: int = FILES_SHOWN) -> str:
    """The ID diff's counts, then a section per kind of file (``files``: run_files')."""
    d = m["id_diff"]
    text = (
        f"# ID diff {m['parent_version'] or '(none)'} -> {m['version']}\n\n"
        f"| added | removed | changed | unchanged |\n|---|---|---|---|\n"
        f"| {d['added']} | {d['removed']} | {d['changed']} | {d['unchanged']} |\n"
    )
    failed = [f"`{f['file']}`: {f['error']}" for f in files["failed"]]
    for title in ("added", "removed"):
        text += _section(f"{title.title()} files", [f"`{n}`" for n in files[title]], limit)
    return text + _section("Failed files", failed, limit)


def _section(title: str, names: list[str], limit: int) -> str:
    if not names:
        return f"\n## {title}: none\n"
    lines = [f"- {n}" for n in names[:limit]]
    if len(names) > limit:
        lines.append(f"- ... and {len(names) - limit} more (`ace audit --json` lists all)")
    return f"\n## {title} ({len(names)})\n\n" + "\n".join(lines) + "\n"
