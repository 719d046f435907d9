"""Sweep files (``bench run --config``) and table files of one's own (``bench reproduce
PATH.toml``): the example files of docs/sweeps.md run (with tiny limits), flags override a
file, and a file with problems is refused before anything runs, one line per problem
naming the file and the key."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from scaleqbench.bench.cli import main as cli
from scaleqbench.bench.cli.cmd_run import sweep_specs
from scaleqbench.bench.cli.sweep_file import FileProblems, read_sweep_file, run_settings
from scaleqbench.bench.errors import BadArgumentError
from scaleqbench.bench.published.table_files import load_table
from scaleqbench.bench.store.run_store import RunStore

DOC = Path(__file__).resolve().parents[1] / "docs" / "sweeps.md"
TINY = ["--epochs", "1", "--limit-train", "40", "--limit-eval", "20", "--quiet", "--no-report"]


BOM = "\ufeff"  # the byte-order mark some editors put at the start of a UTF-8 file


def doc_files() -> dict[str, str]:
    """The TOML blocks of docs/sweeps.md: ``{first line: text}`` (a whole file's first line
    is its name, ``# sweep.toml``)."""
    blocks = re.findall(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    return {b.splitlines()[0]: b for b in blocks}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def settings(*argv: str):
    args = cli.build_parser().parse_args(["run", *argv])
    args.argv = ["run", *argv]
    return run_settings(args)


def test_the_docs_sweep_file_runs(tmp_path, cache_dir, capsys):
    sweep = write(tmp_path, "sweep.toml", doc_files()["# sweep.toml"])
    out = tmp_path / "exp"  # the file's own out is a folder of the working directory
    assert cli.main(["run", "--config", str(sweep), "--out", str(out), *TINY]) == 0
    assert "bench run: 2 runs" in capsys.readouterr().out
    records = RunStore(out).scan()[0]
    assert all(r.ok for r in records)
    assert {r.method for r in records} == {"cnn {batch_size=32}",
                                           "cnn[channels=(8, 16, 24)] {batch_size=32,lr=0.01}"}
    widths = {r.method: r.config_values["channels"] for r in records}
    assert widths["cnn {batch_size=32}"] == [16, 32, 48]


def test_flags_override_the_file_and_recipes_merge_key_by_key(tmp_path, cache_dir):
    sweep = write(tmp_path, "sweep.toml", doc_files()["# sweep.toml"])
    args = settings("--config", str(sweep), "--seeds", "0,1", "--recipe", "batch_size=16")
    specs, out = sweep_specs(args)
    assert out == Path("results/sweep-example") and args.preset == "quick"
    assert sorted({s.seed for s in specs}) == [0, 1] and len(specs) == 4
    recipes = {s.label: dict(s.resolved.recipe) for s in specs}
    assert {r["batch_size"] for r in recipes.values()} == {16}  # --recipe wins over the file
    assert recipes["cnn[channels=(8, 16, 24)] {batch_size=16,lr=0.01}"]["lr"] == 0.01
    only = settings("--config", str(sweep), "--methods", "cnn[channels=(4,4,4)]")
    assert [s.label for s in sweep_specs(only)[0]] == ["cnn[channels=(4, 4, 4)] {batch_size=32}"]
    # without a file: the defaults, as ever
    plain = settings("--methods", "cnn")
    assert (plain.dataset, plain.seeds, plain.preset, plain.launcher) == (
        "mnist-res", "0", "quick", "local")


def test_several_datasets_run_on_each_into_a_folder_named_after_the_file(tmp_path, cache_dir):
    sweep = write(tmp_path, "two.toml", 'methods = "cnn"\ndatasets = ["mnist-res", '
                                        '"mnist-scale"]\nseeds = "0-1"\n')
    specs, out = sweep_specs(settings("--config", str(sweep)))
    assert out == Path("results/two")
    assert sorted((s.dataset, s.seed) for s in specs) == [
        ("mnist-res", 0), ("mnist-res", 1), ("mnist-scale", 0), ("mnist-scale", 1)]


def test_the_docs_launcher_fragments_are_sweep_files(tmp_path):
    fragments = [t for first, t in doc_files().items() if first.startswith("[launcher]")]
    assert fragments
    for i, text in enumerate(fragments):
        found = read_sweep_file(write(tmp_path, f"f{i}.toml", text))
        assert found.launcher["name"] in ("local", "slurm")
    slurm = next(read_sweep_file(write(tmp_path, "s.toml", t)) for t in fragments
                 if 'name = "slurm"' in t)
    args = settings("--config", str(slurm.path), "--time", "30")
    assert (args.launcher, args.partition, args.time) == ("slurm", "gpu", "30")  # flag wins
    assert args.setup == ["module load cuda"] and args.sbatch_extra == ["exclude=node13"]


BAD_SWEEP = """
sedes = [0]
methods = ["cnn", {name = "cnn", options = {chanels = [8, 8, 8]}}, "cnnn"]
dataset = "mnist-rse"
preset = "quik"
epochs = 0
[recipe]
lr = "fast"
batch_sise = 32
[launcher]
name = "local"
partition = "gpu"
time = "soon"
"""


def test_a_bad_sweep_file_names_every_problem_and_writes_nothing(tmp_path, capsys):
    sweep = write(tmp_path, "bad.toml", BAD_SWEEP)
    out = tmp_path / "exp"
    assert cli.main(["run", "--config", str(sweep), "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert all(ln.startswith(f"bench: error: {sweep}: ") for ln in lines), lines
    keys = [ln.split(": ")[3] for ln in lines]
    assert {"sedes", "methods[2]", "dataset", "preset", "epochs", "recipe.lr",
            "recipe.batch_sise", "launcher.time", "launcher"} <= set(keys), keys
    text = "\n".join(lines)
    assert "did you mean 'seeds'" in text and "did you mean 'batch_size'" in text
    assert "lr must be a number" in text and not out.exists()
    # the options of a method, once the names are right
    fixed = write(tmp_path, "opts.toml", 'methods = [{name = "cnn", options = {chanels = 3}}]\n')
    with pytest.raises(FileProblems) as err:
        read_sweep_file(fixed)
    [line] = err.value.problems
    assert line.startswith(f"{fixed}: methods[0]: ") and "did you mean 'channels'" in line


def test_the_docs_table_file_runs(tmp_path, cache_dir, capsys):
    table = write(tmp_path, "my-table.toml", doc_files()["# my-table.toml"])
    out = tmp_path / "repro"
    assert cli.main(["reproduce", str(table), "--methods", "cnn", "--seeds", "0",
                     "--out", str(out), *TINY]) == 0
    text = capsys.readouterr().out
    assert "bench run: 2 runs" in text and "# bench reproduce my-table" in text
    records = RunStore(out).scan()[0]
    assert {r.method for r in records} == {"cnn {batch_size=32}",
                                           "cnn[channels=(8, 16, 24)] {batch_size=32}"}
    assert all(r.ok and r.recipe["batch_size"] == 32 for r in records)
    md = (out / "reproduce.md").read_text()
    assert "## all training images" in md and "## 1,000 training images" in md


def test_a_sweep_file_saved_with_a_byte_order_mark_reads_as_without_one(tmp_path):
    text = doc_files()["# sweep.toml"]
    plain = read_sweep_file(write(tmp_path, "plain.toml", text))
    marked_path = tmp_path / "marked.toml"
    marked_path.write_text(BOM + text, encoding="utf-8")  # as some editors save it
    assert marked_path.read_bytes().startswith(b"\xef\xbb\xbf")
    marked = read_sweep_file(marked_path)
    assert marked.flags and marked.methods  # the file was read, not taken as empty
    assert ((marked.flags, marked.methods, marked.datasets, marked.recipe, marked.launcher)
            == (plain.flags, plain.methods, plain.datasets, plain.recipe, plain.launcher))
    # what is not TOML is still said to be so, byte-order mark or not
    broken = tmp_path / "broken.toml"
    broken.write_text(BOM + "seeds = [0\n", encoding="utf-8")
    with pytest.raises(BadArgumentError, match="broken.toml: not TOML"):
        read_sweep_file(broken)


def test_a_table_file_saved_with_a_byte_order_mark_reads_as_without_one(tmp_path):
    text = doc_files()["# my-table.toml"]
    plain = load_table(str(write(tmp_path, "plain-table.toml", text)))
    marked = tmp_path / "marked-table.toml"
    marked.write_text(BOM + text, encoding="utf-8")
    read = load_table(str(marked))
    assert read.file == str(marked) and plain.columns
    assert dataclasses.replace(read, file=plain.file) == plain


BAD_TABLE = """
methods = ["cnn", "cnnn"]
preset = "quick"
input = "padded"
seeds = [0]
colour = "blue"
[recipe]
lr = -1
[[columns]]
key = "a"
label = "A"
dataset = "mnist-rse"
metrics = ["test_acc"]
[[columns]]
key = "b"
label = "B"
dataset = "mnist-res"
metrics = ["accuracy"]
"""


def test_a_bad_table_file_names_every_problem(tmp_path, capsys):
    table = write(tmp_path, "bad-table.toml", BAD_TABLE)
    assert cli.main(["reproduce", str(table)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert all(ln.startswith(f"bench: error: {table}") for ln in lines), lines
    assert any("unknown field 'colour'" in ln for ln in lines)
    assert any("column 2" in ln and "metrics must be some of" in ln for ln in lines)
    # once the file parses, what it names is checked against this installation
    table.write_text(BAD_TABLE.replace('colour = "blue"\n', "").replace('"accuracy"',
                                                                        '"test_acc"'))
    assert cli.main(["reproduce", str(table)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    text = "\n".join(lines)
    assert len(lines) == 4 and all(ln.startswith(f"bench: error: {table}: ") for ln in lines)
    assert "methods (cnnn)" in text and "input: 'padded'" in text
    assert "recipe.lr" in text and "column 1 (a) dataset" in text
    assert cli.main(["reproduce", str(tmp_path / "none.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err
