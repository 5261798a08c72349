"""`lla report curves`: DVCLive tsvs of each run joined on step into one csv per run."""

import csv

import pytest

from lla.cli import main
from lla.errors import DataError
from lla.report.curves import METRICS_DIR, run_curves


def write_tsv(run, name, rows):
    path = run / METRICS_DIR / f"{name}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("step\t" + name + "\n" + "".join(f"{s}\t{v}\n" for s, v in rows))


def test_columns_loss_first_lr_last_and_gaps_empty(tmp_path):
    run = tmp_path / "lla_fcos_r50"
    write_tsv(run, "lr", [(1, 0.001), (2, 0.002), (3, 0.002)])
    write_tsv(run, "loss_cls", [(1, 0.9), (2, 0.8), (3, 0.7)])
    write_tsv(run, "loss", [(1, 1.5), (2, 1.2), (3, 1.0)])
    write_tsv(run, "loss_box", [(1, 0.6), (3, 0.3)])          # step 2 not logged
    columns, rows = run_curves(run)
    assert columns == ["step", "loss", "loss_box", "loss_cls", "lr"]
    assert rows == [[1, 1.5, 0.6, 0.9, 0.001], [2, 1.2, None, 0.8, 0.002],
                    [3, 1.0, 0.3, 0.7, 0.002]]

    other = tmp_path / "retinanet_r50__seed1"
    write_tsv(other, "loss", [(1, 2.0)])
    out = tmp_path / "curves"
    assert main(["report", "curves", "--runs", str(run), str(other), "--out-dir", str(out)]) == 0
    with open(out / "lla_fcos_r50.csv") as f:
        written = list(csv.reader(f))
    assert written[0] == columns and written[2] == ["2", "1.2", "", "0.8", "0.002"]
    assert (out / "retinanet_r50__seed1.csv").read_text() == "step,loss\n1,2.0\n"


def test_a_run_without_curves_is_an_error_and_nothing_is_written(tmp_path, capsys):
    good = tmp_path / "good"
    write_tsv(good, "loss", [(1, 1.0)])
    out = tmp_path / "curves"
    assert main(["report", "curves", "--runs", str(good), str(tmp_path / "untrained"),
                 "--out-dir", str(out)]) == 2
    assert "untrained" in capsys.readouterr().err and not out.exists()


def test_a_bad_row_names_the_file_and_line(tmp_path):
    run = tmp_path / "run"
    write_tsv(run, "loss", [(1, 1.0), (2, "nan?")])
    with pytest.raises(DataError, match=r"loss.tsv:3: not a step and a number"):
        run_curves(run)
