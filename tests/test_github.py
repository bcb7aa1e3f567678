"""``--format github``: workflow-command syntax and the step summary (acceptance 2)."""
import re
import shutil

from certificates import github
from certificates.cli.main import main
from certificates.model import digest, load, save

# ::level [key=value(,key=value)*]::message, with nothing unescaped that would end a field early.
CMD = re.compile(r"^::(error|warning|notice)( (file|title|line|col)=[^,:\r\n]*(,(file|title|line|col)=[^,:\r\n]*)*)?::"
                 r"[^\r\n]*$")


def test_escaping_rules():
    assert github.escape_data("50% a\r\nb") == "50%25 a%0D%0Ab"
    assert github.escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"
    line = github.annotation("error", "bad\nthing 100%", file="dir,x/c:1.json", title="t: x")
    assert line == "::error file=dir%2Cx/c%3A1.json,title=t%3A x::bad%0Athing 100%25"
    assert CMD.match(line)


def test_check_github_ok_and_invalid(ramp41_cert, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    odd = tmp_path / "odd, name: 1.json"
    shutil.copy(ramp41_cert, odd)
    doc = load(ramp41_cert)
    doc["eps"] = "1/100"                                # below the proved bound
    doc["sha256"] = digest(doc)
    bad = tmp_path / "bad.json"
    save(doc, bad)
    assert main(["check", "--format", "github", str(odd), str(bad)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(CMD.match(l) for l in lines), lines
    assert lines[0].startswith(f"::notice file={str(tmp_path)}/odd%2C name%3A 1.json,title=attncert check%3A ")
    assert lines[1].startswith(f"::error file={bad},title=attncert check%3A certificate INVALID::")
    assert "not below eps" in lines[1]
    assert not list(tmp_path.glob("*summary*"))


def test_step_summary_written_when_set(ramp41_cert, tmp_path, capsys, monkeypatch):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert main(["check", "--format", "github", str(ramp41_cert)]) == 0
    text = summary.read_text()
    assert text.startswith("earlier step\n### attncert check\n")   # appended, not overwritten
    table = [l for l in text.splitlines() if l.startswith("|")]
    assert table[0] == "| certificate | construction | verdict | eps | checked bound | boxes | reason |"
    assert table[1] == "|---|---|---|---|---|---|---|"
    cells = [c.strip() for c in table[2].strip("|").split("|")]
    assert cells[:4] == [str(ramp41_cert), "ramp", "OK", "1/50"] and float(cells[4]) < 0.02
    capsys.readouterr()


def test_markdown_cells_escape_pipes():
    assert github.markdown_table(["a"], [["x|y\nz"]]).splitlines()[2] == "| x\\|y z |"


def test_json_format_kept(ramp41_cert, capsys):
    import json
    assert main(["check", "--format", "json", str(ramp41_cert)]) == 0
    (rep,) = json.loads(capsys.readouterr().out)
    assert rep["ok"] and rep["eps"] == "1/50"


def test_example_workflow_and_hook_commands_parse():
    """Every attncert command in the example workflow and the README hook is a valid invocation."""
    import pathlib
    import shlex
    from certificates.cli.main import parser
    root = pathlib.Path(__file__).resolve().parents[1]
    cmds = re.findall(r"^\s*run: (attncert .*)$", (root / "docs" / "attncert-audit.yml").read_text(), re.M)
    cmds += re.findall(r"^\s*entry: (attncert .*)$", (root / "README.md").read_text(), re.M)
    assert len(cmds) == 3
    for cmd in cmds:
        argv = shlex.split(cmd)[1:]
        args = parser().parse_args(argv)
        for path in getattr(args, "dirs", []) + getattr(args, "certs", []):
            assert (root / path).exists(), path


def test_unreadable_certificate_annotated_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "trunc.json"
    bad.write_text('{"schema": "attncert/certificate", "eps": ')
    assert main(["check", "--format", "github", str(bad)]) == 2
    out, err = capsys.readouterr()
    assert CMD.match(out.strip()) and out.startswith(f"::error file={bad},title=attncert check%3A unreadable")
    assert len(err.strip().splitlines()) == 1 and "not valid JSON" in err
