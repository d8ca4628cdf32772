"""A search space of declared front-ends: templates (the family format of frontends.family) whose parameters are
choices or integer ranges, read by the search sweeper (search.sweeper).

    space:
      name: spectrogram
      templates:
        timbral:
          input: logmel
          params: {kt: {low: 1, high: 7, step: 2}, kf: [24, 48, 86], nf: [32, 64]}
          layers: [{type: conv2d, filters: $nf, kernel: [$kt, $kf]}, ...]

A point is (template, {param: value}); Optuna names its parameters "template" and "<template>.<param>", so a
parameter of one template never shares a distribution with another's. A point becomes the overrides that make a
job run it as its front-end (frontend=space, the layers written out), named space/<template>_<params> as the
family names its variants, so one point is one feature cache entry whichever trial asks for it.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

from omegaconf import DictConfig, OmegaConf

from ..frontends.family import FamilyError, grid, substitute, variant_config, variant_name


class SpaceError(ValueError):
    pass


def check(space: Mapping) -> dict:
    """The space as plain data, every template and parameter checked (one line naming what is wrong)."""
    if isinstance(space, DictConfig):
        space = OmegaConf.to_container(space, resolve=True)
    space = dict(space)
    if not space.get("templates"):
        raise SpaceError(f"space {space.get('name', '?')!r} has no templates: give it 'templates: {{name: {{input, params, layers}}}}'")
    name = space.get("name", "space")
    for tname, t in space["templates"].items():
        missing = {"input", "params", "layers"} - set(t)
        if missing:
            raise SpaceError(f"space {name!r}: template {tname!r} lacks {sorted(missing)}")
        for p, choices in t["params"].items():
            where = f"space {name!r}: {tname}.params.{p}"
            if isinstance(choices, Mapping):
                unknown = set(choices) - {"low", "high", "step", "log"}
                if unknown or not {"low", "high"} <= set(choices):
                    raise SpaceError(f"{where}: a range is {{low, high, step, log}}, got {dict(choices)}")
                low, high, step = int(choices["low"]), int(choices["high"]), int(choices.get("step", 1))
                if low > high or step < 1 or (choices.get("log") and (low < 1 or step != 1)):
                    raise SpaceError(f"{where}: {dict(choices)} is not a range (low <= high, step >= 1; log needs low >= 1, step 1)")
            elif not isinstance(choices, (list, tuple)) or not choices:
                raise SpaceError(f"{where}: give a list of choices or a range {{low, high}}, got {choices!r}")
        try:   # every placeholder names a parameter: substitute the first point of the grid
            substitute(t["layers"], {p: lowest(c) for p, c in t["params"].items()}, f"{tname}.layers")
        except FamilyError as exc:
            raise SpaceError(f"space {name!r}: {exc}") from None
    return space


def lowest(choices):
    return choices["low"] if isinstance(choices, Mapping) else choices[0]


def values(choices) -> list:
    """Every value a parameter can take."""
    if isinstance(choices, Mapping):
        return list(range(int(choices["low"]), int(choices["high"]) + 1, int(choices.get("step", 1))))
    return list(choices)


def size(space: Mapping) -> int:
    """How many distinct points the space holds."""
    return sum(math.prod(len(values(c)) for c in t["params"].values()) for t in space["templates"].values())


def suggest(trial, space: Mapping) -> tuple[str, dict]:
    """The point an Optuna trial asks for: its template, then that template's parameters."""
    tname = trial.suggest_categorical("template", list(space["templates"]))
    point = {}
    for p, choices in space["templates"][tname]["params"].items():
        key = f"{tname}.{p}"
        if isinstance(choices, Mapping):
            point[p] = trial.suggest_int(key, int(choices["low"]), int(choices["high"]), step=int(choices.get("step", 1)),
                                         log=bool(choices.get("log", False)))
        else:
            point[p] = trial.suggest_categorical(key, list(choices))
    return tname, point


def point_of(params: Mapping) -> tuple[str, dict]:
    """(template, point) from an Optuna trial's params."""
    tname = params["template"]
    return tname, {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith(f"{tname}.")}


def frontend_config(space: Mapping, tname: str, point: dict) -> dict:
    """The front-end config of a point (the family's format, named space/<variant>)."""
    return variant_config(tname, space["templates"][tname], point, "space")


def name_of(tname: str, point: dict) -> str:
    return f"space/{variant_name(tname, point)}"


def frontend_overrides(space: Mapping, tname: str, point: dict) -> list[str]:
    """The command-line overrides that make a job run this point as its front-end."""
    cfg = frontend_config(space, tname, point)
    return ["frontend=search/point", f"frontend.name={cfg['name']}", f"frontend.model.input={cfg['model']['input']}",
            f"frontend.model.layers={override_value(cfg['model']['layers'])}",
            f"frontend.widths.small={cfg['widths']['small']}", f"frontend.widths.large={cfg['widths']['large']}"]


def override_value(value) -> str:
    """A value in Hydra's override grammar: strings quoted, so 'all', 'same' or '2*nf' stay strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{override_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    if value is None:
        return "null"
    raise SpaceError(f"cannot write {value!r} as an override")


def every_point(space: Mapping) -> list[tuple[str, dict]]:
    """Every point of the space, in a fixed order (templates as listed, the family's grid order)."""
    out = []
    for tname, t in space["templates"].items():
        for point in grid({"params": {p: values(c) for p, c in t["params"].items()}}):
            out.append((tname, point))
    return out
