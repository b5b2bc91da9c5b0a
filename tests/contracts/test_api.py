"""The Python ways in: `suggest` in a user's own Optuna objective, `search` over a user's model and
callables, `load` and `apply` -- all on a model defined here, trained a few steps on CPU."""

import os

import optuna
import pytest
import torch
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from torch import nn

import indexnas
from indexnas.errors import UserError
from indexnas.search.space import SearchSpace


class Autoencoder(nn.Module):
    """A user's model: two max-pool / upsample stages around a bottleneck (two pairs to search)."""

    def __init__(self) -> None:
        super().__init__()
        self.enc1 = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.pool1 = nn.MaxPool2d(2)
        self.enc2 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.pool2 = nn.MaxPool2d(2)
        self.up2 = nn.Upsample(scale_factor=2)
        self.dec2 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.up1 = nn.Upsample(scale_factor=2)
        self.head = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pool2(self.enc2(self.pool1(self.enc1(x))))
        return self.head(self.up1(self.dec2(self.up2(y))))


def images(seed: int, count: int = 4) -> torch.Tensor:
    return torch.rand(count, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def fit(model: nn.Module, steps: int) -> None:
    """The user's own training loop: reconstruct the images."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for step in range(steps):
        batch = images(step)
        loss = nn.functional.mse_loss(model(batch), batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def reconstruction_error(model: nn.Module) -> float:
    model.eval()
    with torch.no_grad():
        batch = images(99)
        return float(nn.functional.mse_loss(model(batch), batch))


EXAMPLE = images(0, count=1)


def test_suggest_in_a_users_own_objective_with_their_sampler_and_journal_storage(tmp_path):
    torch.manual_seed(0)
    host = Autoencoder()
    before = {k: v.clone() for k, v in host.state_dict().items()}
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "mine.log")))
    study = optuna.create_study(study_name="mine", storage=storage, directions=["minimize", "minimize"],
                                sampler=optuna.samplers.NSGAIISampler(seed=0, population_size=4))

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        choice = indexnas.suggest(trial, host, EXAMPLE, max_params=400)
        fit(choice.model, steps=2)
        return reconstruction_error(choice.model), choice.params_added

    study.optimize(objective, n_trials=8)

    space = SearchSpace(host, EXAMPLE)  # the CLI search's parameter names, asked of the same trial
    names = {s.name for s in space.spaces}  # one categorical per pair (search/pair_space.py)
    assert {s.name for s in space.spaces} == {"pool1", "pool2"}
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    assert complete and pruned, [t.state for t in study.trials]
    for trial in study.trials:
        assert names <= set(trial.params) <= names | {"modelwise"}
        assert trial.user_attrs["recipe"]["choices"] == trial.user_attrs["choices"]
    for trial in pruned:  # over budget: pruned before the user's training ran
        assert trial.user_attrs["params_added"] > 400 and trial.user_attrs["failure"]["kind"] == "over_budget"
    for trial in complete:
        assert trial.values[1] == trial.user_attrs["params_added"] <= 400
        rebuilt = indexnas.apply(Autoencoder(), trial, EXAMPLE)  # the configuration back, to retrain
        assert sum(p.numel() for p in rebuilt.parameters()) == trial.user_attrs["params_total"]
    assert all(torch.equal(before[k], v) for k, v in host.state_dict().items()), "suggest rewrites a copy"


def train(model: nn.Module, budget) -> dict:
    fit(model, budget.steps)
    return {"steps": budget.steps}


def evaluate(model: nn.Module) -> dict:
    return {"mse": reconstruction_error(model), "psnr_like": -reconstruction_error(model)}


@pytest.fixture(scope="module")
def own_search(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("own")
    torch.manual_seed(0)
    study = indexnas.search(Autoencoder(), EXAMPLE, train=train, evaluate=evaluate, directions={"mse": "minimize"},
                            trials=3, budget_steps=2, storage=str(tmp_path / "studies.log"), out=tmp_path / "run",
                            report=False)
    return tmp_path, study


def test_search_over_a_users_model_and_callables_runs_the_clis_study(own_search):
    tmp_path, study = own_search
    assert study.metric_names == ["mse", "params_added"]  # GFLOPs: a budget unless objectives= asks for it
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"]
    assert [t.user_attrs.get("uniform") for t in study.trials[:3]] == ["host", "holistic", "holistic-nl"]
    assert (tmp_path / "run" / "host.pt").is_file()  # warm start: the host trained once
    attrs = study.user_attrs["indexnas"]
    assert attrs["primary_metric"] == "mse" and attrs["task"] == "custom" and attrs["model"] == "Autoencoder"
    for trial in study.get_trials(states=(TrialState.COMPLETE,)):
        assert trial.values[0] == trial.user_attrs["metrics"]["mse"] and trial.user_attrs["steps"] == 2
        assert trial.values[1:] == [trial.user_attrs["params_added"]]


def test_a_kept_trial_loads_onto_a_fresh_instance_of_the_users_model(own_search):
    _, study = own_search
    kept = [t for t in study.best_trials if t.user_attrs.get("checkpoint")]
    assert kept
    trial = kept[-1]
    model = indexnas.load(trial.user_attrs["checkpoint"], model=Autoencoder())
    assert reconstruction_error(model) == trial.user_attrs["metrics"]["mse"]
    with pytest.raises(UserError, match="pass a fresh instance"):
        indexnas.load(trial.user_attrs["checkpoint"])


def test_resuming_the_search_with_another_model_is_refused(own_search):
    tmp_path, _ = own_search

    class Wider(Autoencoder):
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Conv2d(8, 3, 5, padding=2)

    with pytest.raises(UserError, match="host_fingerprint"):
        indexnas.search(Wider(), EXAMPLE, train=train, evaluate=evaluate, directions={"mse": "minimize"}, trials=3,
                        budget_steps=2, storage=str(tmp_path / "studies.log"), out=tmp_path / "run",
                        study="custom-Autoencoder-pool", report=False)


def test_an_evaluation_without_the_searched_metric_fails_the_host_with_a_clear_message(tmp_path):
    with pytest.raises(UserError, match="returned no accuracy"):
        indexnas.search(Autoencoder(), EXAMPLE, train=train, evaluate=evaluate, directions={"accuracy": "maximize"},
                        trials=1, budget_steps=1, storage=str(tmp_path / "s.log"), out=tmp_path / "run", report=False)


def test_callables_that_worker_processes_cannot_receive_are_refused_before_anything_runs(tmp_path):
    with pytest.raises(UserError, match="top level of a module"):
        indexnas.search(Autoencoder(), EXAMPLE, train=lambda model, budget: None, evaluate=evaluate,
                        directions={"mse": "minimize"}, workers=2, storage=str(tmp_path / "s.log"), out=tmp_path / "run")
    assert not (tmp_path / "s.log").exists() and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_search_over_a_users_model_runs_in_worker_processes(tmp_path):
    study = indexnas.search(Autoencoder(), EXAMPLE, train=train, evaluate=evaluate, directions={"mse": "minimize"},
                            trials=4, budget_steps=2, workers=2, storage=str(tmp_path / "s.log"), out=tmp_path / "run",
                            report=False)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 4
    assert not any(t.user_attrs["worker"].endswith(f"-{os.getpid()}") for t in complete)  # worker processes did them
