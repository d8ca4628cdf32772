"""The architecture search: a Hydra sweeper whose jobs are points of a declared space, chosen by Optuna.

    elmarc -m hydra/sweeper=search space=spectrogram dataset=esc10 dataset.root=... [hydra.sweeper.n_trials=40]

Each trial asks Optuna for a point (search.space.suggest), runs it as one elmarc job through Hydra's launcher
(basic, joblib or submitit: the same storage serves them all) and tells Optuna the job's score: the random
read-out's accuracy (predictor=svm or elm) or a proxy's score (predictor=<proxy>). Honest by construction: the
jobs never read the holdout folds (holdout_folds: their clips are left out before anything is decoded), the
folds a chosen architecture's accuracy is later reported on (search.report).

Resumable and shareable: the study lives in the sweep folder (an Optuna journal file, which several processes
and machines may append to) and is made by one definition (space, predictor, fixed overrides, folds), refused
under another; n_trials counts the study's finished trials, so the same command after a kill runs only the
rest; a trial the kill cut short is asked again with its point. Each trial's draws are seeded by the search's
seed and the trial's number (trial_seed). A point already scored is told its score again without a job (the
feature and result caches would serve it anyway).
"""
from __future__ import annotations

import json
import logging
import math
import os
import socket
import time
from pathlib import Path

from omegaconf import DictConfig

from ..errors import UserError
from . import space as spaces

log = logging.getLogger(__name__)
PREDICTORS_READOUT = ("svm", "elm")
SET_BY_SEARCH = ("frontend", "classifier", "stage", "objective", "holdout_folds", "proxies.names")
TRIALS = "trials.csv"
JOURNAL = "search.journal"


class SearchError(UserError):
    """A search that cannot run as configured; the message names the key and the fix."""


def owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def is_dead(tag: str | None) -> bool:
    """Whether the process that tagged a running trial is gone (only a process on this host can be told)."""
    if not tag or ":" not in tag:
        return False
    host, pid = tag.rsplit(":", 1)
    if host != socket.gethostname():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False


def predictor_overrides(predictor: str) -> list[str]:
    from ..config import PROXY_NAMES

    if predictor in PREDICTORS_READOUT:
        return [f"classifier={predictor}", "stage='extract,classify'", "objective=accuracy"]
    if predictor in PROXY_NAMES:
        return ["stage='extract,proxies'", f"proxies.names=[{predictor}]", f"objective={predictor}"]
    raise SearchError(f"hydra.sweeper.predictor={predictor!r} is not allowed: use one of {[*PREDICTORS_READOUT, *PROXY_NAMES]}")


def open_storage(storage, sweep_dir: Path):
    import optuna

    if storage in (None, "", "journal"):
        storage = str(sweep_dir / JOURNAL)
    storage = str(storage)
    if "://" in storage:
        return storage            # an RDB URL (sqlite:///..., postgresql://...)
    Path(storage).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(storage))


def make_sampler(name: str, seed: int, n_startup_trials: int):
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup_trials, constant_liar=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise SearchError(f"hydra.sweeper.sampler={name!r} is not allowed: use tpe or random")


def trial_seed(seed: int, number: int) -> int:
    """The sampler's seed for one trial: its draws depend on the search's seed, the trial's number (unique in the
    study, whichever process asks it) and the scores so far, so two processes sharing a study, or a search resumed
    after a kill, never draw a trial's points again, and one process alone draws the same ones every time."""
    import numpy as np

    return int(np.random.SeedSequence([int(seed), int(number)]).generate_state(1)[0])


def job_overrides(fixed: list[str], frontend: list[str], extra: list[str], holdout: list[int], subdir: str) -> list[str]:
    """One job of the search: the command line's overrides, its front-end, the predictor's, the folds it never
    reads and its folder in the sweep."""
    return [*fixed, *frontend, *extra, f"holdout_folds={spaces.override_value(holdout)}", f"hydra.sweep.subdir={subdir}"]


def ask_again(study, number: int, params: dict) -> None:
    """A trial cut short: told failed, kept out of the budget (the study's 'interrupted'), its point asked next."""
    import optuna

    study.set_user_attr("interrupted", sorted({*study.user_attrs.get("interrupted", []), number}))
    study.tell(number, state=optuna.trial.TrialState.FAIL)
    if params:
        study.enqueue_trial(params, skip_if_exists=False)


def auto_holdout(folds: list[int]) -> list[int]:
    """The last third of the folds (at least one; ESC-10's 5 folds -> its folds 4 and 5, 0-based 3 and 4)."""
    return folds[-max(1, math.ceil(len(folds) / 3)):]


class SearchSweeperImpl:
    def __init__(self, predictor: str = "svm", n_trials: int = 30, n_jobs: int = 1, sampler: str = "tpe", seed: int = 0,
                 n_startup_trials: int = 10, storage=None, study_name: str | None = None, holdout_folds="auto",
                 max_failure_rate: float = 0.0, top_k: int = 3, compare=()):
        self.predictor = str(predictor)
        self.n_trials, self.n_jobs = int(n_trials), int(n_jobs)
        self.sampler_name, self.seed, self.n_startup_trials = str(sampler), int(seed), int(n_startup_trials)
        self.storage, self.study_name = storage, study_name
        self.holdout_folds = holdout_folds
        self.max_failure_rate, self.top_k = float(max_failure_rate), int(top_k)
        self.compare = [str(c) for c in (compare or [])]
        if self.n_trials < 1 or self.n_jobs < 1:
            raise SearchError(f"hydra.sweeper.n_trials={n_trials} and n_jobs={n_jobs}: use 1 or more")

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(config=config, hydra_context=hydra_context,
                                                                task_function=task_function)
        self.sweep_dir = Path(str(config.hydra.sweep.dir))

    # ------------------------------------------------------------------ what the search is
    def fixed_overrides(self, arguments: list[str]) -> list[str]:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        for o in OverridesParser.create().parse_overrides(arguments):
            key = o.get_key_element().lstrip("+~")
            if o.is_sweep_override():
                raise SearchError(f"{o.input_line}: a search runs one job per trial; sweep the search itself (one "
                                  f"command per value) or put {key} in the space")
            if key in SET_BY_SEARCH or key.startswith("frontend."):
                raise SearchError(f"{o.input_line}: the search sets {key} itself (from the space and "
                                  f"hydra.sweeper.predictor); leave it off the command line")
        return list(arguments)

    def resolve_holdout(self, fixed: list[str]) -> list[int]:
        """The folds no trial reads: as given, or auto (the last third of the dataset's folds)."""
        from ..datasets import build_dataset

        job_cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(fixed))
        source = build_dataset(job_cfg.dataset)
        if source.scheme != "folds":
            raise SearchError(f"dataset {source.name!r} has predefined splits: the search needs folds to hold some "
                              f"out (its trials would be scored on the test split). Fix: a dataset with folds.")
        folds = source.fold_ids()
        chosen = auto_holdout(folds) if self.holdout_folds == "auto" else sorted(int(f) for f in self.holdout_folds)
        source.without_folds(chosen)        # the dataset's own checks: folds it has, two left to score on
        return chosen

    def definition(self, space: dict, fixed: list[str], holdout: list[int]) -> dict:
        return {"space": space, "predictor": self.predictor, "fixed_overrides": sorted(fixed), "holdout_folds": holdout,
                "sampler": self.sampler_name, "seed": self.seed}

    # ------------------------------------------------------------------ the loop
    def sweep(self, arguments: list[str]):
        import optuna

        if self.config.get("space") is None:
            raise SearchError("no search space: add space=<name> (elmarc/conf/space/: spectrogram, waveform, audio; or "
                              "space/<name>.yaml in your --config-dir)")
        space = spaces.check(self.config.space)
        fixed = self.fixed_overrides(arguments)
        extra = predictor_overrides(self.predictor)
        holdout = self.resolve_holdout(fixed)
        definition = self.definition(space, fixed, holdout)
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        storage = open_storage(self.storage, self.sweep_dir)
        name = self.study_name or f"elmarc-{space.get('name', 'space')}-{self.predictor}"
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True,
                                    sampler=make_sampler(self.sampler_name, self.seed, self.n_startup_trials))
        self.claim(study, definition)
        self.requeue_interrupted(study)
        log.info("search %s: space %s (%d points), predictor %s, holdout folds %s, %d trials; storage %s",
                 name, space.get("name"), spaces.size(space), self.predictor, holdout, self.n_trials, self.storage or
                 self.sweep_dir / JOURNAL)
        failures = 0
        while True:
            todo = self.n_trials - self.counted(study)
            if todo <= 0:
                break
            batch = [study.ask() for _ in range(min(self.n_jobs, todo))]
            launch, jobs = [], []
            for trial in batch:
                trial.set_user_attr("owner", owner())
                study.sampler = make_sampler(self.sampler_name, trial_seed(self.seed, trial.number), self.n_startup_trials)
                tname, point = spaces.suggest(trial, space)
                earlier = self.scored(study, tname, point)
                if earlier is not None:          # the same point again: its score, no job
                    trial.set_user_attr("same_as", earlier.number)
                    trial.set_user_attr("seconds", 0.0)
                    study.tell(trial, earlier.value)
                    continue
                subdir = f"trial-{trial.number:04d}"
                trial.set_user_attr("job_dir", subdir)
                jobs.append(trial)
                launch.append(job_overrides(fixed, spaces.frontend_overrides(space, tname, point), extra, holdout, subdir))
            if jobs:
                start = time.perf_counter()
                try:
                    returns = self.launcher.launch(launch, initial_job_idx=jobs[0].number)
                except BaseException:            # stopped (SIGTERM, Ctrl-C): these trials run again on resume
                    for trial in jobs:
                        ask_again(study, trial.number, trial.params)
                    raise
                seconds = (time.perf_counter() - start) / len(jobs)
                for trial, ret in zip(jobs, returns):
                    trial.set_user_attr("seconds", round(seconds, 3))
                    try:
                        value = ret.return_value
                        if value is None or not math.isfinite(float(value)):
                            raise SearchError(f"trial {trial.number} returned {value!r}, not a score")
                        study.tell(trial, float(value))
                    except Exception as exc:
                        failures += 1
                        trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:500])
                        study.tell(trial, state=optuna.trial.TrialState.FAIL)
                        log.warning("trial %d failed: %s", trial.number, exc)
                if failures > self.max_failure_rate * max(1, self.counted(study)):
                    self.write(study, space, holdout)
                    raise SearchError(f"{failures} trial(s) failed (hydra.sweeper.max_failure_rate={self.max_failure_rate}); "
                                      f"their errors: {self.sweep_dir / TRIALS} and the trial folders")
            self.write(study, space, holdout)
        self.score_compared(study, fixed, extra, holdout)
        self.write(study, space, holdout)
        return study

    def score_compared(self, study, fixed: list[str], extra: list[str], holdout: list[int]) -> None:
        """The front-ends to compare with (the paper's ten), scored as a trial is: same predictor, same folds."""
        have = dict(study.user_attrs.get("compare", {}))
        todo = [c for c in self.compare if c not in have]
        if not todo:
            return
        launch = [job_overrides(fixed, [f"frontend={c}"], extra, holdout, f"compare-{c}") for c in todo]
        returns = self.launcher.launch(launch, initial_job_idx=10_000 + len(have))
        for c, ret in zip(todo, returns):
            try:
                have[c] = {"score": float(ret.return_value)}
            except Exception as exc:        # e.g. a front-end the search's input is too short for: told, not fatal
                have[c] = {"score": None, "error": f"{type(exc).__name__}: {exc}"[:300]}
                log.warning("compare %s failed: %s", c, exc)
        study.set_user_attr("compare", have)

    def claim(self, study, definition: dict) -> None:
        """Record the study's definition, or refuse a study made by another one."""
        plain = json.loads(json.dumps(definition, default=str))
        have = study.user_attrs.get("definition")
        if have is None:
            study.set_user_attr("definition", plain)
        elif have != plain:
            differ = sorted(k for k in set(have) | set(plain) if have.get(k) != plain.get(k))
            raise SearchError(f"the study {study.study_name!r} in {self.sweep_dir} was made by another search (its "
                              f"{', '.join(differ)} differ). Fix: another hydra.sweep.dir (or hydra.sweeper.study_name), "
                              f"or the first command again")

    @staticmethod
    def requeue_interrupted(study) -> None:
        """A trial left running by a process that is gone (a SIGKILL, a lost machine) is asked again."""
        import optuna

        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            if is_dead(t.user_attrs.get("owner")):
                log.info("trial %d was cut short (%s is gone): asked again", t.number, t.user_attrs.get("owner"))
                ask_again(study, t.number, t.params)

    @staticmethod
    def counted(study) -> int:
        """Trials that count against the budget: finished (failed ones too) or running elsewhere, not interrupted."""
        import optuna

        cut = set(study.user_attrs.get("interrupted", []))
        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL, optuna.trial.TrialState.RUNNING)
        return sum(1 for t in study.get_trials(deepcopy=False, states=states) if t.number not in cut)

    @staticmethod
    def scored(study, tname: str, point: dict):
        import optuna

        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            if spaces.point_of(t.params) == (tname, point) and "same_as" not in t.user_attrs:
                return t
        return None

    def write(self, study, space: dict, holdout: list[int]) -> None:
        from .report import write_search

        write_search(study, space, self.sweep_dir, holdout=holdout, predictor=self.predictor, top_k=self.top_k)
