"""Bad inputs found by the second sweep of new cases: each is one line on stderr, a non-zero
exit, and nothing written."""

from __future__ import annotations

import pytest
from torch import nn

from scaleqbench import methods
from scaleqbench.bench.cli import main as cli
from scaleqbench.methods import MethodCard


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("bench: error:") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("seeds", ["0-4294967295", "0-999999", "0-5,7-20000"])
def test_a_sweep_of_too_many_seeds_is_refused_before_anything_is_built(seeds, tmp_path, capsys):
    out = tmp_path / "exp"
    assert cli.main(["run", "--methods", "cnn", "--seeds", seeds, "--out", str(out)]) == 2
    assert "at most 10,000 are taken at once" in one_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize("out, said", [("", "--out is empty"),
                                       ("x" * 300, "longer than the file system allows")])
def test_an_out_folder_the_file_system_cannot_hold_is_one_line(out, said, tmp_path, capsys,
                                                               monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "--methods", "cnn", "--epochs", "1", "--out", out]) == 2
    assert said in one_line(capsys)
    assert not list(tmp_path.iterdir())  # not even the default results/ folder


@pytest.mark.parametrize("argv, said", [
    (["perf", "--methods", "fourier", "--sizes", "3"], "fourier does not take 3 px inputs"),
    (["perf", "--methods", "fourier", "--sizes", "29"], "fourier does not take 29 px inputs"),
    (["equivariance", "--methods", "cnn", "--sizes", "1,2,7"], "target size 1 is out of range 8..27"),
    (["equivariance", "--methods", "fourier[min_size=12]", "--sizes", "8"],
     "fourier[min_size=12] does not take 8 px inputs"),
    (["equivariance", "--checkpoint", "x.pt", "--methods", "sesn"],
     "--methods cannot be used with --checkpoint"),
    (["equivariance", "--checkpoint", "x.pt", "--config", "quick"],
     "--config cannot be used with --checkpoint"),
])
def test_sizes_and_options_a_measurement_cannot_use_are_one_line(argv, said, tmp_path, capsys,
                                                                  monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main([*argv, "--quiet"]) == 2
    assert said in one_line(capsys)
    assert not list(tmp_path.iterdir())


class FiveLogits(nn.Module):
    def __init__(self, in_channels=1, num_classes=10, width=4):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, width, 3, padding=1)
        self.fc = nn.Linear(width, 5)  # ignores num_classes

    def features(self, x):
        return {"conv": self.conv(x)}

    def forward(self, x):
        return self.fc(self.conv(x).mean((-2, -1)))


@pytest.fixture()
def five_logits():
    methods.register_method("five_logits", MethodCard(family="test"),
                            configs={"mnist": {}, "quick": {}})(
        lambda in_channels=1, num_classes=10, **kw: FiveLogits(in_channels, num_classes, **kw))
    yield "five_logits"
    methods.unregister_method("five_logits")


@pytest.mark.parametrize("command", ["run", "perf"])
def test_a_model_with_the_wrong_number_of_logits_is_refused_before_training(
        command, five_logits, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = (["run", "--methods", "five_logits[width=3]", "--epochs", "1", "--out", "exp"]
            if command == "run" else ["perf", "--methods", "five_logits", "--sizes", "8",
                                      "--config", "quick"])
    assert cli.main([*argv, "--quiet"]) == 2
    err = one_line(capsys)
    assert "returns (2, 5)" in err and "shape (batch, 10)" in err
    assert not list(tmp_path.iterdir())
