"""The integrity of run records: anything that is not a record (a value out of its range
included) is rejected with an error naming its file, fields are checked when set and
written, and the run columns are record fields.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from scaleqbench.bench.errors import CorruptRecordError
from scaleqbench.bench.store.record import RUN_COLUMNS, RunRecord
from scaleqbench.bench.store.run_store import RunStore

from records_support import _damaged, record


@pytest.mark.parametrize("case", list(_damaged(record().to_dict())))
def test_what_is_not_a_record_is_rejected_naming_the_file(case, tmp_path):
    path = tmp_path / "runs" / "cnn-s0.json"
    with pytest.raises(CorruptRecordError) as err:
        RunRecord.from_json(_damaged(record().to_dict())[case], path)
    assert str(err.value).startswith(f"{path} is not a readable run record (")


@pytest.mark.parametrize("field, value", [("test_acc", 1.0), ("test_acc", 0), ("eq_err", 0.0),
                                          ("eq_err", 1e6), ("params", 0),
                                          ("per_size_acc", {"8": None, "28": 1.0})])
def test_values_at_the_ends_of_their_range_are_records(field, value):
    rec = record().set(**{field: value})
    assert getattr(RunRecord.from_json(rec.to_json(), "x.json"), field) == value


def test_a_hand_edited_accuracy_is_named_and_set_aside_never_shown(tmp_path, caplog):
    store = RunStore(tmp_path)
    kept, edited = record(seed=0), record(seed=1)
    store.write(kept)
    path = store.write(edited)
    data = json.loads(path.read_text())
    data["test_acc"] = 5.0  # 500 %
    path.write_text(json.dumps(data))
    records, problems = store.scan()
    assert [r.seed for r in records] == [0]
    assert [p.path for p in problems] == [path] and "test_acc is 5.0" in str(problems[0])
    assert store.resume(edited.run_id) is None  # the run is to be recomputed
    assert [p.read_text() for p in path.parent.glob("*.corrupt-*")] == [json.dumps(data)]


def test_fields_are_checked_when_set_and_written():
    rec = record()
    with pytest.raises(TypeError, match="no field"):
        rec.set(test_accuracy=0.9)  # a typo is not a new field
    rec.params = "many"
    with pytest.raises(ValueError, match="params"):
        rec.to_json()  # never write what could not be read back
    rec = record().set(test_acc=5.0)
    with pytest.raises(ValueError, match="test_acc is 5.0"):
        rec.to_json()
    with pytest.raises(AttributeError):
        rec.seed = 1  # the spec's: a record of another seed is another run


def test_run_columns_are_record_fields_and_carry_their_values():
    from scaleqbench.bench.report.leaderboard import records_frame

    names = {f.name for f in dataclasses.fields(RunRecord)}
    spec_columns = {"experiment", "method", "dataset", "source", "seed", "preset", "input"}
    assert set(RUN_COLUMNS) - spec_columns <= names
    assert spec_columns <= set(RUN_COLUMNS) and not spec_columns & names  # read from the spec
    assert {"test_acc", "eq_err", "status"} <= set(RUN_COLUMNS)
    recs = [record(seed=0), record(seed=1, status="failed")]
    df = records_frame(recs)
    for c in RUN_COLUMNS:
        if c in ("seed", "status", "run_id", "method", "experiment", "dataset"):
            assert list(df[c]) == [getattr(r, c) for r in recs], c
    assert df.test_acc.iloc[0] == 0.5 and df.test_acc.isna().iloc[1]
