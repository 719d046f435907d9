"""Slurm launch configuration as data: parsing, precedence and validation (no cluster needed)."""

from __future__ import annotations

import pytest

from scaleqbench.bench.errors import BadArgumentError
from scaleqbench.bench.launch.slurm_config import SlurmConfig, load_slurm_config, parse_sbatch_extra, parse_slurm_time


@pytest.mark.parametrize("text, minutes", [
    ("30", 30), (45, 45), ("1:30", 2), ("0:59", 1), ("4:00:00", 240), ("1-02:00:00", 1560),
    ("2-0", 2880),
])
def test_slurm_time_formats_in_minutes(text, minutes):
    assert parse_slurm_time(text) == minutes


@pytest.mark.parametrize("text", ["abc", "1:2:3:4", "-5", "0", "0:00:00"])
def test_bad_slurm_times_say_what_is_accepted(text):
    with pytest.raises(BadArgumentError):
        parse_slurm_time(text)


def test_precedence_defaults_pyproject_file_flags(tmp_path):
    project = tmp_path / "pyproject.toml"
    project.write_text('[tool.scaleqbench.slurm]\npartition = "cpu"\nmem = "8G"\n'
                       'cpus_per_job = 2\n[tool.scaleqbench.slurm.sbatch_extra]\nexclude = "n1"\n')
    cfg_file = tmp_path / "slurm.toml"
    cfg_file.write_text('[slurm]\npartition = "gpu"\ngpus_per_job = 1\ntime = "4:00:00"\n'
                        '[slurm.sbatch_extra]\nreservation = "r"\n')
    cfg = load_slurm_config(cfg_file, {"gpus_per_job": 2, "mem": None,
                                       "sbatch_extra": (("exclude", "n2"),)},
                            project_file=project)
    assert (cfg.partition, cfg.mem, cfg.cpus_per_job, cfg.gpus_per_job) == ("gpu", "8G", 2, 2)
    assert dict(cfg.sbatch_extra) == {"exclude": "n2", "reservation": "r"}
    params = cfg.executor_parameters()
    assert params["time"] == 240 and params["gpus_per_node"] == 2
    assert params["additional_parameters"] == {"exclude": "n2", "reservation": "r"}
    assert params["signal_delay_s"] == cfg.signal_delay_s


BOM = "\ufeff"  # the byte-order mark some editors put at the start of a UTF-8 file


def test_config_files_saved_with_a_byte_order_mark_read_as_without_one(tmp_path):
    project = tmp_path / "pyproject.toml"
    project.write_text(BOM + '[tool.scaleqbench.slurm]\npartition = "cpu"\nmem = "8G"\n',
                       encoding="utf-8")
    assert project.read_bytes().startswith(b"\xef\xbb\xbf")
    from_project = load_slurm_config(None, project_file=project)
    assert (from_project.partition, from_project.mem) == ("cpu", "8G")  # not left out
    cfg_file = tmp_path / "slurm.toml"
    cfg_file.write_text(BOM + '[slurm]\npartition = "gpu"\ncpus_per_job = 3\n',
                        encoding="utf-8")
    cfg = load_slurm_config(cfg_file, project_file=project)
    assert (cfg.partition, cfg.mem, cfg.cpus_per_job) == ("gpu", "8G", 3)
    cfg_file.write_bytes(b"\xff\xfe[\x00s\x00")  # UTF-16: one line, not a traceback
    with pytest.raises(BadArgumentError, match="cannot read launcher config"):
        load_slurm_config(cfg_file, project_file=project)


def test_a_config_is_frozen_data():
    cfg = SlurmConfig()
    with pytest.raises(AttributeError):
        cfg.partition = "gpu"  # type: ignore[misc]
    assert cfg == SlurmConfig() and hash(cfg) == hash(SlurmConfig())


@pytest.mark.parametrize("content, message", [
    ('[slurm]\npartitoin = "gpu"\n', "unknown Slurm option(s) partitoin"),
    ('[slurm]\ncpus_per_job = "many"\n', "must be an integer"),
    ('[slurm]\ngpus_per_job = -1\n', "must be >= 0"),
    ('[slurm]\ntime = "soon"\n', "bad --time"),
    ('[slurm\n', "cannot read launcher config"),
])
def test_bad_config_files_name_the_problem(tmp_path, content, message):
    f = tmp_path / "slurm.toml"
    f.write_text(content)
    with pytest.raises(BadArgumentError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_slurm_config(f, project_file=tmp_path / "none.toml")


def test_missing_config_file(tmp_path):
    with pytest.raises(BadArgumentError, match="does not exist"):
        load_slurm_config(tmp_path / "nope.toml", project_file=tmp_path / "none.toml")


def test_the_checkpoint_signal_must_leave_time_to_start(tmp_path):
    none = tmp_path / "none.toml"
    # Slurm may signal 60 s before --signal-delay-s: 2 minutes - 90 s leaves nothing
    with pytest.raises(BadArgumentError, match="at least 170 s"):
        load_slurm_config(None, {"time": "2", "signal_delay_s": 90}, project_file=none)
    assert load_slurm_config(None, {"time": "3", "signal_delay_s": 90},
                             project_file=none).minutes == 3
    assert load_slurm_config(None, {"time": "2", "signal_delay_s": 30},
                             project_file=none).signal_delay_s == 30


def test_sbatch_extra_pairs():
    assert parse_sbatch_extra(["--exclude=node1", "mail-type = END"]) == (
        ("exclude", "node1"), ("mail_type", "END"))
    with pytest.raises(BadArgumentError, match="not KEY=VALUE"):
        parse_sbatch_extra(["exclusive"])


@pytest.mark.parametrize("overrides, message", [
    ({"cpus_per_job": 0}, "cpus_per_job (--cpus-per-job) must be >= 1"),
    ({"cpus_per_job": -2}, "cpus_per_job (--cpus-per-job) must be >= 1"),
    ({"array_parallelism": 0}, "array_parallelism (--array-parallelism) must be >= 1"),
    ({"gpus_per_job": -1}, "gpus_per_job (--gpus-per-job) must be >= 0"),
    ({"mem": "-5"}, "mem (--mem) must be a size such as 32G"),
    ({"mem": "lots"}, "mem (--mem) must be a size such as 32G"),
])
def test_resources_a_job_cannot_run_with_are_refused(tmp_path, overrides, message):
    with pytest.raises(BadArgumentError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_slurm_config(None, overrides, project_file=tmp_path / "none.toml")


@pytest.mark.parametrize("mem", ["32G", "8000", "512m", "1TB", "0"])
def test_memory_sizes_slurm_takes(tmp_path, mem):
    """0 is Slurm's own "all the memory of the node", not a missing resource."""
    cfg = load_slurm_config(None, {"mem": mem, "gpus_per_job": 0, "max_requeues": 0},
                            project_file=tmp_path / "none.toml")
    assert cfg.executor_parameters()["mem"] == mem
