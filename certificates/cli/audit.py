"""``attncert audit DIR``: re-check every certificate under DIR and detect construction drift.

Exit 0 when every certificate holds and rebuilds to the same weights, 1 on any drift or
invalid certificate, 2 when nothing could be audited (no certificates, unreadable file).
"""
from __future__ import annotations

import json
import sys

from .common import EXIT_ERROR, EXIT_FAIL, EXIT_OK, UserError, command


def cmd_audit(args) -> int:
    from certificates.audit import DRIFT, ERROR, INVALID, OK, audit_dir
    entries = []
    for root in args.dirs:
        got = audit_dir(root, progress=sys.stderr.isatty())
        if not got:
            raise UserError(f"{root}: no attncert certificates found (nothing to audit)")
        entries += got
    code = EXIT_OK
    for e in entries:
        if e.status == ERROR:
            code = EXIT_ERROR
        elif e.status in (DRIFT, INVALID) and code == EXIT_OK:
            code = EXIT_FAIL
    counts = {s: sum(e.status == s for e in entries) for s in (OK, DRIFT, INVALID, ERROR)}
    summary = f"audited {len(entries)} certificate(s): " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    if args.format == "json":
        print(json.dumps([_json(e) for e in entries], indent=2, sort_keys=True))
    elif args.format == "github":
        _github(entries, summary)
    else:
        for e in entries:
            if e.ok:
                print(f"{e.path}: OK {e.name}: weights unchanged (sha256 {e.stored_hash[:12]}), certificate holds: "
                      f"bound {e.check.checked_max_bound:.6g} < eps {e.check.eps} over {e.check.boxes} boxes")
            else:
                print(f"{e.path}: {e.status}: {e.reason}")
        print(summary)
    return code


def _json(e) -> dict:
    c = e.check
    return {"path": e.path, "status": e.status, "name": e.name, "reason": e.reason,
            "stored_weights_sha256": e.stored_hash, "current_weights_sha256": e.current_hash,
            "certificate_holds": bool(c and c.ok), "eps": str(c.eps) if c and c.eps is not None else None,
            "checked_max_bound": c.checked_max_bound if c else None, "boxes": c.boxes if c else 0}


def _github(entries, summary) -> None:
    from certificates.github import annotation, append_step_summary
    rows = []
    for e in entries:
        if e.ok:
            print(annotation("notice", f"{e.name}: weights unchanged; bound {e.check.checked_max_bound:.6g} < eps "
                                       f"{e.check.eps} over {e.check.boxes} boxes", file=e.path,
                             title="attncert audit: OK"))
            rows.append((e.path, e.name, "OK", str(e.check.eps), f"{e.check.checked_max_bound:.6g}", ""))
        else:
            print(annotation("error", e.reason, file=e.path, title=f"attncert audit: {e.status}"))
            rows.append((e.path, e.name, e.status, "", "", e.reason))
    print(summary)
    append_step_summary("attncert audit", ("certificate", "construction", "verdict", "eps", "checked bound",
                                           "reason"), rows)


def add_command(sub) -> None:
    sp = command(sub, "audit", "re-check every certificate under a folder and detect construction drift",
                 "attncert audit certificates/library --format github")
    sp.add_argument("dirs", nargs="+", metavar="DIR", help="folder searched recursively for certificates (or a file)")
    sp.add_argument("--format", choices=["text", "json", "github"], default="text",
                    help="text, json, or github (::error annotations and a job summary)")
    sp.set_defaults(fn=cmd_audit)
