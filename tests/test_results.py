"""The results module: partition codec, the one reader (complete studies, filters, schema checks), the one writer."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ohgw.results import (
    PARTITION_COLUMNS,
    REQUIRED_COLUMNS,
    SCHEMA_VERSION,
    ResultsError,
    partition_folder,
    partition_value,
    read_table,
    space_transforms,
    study_dir,
    study_key,
    table_files,
    write_study,
)
from ohgw.testing.synthetic_results import study_frames


def _frames(n_reports: int, *, trial_extra: dict | None = None):
    rep = pd.DataFrame({
        "trial_index": np.zeros(n_reports, dtype=int), "epoch": np.arange(1, n_reports + 1),
        "val_score": np.linspace(0.1, 0.9, n_reports), "wall_s": np.arange(1.0, n_reports + 1),
        "compute_s": np.arange(1.0, n_reports + 1), "epoch_equiv": np.arange(1.0, n_reports + 1),
    })
    it, tr, st = study_frames(rep, tau=0.5)
    for c, v in (trial_extra or {}).items():
        tr[c] = v
    return it, tr, st


@pytest.mark.parametrize("value", ["asha", "asha+ohgw", "a b/c=d%e", "ünï", "x.y-z_w", "hb+ohgw-k2"])
def test_partition_codec_round_trips(value):
    for column in ("experiment", "method"):
        folder = partition_folder(column, value)
        assert "/" not in folder and folder.startswith(f"{column}=")
        assert partition_value(folder) == value
        assert partition_value(folder, column) == value
    assert partition_folder("seed", 7) == "seed=7"
    path = study_dir("/r", "trials", value, value, 3) / "part-0.parquet"
    assert study_key(path) == (value, value, 3)
    assert study_key(path.parent) == (value, value, 3)


def test_partition_decoder_rejects_other_folders():
    with pytest.raises(ValueError, match="not a partition folder"):
        partition_value("part-0.parquet")
    with pytest.raises(ValueError, match=r"not a partition folder \(method="):
        partition_value("experiment=x", "method")
    with pytest.raises(ValueError, match="holds no experiment=/method=/seed= folders"):
        study_key("/tmp/results/trials")
    with pytest.raises(ValueError, match="column must be one of"):
        partition_folder("trial", "x")


def test_reader_keeps_each_files_rows_with_its_partition_values(tmp_path):
    # many studies with different row counts: the partition columns must line up with the files' rows
    expected = []
    for k in range(30):
        method, seed = ("asha", "asha+ohgw", "a b")[k % 3], k // 3
        it, tr, st = _frames(1 + (k * 7) % 11)
        it["study_id"] = f"{method}|{seed}"
        expected.append((method, seed, len(it)))
        write_study(tmp_path, "exp", method, seed, it, tr, st)
    it = read_table(tmp_path, "iterations")
    assert len(it) == sum(n for *_, n in expected)
    assert (it["study_id"] == it["method"] + "|" + it["seed"].astype(str)).all()
    assert it["seed"].dtype == "int64" and it["method"].map(type).eq(str).all()
    counts = it.groupby(["method", "seed"]).size().to_dict()
    assert counts == {(m, s): n for m, s, n in expected}


def test_reader_drops_incomplete_studies_and_filters(tmp_path):
    for exp in ("a", "b"):
        for seed in (0, 1):
            write_study(tmp_path, exp, "asha", seed, *_frames(3))
    (study_dir(tmp_path, "studies", "a", "asha", 1) / "part-0.parquet").unlink()  # interrupted before studies
    (study_dir(tmp_path, "trials", "b", "asha", 0) / ".tmp-x.parquet").write_bytes(b"half written")
    assert sorted(study_key(f) for f in table_files(tmp_path, "trials")) == [("a", "asha", 0), ("b", "asha", 0),
                                                                            ("b", "asha", 1)]
    assert len(table_files(tmp_path, "trials", complete=False)) == 4
    tr = read_table(tmp_path, "trials")
    assert sorted(set(zip(tr["experiment"], tr["seed"]))) == [("a", 0), ("b", 0), ("b", 1)]
    it = read_table(tmp_path, "iterations", experiment="b", columns=["epoch", "seed", "nope"])
    assert list(it.columns) == ["epoch", "seed"] and sorted(it["seed"].unique()) == [0, 1]
    st = read_table(tmp_path, "studies", experiment="a")
    assert len(st) == 1 and (st["schema_version"] == SCHEMA_VERSION).all()


def test_reader_of_an_empty_table_gives_the_required_columns(tmp_path):
    df = read_table(tmp_path, "trials")
    assert df.empty and list(df.columns) == [*REQUIRED_COLUMNS["trials"], *PARTITION_COLUMNS]
    assert list(read_table(tmp_path, "studies", columns=["method", "mode"]).columns) == ["method", "mode"]


def test_reader_unifies_columns_that_only_some_studies_have(tmp_path):
    write_study(tmp_path, "e", "asha", 0, *_frames(2))
    write_study(tmp_path, "e", "asha+ohgw", 0, *_frames(2, trial_extra={"x.lr": 0.1, "x_prime.lr": 0.2}))
    tr = read_table(tmp_path, "trials").set_index("method")
    assert tr.loc["asha+ohgw", "x_prime.lr"] == 0.2 and math.isnan(tr.loc["asha", "x_prime.lr"])


def test_reader_checks_required_columns_and_schema_version(tmp_path):
    write_study(tmp_path, "e", "asha", 0, *_frames(2))
    write_study(tmp_path, "e", "asha", 1, *_frames(2))
    f = study_dir(tmp_path, "trials", "e", "asha", 1) / "part-0.parquet"
    pq.write_table(pq.read_table(f).drop_columns(["ws_eta_h", "ws_step_norm"]), f)
    with pytest.raises(ResultsError, match=r"^results_dir: trials/experiment=e/method=asha/seed=1/part-0.parquet is "
                                           r"missing required columns: ws_eta_h, ws_step_norm$"):
        read_table(tmp_path, "trials")
    assert len(read_table(tmp_path, "trials", check=False)) == 2  # unchecked: read what is there

    s = study_dir(tmp_path, "studies", "e", "asha", 0) / "part-0.parquet"
    t = pq.read_table(s)
    pq.write_table(t.drop_columns(["schema_version", "space"]), s)
    with pytest.raises(ResultsError, match=r"^results_dir: studies/experiment=e/method=asha/seed=0/part-0.parquet is "
                                           r"schema version 1 \(no schema_version column\); this ohgw reads schema "
                                           r"version 2: re-run the studies"):
        read_table(tmp_path, "studies")
    pq.write_table(t.set_column(t.schema.get_field_index("schema_version"), "schema_version", pa.array([3])), s)
    with pytest.raises(ResultsError, match=r"seed=0/part-0.parquet is schema version 3; this ohgw reads schema "
                                           r"version 2 only$"):
        read_table(tmp_path, "studies")

    (study_dir(tmp_path, "studies", "e", "asha", 0) / "part-0.parquet").write_bytes(b"not parquet")
    with pytest.raises(ResultsError, match="is not a readable Parquet file"):
        read_table(tmp_path, "studies")


def test_writer_validates_and_leaves_no_temporary_files(tmp_path):
    it, tr, st = _frames(2)
    with pytest.raises(ValueError, match=r"trials table lacks required columns \['ws_lookahead'\]"):
        write_study(tmp_path, "e", "asha", 0, it, tr.drop(columns=["ws_lookahead"]), st)
    with pytest.raises(ValueError, match="must not hold partition columns"):
        write_study(tmp_path, "e", "asha", 0, it.assign(seed=0), tr, st)
    with pytest.raises(ValueError, match=r"schema_version must be 2, got \['1'\]"):
        write_study(tmp_path, "e", "asha", 0, it, tr, st.assign(schema_version=1))
    assert not (tmp_path / "studies").exists()
    write_study(tmp_path, "e", "asha", 0, it, tr, st)
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files == [f"{t}/experiment=e/method=asha/seed=0/part-0.parquet" for t in ("iterations", "studies", "trials")]


def test_space_transforms():
    space = {"params": [{"name": "lr", "low": 1e-4, "high": 1, "transform": "log10"},
                        {"name": "m", "low": 0, "high": 1, "transform": "identity"}], "discrete": {"bs": [1, 2]}}
    assert space_transforms(json.dumps(space)) == {"lr": "log10", "m": "identity"}
    with pytest.raises(ResultsError, match="^studies.space: not the JSON of a search space"):
        space_transforms("{}")
    with pytest.raises(ResultsError, match="^studies.space: not the JSON of a search space"):
        space_transforms("not json")
    with pytest.raises(ResultsError, match=r"transform must be one of \('log10', 'identity'\), got lr: 'ln'"):
        space_transforms(json.dumps({"params": [{"name": "lr", "low": 1, "high": 2, "transform": "ln"}]}))
