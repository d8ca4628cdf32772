"""One job as objects: the config is read here, once, and turned into what each stage takes.

A job is dataset x frontend x features (width) x classifier x seed (conf/config.yaml). ``plan_job``
checks the config's rules, builds the front-end (a HEAR module's own rate settles the input before the
input's rules are checked), refuses one that cannot fit, builds the dataset's clip source, resolves the
protocol and checks its classes, resolves the extraction settings and keys the features entry; nothing
after it reads the config. Every mistake it finds is a one-line UserError, before any audio is decoded.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .classify.grid import GridJob, build_grid
from .classify.protocols import check_classes, resolve_protocol
from .config import ClassifyConfig, ConfigError, InputConfig, ProxyConfig, RecipeConfig, check_inputs, check_rules, parse_stages
from .datasets import ClipSource, build_dataset
from .extract.feature_cache import FeatureEntry
from .extract.key import feature_spec
from .extract.settings import Extraction
from .frontends import Frontend, FrontendFactory
from .resources import available_memory, job_cores


@dataclass(frozen=True)
class Job:
    """What the stages of one job take (pipeline.run_job runs them in order)."""

    stages: tuple[str, ...]
    cache_dir: Path
    inputs: InputConfig          # SPEC section 1, at a HEAR module's own rate where the front-end is one
    source: ClipSource           # the dataset's clips, their folds and splits
    frontend: FrontendFactory    # fresh copies of the front-end (the train stage builds one per run)
    model: Frontend              # the copy the extract stage runs
    extraction: Extraction       # extract.* resolved for this front-end, device and share of the cores
    features: FeatureEntry       # the cache entry the features are keyed by
    grid: GridJob                # the classifier grid, protocol, seed and row labels
    recipe: RecipeConfig         # how the train stage trains
    proxies: ProxyConfig         # which training-free proxies the proxies (and train) stage scores
    train_folds: tuple[int, ...] = ()   # the outer folds the train stage trains (empty: all)


def plan_job(cfg: DictConfig) -> Job:
    """The config turned into a Job (see the module's docstring for the order of the checks)."""
    check_rules(cfg)
    stages = tuple(parse_stages(cfg.stage))
    if str(cfg.objective) != "accuracy" and not {"proxies", "train"} & set(stages):
        raise ConfigError(f"objective={cfg.objective} is a proxy, but stage={cfg.stage!r} scores no proxies.\n"
                          f"  Fix: add proxies to the stages (stage='extract,proxies').")
    seed = int(cfg.seed)
    cache_dir = Path(cfg.cache_dir).expanduser().resolve()
    classifier = OmegaConf.to_container(cfg.classifier, resolve=True)
    build_grid(classifier, seed)                 # a grid that can work, before any work
    inputs: InputConfig = OmegaConf.to_object(cfg.input)
    shape = {"n_samples": inputs.n_samples, "n_frames": inputs.n_frames, "n_mels": inputs.n_mels}
    frontend = FrontendFactory.of(cfg.frontend, str(cfg.features.width), seed, shape)
    cores = job_cores()
    extraction = Extraction.resolve(OmegaConf.to_object(cfg.extract), frontend, cores, cache_dir)
    # the front-end first: a declared architecture that cannot work fails before any data is touched
    frontend.check_fits(extraction.batch_size, available_memory(extraction.gpu), "GPU" if extraction.gpu else "memory")
    model = frontend.build()
    inputs = at_module_rate(inputs, model)
    check_inputs(inputs)
    source = build_dataset(cfg.dataset).without_folds(list(cfg.holdout_folds))
    source.fingerprints = cache_dir / "fingerprints"      # clips' content digests, remembered per file
    protocol = resolve_protocol(str(cfg.protocol.name), source.scheme, source.protocol)
    check_classes(source.clips, protocol, source.name)
    spec, readable = feature_spec(source, frontend, model, inputs, extraction)
    classify: ClassifyConfig = OmegaConf.to_object(cfg.classify)
    grid = GridJob(classifier=classifier, protocol=protocol, standardize=bool(classify.standardize), seed=seed,
                   n_jobs=min(int(classify.n_jobs or cores), cores), labels=labels(source, frontend, model),
                   assignment=source.assignment())
    return Job(stages=stages, cache_dir=cache_dir, inputs=inputs, source=source, frontend=frontend, model=model,
               extraction=extraction, features=FeatureEntry.for_spec(cache_dir, spec, readable), grid=grid,
               recipe=OmegaConf.to_object(cfg.recipe), proxies=OmegaConf.to_object(cfg.proxies),
               train_folds=checked_train_folds(list(cfg.train_folds), source, protocol))


def checked_train_folds(folds: list[int], source, protocol: str) -> tuple[int, ...]:
    """The folds train_folds names, refused (one line) where the dataset has no such fold or no folds."""
    if not folds:
        return ()
    if protocol == "predefined":
        raise ConfigError(f"train_folds={folds}: dataset {source.name!r} has predefined splits (one test split to train "
                          f"for). Fix: leave train_folds out")
    have = source.fold_ids()
    unknown = sorted(set(folds) - set(have))
    if unknown:
        raise ConfigError(f"train_folds={folds}: dataset {source.name!r} has no fold {unknown} (its folds: {have}). "
                          f"Fix: name folds it has")
    return tuple(sorted(set(folds)))


def at_module_rate(inputs: InputConfig, model: Frontend) -> InputConfig:
    """The input settings at a HEAR module's own rate (its audio is decoded and cached at that rate)."""
    rate = getattr(model, "sample_rate", None)
    if not getattr(model, "pretrained", False) or rate is None or int(rate) == inputs.sample_rate:
        return inputs
    return dataclasses.replace(inputs, sample_rate=int(rate), f_max=min(float(inputs.f_max), rate / 2))


def labels(source: ClipSource, frontend: FrontendFactory, model: Frontend) -> dict:
    """The labels of a job's rows; a HEAR module under the default name 'hear' is labelled hear:<module>."""
    name = frontend.name
    if name == "hear" and hasattr(model, "module_name"):
        name = f"hear:{model.module_name}"
    return {"dataset": source.name, "frontend": name, "width": frontend.width}
