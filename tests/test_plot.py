"""``attncert plot``: each kind of picture renders, is not blank, and shows sound data (acceptance 3)."""
import json
from fractions import Fraction

import numpy as np
import pytest

import certificates
import constructions
import verify
from certificates.cli.main import main
from certificates.model import load, save
from certificates.plot import PlotError, curves_1d, paving, plot_certificate
from grid2d import grid2d


def _not_blank(path, min_std=0.08, min_ink=0.02):
    import matplotlib.image as mpimg
    img = mpimg.imread(str(path))[..., :3].mean(axis=2)
    assert img.shape[0] > 200 and img.shape[1] > 300
    assert img.std() > min_std, img.std()                     # pixel variance: not a flat image
    assert (img < 0.9).mean() > min_ink, (img < 0.9).mean()  # and a fair share of drawn pixels
    return img


@pytest.fixture(scope="module")
def ramp9_doc():
    c = constructions.build("ramp", p=9, kappa="27/10")
    return certificates.certificate(c, verify.certify(c, "0.0175"))


@pytest.fixture(scope="module")
def grid_doc():
    c = grid2d()
    res = verify.certify(c, "3/10")
    assert res.status == "CERTIFIED"
    return certificates.certificate(c, res)


def test_1d_curves_lie_under_the_proved_steps(ramp9_doc):
    B = paving(ramp9_doc)
    assert np.all(B.hi[:-1, 0] == B.lo[1:, 0]) and B.lo[0, 0] == -2 and B.hi[-1, 0] == 2   # boxes tile [-2, 2]
    c = curves_1d(ramp9_doc, points=20001)
    box = np.searchsorted(B.hi[:, 0], c["x"])                 # the box holding each sample
    assert np.all(c["error"] <= B.bounds[np.minimum(box, len(B.bounds) - 1)] + 1e-12)
    assert 0.0155 < c["error"].max() < 0.0158                 # the dense sup 0.01575 is shown
    f = c["target"][:, 0]
    assert np.allclose(f, np.clip(c["x"], -1, 1))


def test_1d_plot_cli(ramp9_doc, tmp_path, capsys):
    save(ramp9_doc, tmp_path / "c.json")
    assert main(["plot", str(tmp_path / "c.json"), "-o", str(tmp_path / "c.png")]) == 0
    assert "1d plot of ramp" in capsys.readouterr().out
    _not_blank(tmp_path / "c.png")


def test_2d_heat_map(grid_doc, tmp_path):
    B = paving(grid_doc)
    area = np.prod(B.hi - B.lo, axis=1).sum()
    assert abs(area - 4.0) < 1e-12 and B.bounds.max() < 0.3  # the boxes cover [-1, 1]^2
    assert plot_certificate(grid_doc, tmp_path / "g.png") == "2d"
    img = _not_blank(tmp_path / "g.png")
    assert img.std() > 0.15


def test_rates_computed_and_replotted(tmp_path, capsys):
    data, png = tmp_path / "r.json", tmp_path / "r.png"
    argv = ["plot", "--rates", "--sweep", "p=5,9,17", "--set", "kappa=27/10", "--points", "20001",
            "--save-data", str(data), "-o", str(png)]
    assert main(argv) == 0
    rows = json.loads(data.read_text())["rows"]
    assert [r["status"] for r in rows] == ["CERTIFIED"] * 3
    for r in rows:
        assert r["observed"] <= r["certified"] < float(Fraction(r["eps"])) and r["certified"] < r["apriori"]
    assert rows[0]["certified"] > rows[1]["certified"] > rows[2]["certified"]   # error falls with p
    _not_blank(png, min_ink=0.01)
    csv = tmp_path / "r.csv"
    csv.write_text("value,certified,observed,apriori\n" +
                   "".join(f"{r['value']},{r['certified']},{r['observed']},{r['apriori']}\n" for r in rows))
    assert main(["plot", "--rates", "--data", str(csv), "-o", str(tmp_path / "r2.png")]) == 0
    _not_blank(tmp_path / "r2.png", min_ink=0.01)


def test_plot_refuses_invalid_and_bad_input(ramp9_doc, tmp_path, capsys):
    doc = json.loads(json.dumps(ramp9_doc))
    doc["eps"] = "1/100"
    save(doc, tmp_path / "bad.json")
    assert main(["plot", str(tmp_path / "bad.json"), "-o", str(tmp_path / "x.png")]) == 1
    assert not (tmp_path / "x.png").exists()
    capsys.readouterr()
    assert main(["plot", str(tmp_path / "bad.json"), "-o", str(tmp_path / "x.gif")]) == 2
    assert main(["plot", "--rates", "--sweep", "p=5", "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "gif" in err[0] and "two values" in err[1]
    doc3 = json.loads(json.dumps(ramp9_doc))
    doc3["domain"] = [["0", "1"]] * 3
    with pytest.raises(PlotError):
        plot_certificate(doc3, tmp_path / "y.png")


def test_every_library_certificate_plots(tmp_path, capsys):
    """1-D, 2-D and the D >= 3 panel view, layered networks and piecewise evidence included."""
    import pathlib
    lib = sorted((pathlib.Path(__file__).resolve().parent.parent / "certificates" / "library").glob("*.json"))
    assert len(lib) >= 11
    for path in lib:
        out = tmp_path / (path.stem + ".png")
        assert main(["plot", str(path), "-o", str(out)]) == 0, (path.name, capsys.readouterr().err)
        assert out.stat().st_size > 5000 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
