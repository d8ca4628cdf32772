"""The config schema: every default and every type lives here, once (Hydra's ConfigStore).

conf/config.yaml picks the group options; each option file extends its schema below
(``defaults: [/schema/<group>/<name>@_here_]``) and states only what differs. An
unknown or misspelt key, on the command line or in a YAML, fails at composition,
before any audio is read, with a message that names it. The rules that span fields
or ranges are in ``check_rules``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Optional

from hydra import compose as hydra_compose
from hydra import initialize_config_dir, initialize_config_module
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.initialize import get_gh_backup, restore_gh_from_backup
from hydra.utils import get_object
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import UserError

WIDTHS = ("small", "large")
PRECISIONS = ("32-true", "32", "64-true", "64", "16-mixed", "bf16-mixed", "16-true", "bf16-true")
STAGES = ("extract", "classify", "proxies", "train", "report")
DEFAULT_STAGES = ("extract", "classify", "report")     # 'all': training is asked for by name (it costs hours)

# SPEC section 3: the paper's grids
PAPER_SVM_C = (0.1, 2.0, 8.0, 32.0)
PAPER_SVM_GAMMAS = (2.0**-3, 2.0**-5, 2.0**-7, 2.0**-9, 2.0**-11, 2.0**-13, "auto")   # "auto": 1 / n_features
PAPER_ELM_HIDDEN = (100, 250, 500, 1200, 1800, 2500)


class ConfigError(UserError):
    """A config value that cannot work; the message names the key, the value and what is allowed."""


class Width(StrEnum):
    small = "small"
    large = "large"


class Resampler(StrEnum):
    soxr_hq = "soxr_hq"
    polyphase = "polyphase"


class Accelerator(StrEnum):
    auto = "auto"
    cpu = "cpu"
    gpu = "gpu"
    cuda = "cuda"
    mps = "mps"


# skip: bad clips are listed in skipped.csv and the run goes on; raise: any bad clip stops the run.
# (the functional form, because 'raise' is a keyword and OmegaConf converts strings by member name)
OnError = StrEnum("OnError", {"skip": "skip", "raise": "raise"})


class ConvForms(StrEnum):
    rule = "rule"          # each layer's own rule (device, ISA, sizes): the same bytes whatever the load
    plain = "plain"        # the plain convolutions (the reference)
    auto = "auto"          # measure the forms of each layer where it runs, keep the fastest (remembered per machine)


class Protocol(StrEnum):
    auto = "auto"                # the dataset's natural protocol
    paper = "paper"
    nested = "nested"
    predefined = "predefined"


class Task(StrEnum):
    rhythm = "rhythm"
    timbre = "timbre"


# ----------------------------------------------------------------------------- top-level nodes
@dataclass
class InputConfig:
    """SPEC section 1; every field is part of the feature cache key."""

    sample_rate: int = 12000
    n_samples: int = 350000          # waveform input (~29.2 s)
    n_frames: int = 1376             # spectrogram input frames
    n_fft: int = 512
    hop_length: int = 256
    n_mels: int = 96
    f_min: float = 0.0
    f_max: float = 6000.0
    amin: float = 1e-10
    top_db: float = 80.0
    resampler: Resampler = Resampler.soxr_hq

    def as_dict(self) -> dict:
        return {k: (str(v) if isinstance(v, StrEnum) else v) for k, v in asdict(self).items()}


@dataclass
class ExtractConfig:
    accelerator: Accelerator = Accelerator.auto      # GPU when present, CPU otherwise
    devices: int = 1
    precision: str = "32-true"       # features must stay comparable: mixed precision only on purpose
    compile: Optional[bool] = None   # torch.compile; null: where the front-end's `compile` flag says it pays (large width)
    conv_forms: ConvForms = ConvForms.rule  # which form of each layer runs (they round differently: in the key, with auto's plan)
    native_kernels: bool = True      # forms may use C++ kernels compiled here on first use (needs a C++ compiler)
    tf32: bool = False               # GPU: let cuDNN round fp32 convs to TF32 (faster, other numbers; in the cache key)
    batch_size: Optional[int] = None     # null: the front-end's batch_size (gpu_batch_size on a GPU) for the width
    threads: Optional[int] = None        # torch CPU threads per job (null: torch's default); 1 when jobs run in parallel
    num_workers: Optional[int] = None    # DataLoader workers (null: see extract.inputs.default_workers)
    progress: bool = True
    audio_cache: bool = True         # decode + resample each file once per dataset, shared by every job
    on_error: OnError = OnError.skip


@dataclass
class ClassifyConfig:
    standardize: bool = False        # SPEC 3: features as extracted; true = z-score on the training part
    n_jobs: Optional[int] = None     # fits in parallel; null: every core the job was given (see resources.job_cores)


class ReadoutNorm(StrEnum):
    fixed = "fixed"            # standardise the feature vector with the training part's statistics at initialisation
    batchnorm = "batchnorm"    # BatchNorm1d on the feature vector (learned; only when asked)
    none = "none"


@dataclass
class RecipeConfig:
    """How every front-end is trained end to end (train stage); every key is in the checkpoint key."""

    name: str = "default"
    optimizer: str = "adamw"           # adamw or sgd (momentum 0.9)
    lrs: list = field(default_factory=lambda: [1e-3, 1e-4])   # chosen by the lowest validation loss
    weight_decay: float = 1e-4
    batch_size: int = 16
    max_epochs: int = 30
    patience: int = 5                  # early stopping: epochs without a lower validation loss
    val_fraction: float = 0.15         # k folds: stratified part of the training folds (predefined: the valid split)
    dropout: float = 0.5
    readout_norm: ReadoutNorm = ReadoutNorm.fixed
    input_norm: bool = True            # inputs standardised with the training part's mean and std (one scalar each)
    crop: Optional[float] = None       # random crops of this fraction of the input while training (null: whole input)
    split_seed: int = 0                # the validation carve-out; never the job's seed (same for every front-end)
    accelerator: Accelerator = Accelerator.auto
    progress: bool = True
    input_memory_mib: int = 1024       # inputs kept in memory up to this size (0: made again each epoch); not in the key


# the training-free predictors of neural-architecture search (elmarc.train.proxies says what each is)
PROXY_NAMES = ("naswot", "synflow", "snip", "grad_norm", "jacob_cov", "fisher", "params", "flops")


@dataclass
class ProxyConfig:
    """The proxies stage (and the train stage, which runs it first): scores at initialisation, per outer split."""

    names: list = field(default_factory=lambda: list(PROXY_NAMES))
    batch_size: int = 32               # the minibatch, drawn from the split's training part (job seed, fold)


@dataclass
class FeaturesConfig:
    width: Width = MISSING


@dataclass
class ProtocolConfig:
    name: Protocol = Protocol.auto


@dataclass
class PerWidth:
    small: int = MISSING
    large: int = MISSING


@dataclass
class CompileFlag:
    cpu: bool = False
    gpu: bool = False


@dataclass
class FrontendConfig:
    """A front-end: the model node (its constructor's arguments) and how to run it."""

    name: str = MISSING
    model: Any = MISSING                 # {_target_: a Frontend class, ...its arguments}
    widths: Optional[PerWidth] = None    # filters per layer (nf); null: the front-end has no width (mfcc)
    batch_size: PerWidth = field(default_factory=lambda: PerWidth(16, 4))
    gpu_batch_size: PerWidth = field(default_factory=lambda: PerWidth(64, 16))
    compile: CompileFlag = field(default_factory=CompileFlag)   # where torch.compile pays (make bench)


# ----------------------------------------------------------------------------- datasets
@dataclass
class DatasetConfig:
    _target_: str = MISSING
    name: str = MISSING
    protocol: Protocol = Protocol.paper          # the dataset's natural protocol (protocol=auto)


@dataclass
class FileDataset(DatasetConfig):
    root: Optional[str] = None                   # your copy: dataset.root=/path/to/it


@dataclass
class SyntheticDataset(DatasetConfig):
    """Embedded dataset, generated from a seed (no files)."""

    _target_: str = "elmarc.datasets.synthetic.build"
    name: str = "synthetic"
    task: Task = Task.rhythm         # rhythm: classes differ in tempo only; timbre: in spectrum only
    n_classes: int = 4
    n_per_class: int = 20
    duration: float = 6.0            # seconds per generated clip (repeat-padded to the model input)
    sample_rate: int = 16000         # generated at 16 kHz, so every run exercises the resampler
    data_seed: int = 1234            # the data; the model seed is the top-level seed
    n_folds: int = 5


@dataclass
class GTZANDataset(FileDataset):
    _target_: str = "elmarc.datasets.gtzan.build"
    name: str = "gtzan"
    protocol: Protocol = Protocol.predefined
    verify_md5: bool = False         # check .wav copies against the shipped mirdata md5 index


@dataclass
class BallroomDataset(FileDataset):
    _target_: str = "elmarc.datasets.ballroom.build"
    name: str = "ballroom"
    classes: list[str] = field(default_factory=lambda: [
        "Chacha", "Foxtrot", "Jive", "Pasodoble", "Quickstep", "Rumba", "Salsa", "Samba", "Slowwaltz",
        "Tango", "Viennesewaltz", "Waltz", "Wcswing"])
    n_folds: int = 10
    fold_seed: int = 0


@dataclass
class UrbanSound8KDataset(FileDataset):
    _target_: str = "elmarc.datasets.urbansound8k.build"
    name: str = "urbansound8k"
    metadata: Optional[str] = None   # null: <root>/metadata/UrbanSound8K.csv; 'packaged': the copy shipped with elmarc


@dataclass
class ESC10Dataset(FileDataset):
    _target_: str = "elmarc.datasets.esc.build_esc10"
    name: str = "esc10"


@dataclass
class ESC50Dataset(FileDataset):
    _target_: str = "elmarc.datasets.esc.build_esc50"
    name: str = "esc50"


@dataclass
class FSDDDataset(FileDataset):
    _target_: str = "elmarc.datasets.fsdd.build"
    name: str = "fsdd"
    takes_per_digit: Optional[int] = None    # takes 0..n-1 of each (speaker, digit); null: all 50


@dataclass
class FolderDataset(FileDataset):
    _target_: str = "elmarc.datasets.folder.build"
    name: str = "folder"
    list: Optional[str] = None       # a CSV (path,label[,fold|split]) instead of class folders
    n_folds: int = 5
    fold_seed: int = 0


# ----------------------------------------------------------------------------- classifiers
@dataclass
class SVMConfig:
    """SPEC section 3: rbf x gammas x C, and linear x C."""

    _target_: str = "elmarc.classify.svm.SVMGrid"
    name: str = "svm"
    C: list[float] = field(default_factory=lambda: list(PAPER_SVM_C))
    gammas: list[Any] = field(default_factory=lambda: list(PAPER_SVM_GAMMAS))
    linear: bool = True
    max_iter: int = -1               # libsvm iterations per pair; -1: the converged answer (the reference); > 0: a cap (flagged)
    tol: float = 1e-3
    smo_budget: Optional[int] = 16_000_000   # SMO work per pair (iterations x clips) before the exact solve; null: libsvm to convergence


@dataclass
class ELMConfig:
    """SPEC section 3: relu(XW + b), W, b ~ N(0, 1), +1/-1 targets, pinv output weights."""

    _target_: str = "elmarc.classify.elm.ELMGrid"
    name: str = "elm"
    n_hidden: list[int] = field(default_factory=lambda: list(PAPER_ELM_HIDDEN))


# ----------------------------------------------------------------------------- the whole job
@dataclass
class Config:
    """One job = one dataset x frontend x features (width) x classifier x seed."""

    dataset: Any = MISSING
    frontend: FrontendConfig = MISSING
    features: FeaturesConfig = MISSING
    classifier: Any = MISSING
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    seed: int = 0                    # CNN and ELM weights (data splits never depend on it)
    stage: str = "all"               # all (extract,classify,report), or a comma list of extract,classify,proxies,train,report
    cache_dir: str = "${oc.env:ELMARC_CACHE,cache}"   # feature + result cache, shared by every job
    input: InputConfig = field(default_factory=InputConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    classify: ClassifyConfig = field(default_factory=ClassifyConfig)
    recipe: RecipeConfig = field(default_factory=RecipeConfig)
    proxies: ProxyConfig = field(default_factory=ProxyConfig)
    # folds this job never reads (their clips are left out before anything is decoded): a search's report folds
    holdout_folds: list = field(default_factory=list)
    # outer folds the train stage trains (empty: every fold); a search's confirmation needs only its held-out folds
    train_folds: list = field(default_factory=list)
    objective: str = "accuracy"      # what the job returns to a sweeper: the classifier's mean accuracy, or a proxy's score
    space: Any = None                # a search space (conf/space/<name>.yaml, space=<name>): read by the search sweeper


SCHEMAS = {
    "dataset": {"synthetic": SyntheticDataset, "gtzan": GTZANDataset, "ballroom": BallroomDataset,
                "urbansound8k": UrbanSound8KDataset, "esc10": ESC10Dataset, "esc50": ESC50Dataset,
                "fsdd": FSDDDataset,
                "folder": FolderDataset},
    "classifier": {"svm": SVMConfig, "elm": ELMConfig},
    "frontend": {"frontend": FrontendConfig},
}


def schema_for(target: str):
    """The schema dataclass whose _target_ is ``target`` (None for a target elmarc does not know)."""
    for nodes in SCHEMAS.values():
        for node in nodes.values():
            if getattr(node, "_target_", None) == target:
                return node
    return None


def checked_target(target, key: str, is_kind, kind: str):
    """The object a YAML's `_target_` names, only if it is the kind its group needs (checked before anything
    is built: Hydra's instantiate would build whatever the name says, a file handler that truncates a file
    among them)."""
    try:
        obj = get_object(str(target))
    except Exception as exc:
        raise ConfigError(f"{key}={target!r} cannot be imported ({type(exc).__name__}: {exc})") from None
    if not is_kind(obj):
        raise ConfigError(f"{key}={target!r} is not {kind}; nothing was built.\n"
                          f"  Fix: name {kind} there (the packaged configs show how).")
    return obj


def with_schema(node: DictConfig | dict, schema=None) -> DictConfig:
    """A group node (a YAML's or a plain dict) merged over its schema: defaults filled, unknown keys refused."""
    node = node if isinstance(node, DictConfig) else OmegaConf.create(node)
    schema = schema or schema_for(node.get("_target_"))
    if schema is None or OmegaConf.get_type(node) is schema:
        return node
    try:
        return OmegaConf.merge(OmegaConf.structured(schema), node)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{schema.__name__}: {exc}") from None


def register_configs() -> None:
    """Store the schemas where the YAML files find them; outside the swept groups (so glob(*) skips them)."""
    cs = ConfigStore.instance()
    cs.store(name="elmarc_schema", node=Config)
    for group, nodes in SCHEMAS.items():
        for name, node in nodes.items():
            cs.store(group=f"schema/{group}", name=name, node=node)


def compose(overrides=(), config_dir: str | None = None) -> DictConfig:
    """The job config as ``elmarc <overrides>`` composes it, from Python (config_dir: a config folder
    to use instead of the packaged one); also inside a running Hydra app (a HEAR module used as a
    front-end calls it), whose own Hydra state is put back afterwards."""
    register_configs()
    running = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        init = (initialize_config_dir(str(config_dir), version_base="1.3") if config_dir
                else initialize_config_module("elmarc.conf", version_base="1.3"))
        with init:
            return hydra_compose("config", overrides=list(overrides))
    finally:
        restore_gh_from_backup(running)


# ----------------------------------------------------------------------------- rules across fields
def parse_stages(stage) -> list[str]:
    names = list(DEFAULT_STAGES) if stage in (None, "all") else (
        [s.strip() for s in stage.split(",")] if isinstance(stage, str) else list(stage))
    if "all" in names:                  # all,train: the default stages and training
        names = list(dict.fromkeys(n for name in names for n in (DEFAULT_STAGES if name == "all" else (name,))))
    bad = [s for s in names if s not in STAGES]
    if bad:
        raise ConfigError(f"stage={stage!r} is not allowed: unknown {bad}; use 'all' or a comma list of {list(STAGES)}")
    return names


def _at_least(key: str, value, minimum) -> None:
    if value is not None and value < minimum:
        raise ConfigError(f"{key}={value} is out of range: use a value >= {minimum}")


def check_rules(cfg: DictConfig) -> None:
    """Ranges and rules that span fields, except the input's (check_inputs, once a HEAR module's rate is
    settled); types were checked when the config was composed."""
    _at_least("seed", cfg.seed, 0)
    ex = cfg.extract
    for key in ("batch_size", "threads", "devices"):
        _at_least(f"extract.{key}", ex[key], 1)
    _at_least("classify.n_jobs", cfg.classify.n_jobs, 1)
    rc = cfg.recipe
    for key in ("batch_size", "max_epochs"):
        _at_least(f"recipe.{key}", rc[key], 1)
    _at_least("recipe.patience", rc.patience, 0)
    if not rc.lrs or any(not isinstance(v, (int, float)) or v <= 0 for v in rc.lrs):
        raise ConfigError(f"recipe.lrs={list(rc.lrs)}: use a list of positive learning rates")
    if str(rc.optimizer) not in ("adamw", "sgd"):
        raise ConfigError(f"recipe.optimizer={rc.optimizer!r} is not allowed: use adamw or sgd")
    for key, low, high in (("val_fraction", 0.0, 0.5), ("dropout", 0.0, 0.95), ("crop", 0.0, 1.0)):
        v = rc[key]
        if v is not None and not (low < v <= high if key != "dropout" else low <= v <= high):
            raise ConfigError(f"recipe.{key}={v} is out of range ({low}, {high}]")
    pc = cfg.proxies
    _at_least("proxies.batch_size", pc.batch_size, 2)
    unknown = [n for n in pc.names if n not in PROXY_NAMES]
    if unknown or not pc.names:
        raise ConfigError(f"proxies.names={list(pc.names)}: unknown {unknown}; use a list of {list(PROXY_NAMES)}")
    if str(cfg.objective) not in ("accuracy", *PROXY_NAMES):
        raise ConfigError(f"objective={cfg.objective!r} is not allowed: use accuracy or a proxy of {list(PROXY_NAMES)}")
    for key in ("holdout_folds", "train_folds"):
        if any(not isinstance(f, int) or isinstance(f, bool) for f in cfg[key]):
            raise ConfigError(f"{key}={list(cfg[key])}: use a list of fold numbers (0-based, as in results.csv)")
    _at_least("extract.num_workers", ex.num_workers, 0)
    if str(ex.precision) not in PRECISIONS:
        raise ConfigError(f"extract.precision={ex.precision!r} is not allowed: use one of {list(PRECISIONS)}")
    if "n_folds" in cfg.dataset:
        _at_least("dataset.n_folds", cfg.dataset.n_folds, 2)
    for key in ("C", "gammas", "n_hidden"):
        for value in cfg.classifier.get(key) or []:
            if value != "auto" and not (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0):
                raise ConfigError(f"classifier.{key} holds {value!r}: use positive numbers"
                                  + (" or 'auto'" if key == "gammas" else ""))


def check_inputs(inp: InputConfig) -> None:
    """The input's ranges and the rules across its fields (SPEC section 1)."""
    for key in ("sample_rate", "n_samples", "n_frames", "n_fft", "hop_length", "n_mels"):
        _at_least(f"input.{key}", getattr(inp, key), 1)
    for key in ("f_min", "amin", "top_db"):
        _at_least(f"input.{key}", getattr(inp, key), 0)
    if inp.f_max > inp.sample_rate / 2:
        raise ConfigError(f"input.f_max={inp.f_max} is above the Nyquist frequency of "
                          f"input.sample_rate={inp.sample_rate}: use at most {inp.sample_rate / 2}")
    if inp.f_min >= inp.f_max:
        raise ConfigError(f"input.f_min={inp.f_min} must be below input.f_max={inp.f_max}")
