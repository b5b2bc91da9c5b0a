"""What a new user meets at the command line: defaults not mistaken for their own options, "did you mean"
for misspelt names, timm model listing with a pattern, and tables that fit a 100-column terminal.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from indexnas.cli import main

FACTORY = '''
import torch
from torch import nn


class PoolUp(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.pool = nn.Conv2d(1, 8, 3, padding=1), nn.MaxPool2d(2)
        self.c2, self.up, self.head = nn.Conv2d(8, 8, 3, padding=1), nn.Upsample(scale_factor=2), nn.Conv2d(8, 1, 1)

    def forward(self, x):
        return self.head(self.up(self.c2(self.pool(self.c1(x)))))


def with_example():
    return PoolUp(), torch.rand(1, 1, 24, 24)
'''


@pytest.fixture(scope="module")
def factory_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("user") / "mymodel.py"
    path.write_text(FACTORY)
    return str(path)


@pytest.mark.parametrize("extra", [[], ["--no-flops"]])
def test_table_of_a_factory_with_its_own_example_takes_no_size_by_default(factory_file, capsys, extra):
    assert main(["table", f"{factory_file}:with_example", *extra]) == 0
    out, err = capsys.readouterr()
    assert "--size does not apply" not in err and "input (1, 1, 24, 24)" in out


def test_table_of_a_factory_with_its_own_example_refuses_an_explicit_size(factory_file, capsys):
    assert main(["table", f"{factory_file}:with_example", "--size", "64", "--no-flops"]) == 2
    assert "--size does not apply" in capsys.readouterr().err
