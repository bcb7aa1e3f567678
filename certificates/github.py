"""GitHub Actions output: workflow-command annotations and a Markdown step summary.

Escaping follows GitHub's workflow-command rules: in the message ``%``, CR and LF become
``%25``, ``%0D`` and ``%0A``; in properties (file, title) also ``:`` and ``,`` are escaped.
"""
from __future__ import annotations

import os


def escape_data(text: str) -> str:
    return str(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(level: str, message: str, *, file: str | None = None, title: str | None = None) -> str:
    """One ``::error``/``::warning``/``::notice`` line."""
    if level not in ("error", "warning", "notice"):
        raise ValueError(f"unknown annotation level {level!r}")
    props = []
    if file is not None:
        props.append(f"file={escape_property(file)}")
    if title is not None:
        props.append(f"title={escape_property(title)}")
    return f"::{level}{' ' + ','.join(props) if props else ''}::{escape_data(message)}"


def _cell(value) -> str:
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def markdown_table(headers, rows) -> str:
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def append_step_summary(heading: str, headers, rows, env=os.environ) -> str | None:
    """Append a Markdown section to the file named by $GITHUB_STEP_SUMMARY; returns its path."""
    path = env.get("GITHUB_STEP_SUMMARY")
    if not path:
        return None
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(f"### {heading}\n\n{markdown_table(headers, rows)}\n")
    return path


def emit_check(reports, out=None, env=os.environ) -> None:
    """Annotations for ``attncert check --format github`` (reports as built by cmd_check)."""
    import sys
    out = out or sys.stdout
    rows = []
    for r in reports:
        if "error" in r:
            print(annotation("error", r["error"], file=r["path"], title="attncert check: unreadable certificate"),
                  file=out)
            rows.append((r["path"], "", "ERROR", "", "", "", r["error"]))
        elif r["ok"]:
            lp = r.get("norm") == "Lp"
            what = f"L{r['p']} error" if lp else "sup error"
            bound = r["checked_norm_bound"] if lp else r["checked_max_bound"]
            msg = f"{r['name']}: {what} <= {bound:.6g} < eps {r['eps']} over {r['boxes']} boxes (re-derived in Arb)"
            print(annotation("notice", msg, file=r["path"], title="attncert check: certificate holds"), file=out)
            rows.append((r["path"], r["name"], "OK", r["eps"], f"{bound:.6g}", r["boxes"], what))
        else:
            print(annotation("error", r["reason"], file=r["path"], title="attncert check: certificate INVALID"),
                  file=out)
            rows.append((r["path"], "", "INVALID", "", "", "", r["reason"]))
    append_step_summary("attncert check", ("certificate", "construction", "verdict", "eps", "checked bound",
                                           "boxes", "reason"), rows, env)
