"""Families of declared front-ends: layer-list templates with parameter choices, sampled reproducibly.

A family file (elmarc/conf/family/<name>.yaml) holds a seed and templates; a template holds an input, a layer
list in the YAML front-end language (frontends.declarative) with "$param" placeholders, the choices of each
parameter, and how many variants to draw. Besides the language's layers, a template may write
{repeat: $n, layers: [...]}, the layers written n times. The variants of a template are drawn without
replacement from its grid, enumerated in a fixed order (parameters sorted by name, choices as listed), by
random.Random(f"{seed}:{template}"); so a family is the same on any machine and Python version.

    python -m elmarc.frontends.family write [family.yaml]     # -> elmarc/conf/frontend/family/<variant>.yaml
    python -m elmarc.frontends.family list  [family.yaml] [--interleave]
"""
from __future__ import annotations

import argparse
import copy
import itertools
import random
import sys
from pathlib import Path

import yaml

CONF = Path(__file__).resolve().parents[1] / "conf"
DEFAULT = CONF / "family" / "audio24.yaml"
OUT = CONF / "frontend" / "family"


class FamilyError(ValueError):
    pass


def load(path: str | Path = DEFAULT) -> dict:
    path = Path(path)
    try:
        family = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise FamilyError(f"family file {path}: {exc}") from None
    for key in ("name", "seed", "templates"):
        if key not in family:
            raise FamilyError(f"family file {path}: no '{key}' key")
    for name, t in family["templates"].items():
        missing = {"count", "input", "params", "layers"} - set(t)
        if missing:
            raise FamilyError(f"family file {path}: template {name!r} lacks {sorted(missing)}")
    return family


def grid(template: dict) -> list[dict]:
    """Every point of a template's grid, in the fixed order."""
    names = sorted(template["params"])
    return [dict(zip(names, values)) for values in itertools.product(*(template["params"][n] for n in names))]


def substitute(node, point: dict, where: str):
    """The layer list with every "$param" replaced by its value and every {repeat: n, layers} unrolled."""
    if isinstance(node, str) and node.startswith("$"):
        if node[1:] not in point:
            raise FamilyError(f"{where}: {node} is not a parameter of the template ({sorted(point)})")
        return point[node[1:]]
    if isinstance(node, list):
        out = []
        for i, item in enumerate(node):
            if isinstance(item, dict) and "repeat" in item:
                n = substitute(item["repeat"], point, f"{where}[{i}].repeat")
                for _ in range(int(n)):
                    out += substitute(item["layers"], point, f"{where}[{i}].layers")
            else:
                out.append(substitute(item, point, f"{where}[{i}]"))
        return out
    if isinstance(node, dict):
        return {k: substitute(v, point, f"{where}.{k}") for k, v in node.items()}
    return node


def variant_name(template: str, point: dict) -> str:
    return template + "_" + "_".join(f"{k}{point[k]}" for k in sorted(point))


def sample(family: dict) -> list[dict]:
    """The family's variants: {name, template, params, config} with config a front-end config (YAML-ready)."""
    out = []
    for tname, t in family["templates"].items():
        points = grid(t)
        if int(t["count"]) > len(points):
            raise FamilyError(f"family {family['name']!r}: template {tname!r} asks for {t['count']} variants of a "
                              f"grid of {len(points)}")
        for point in random.Random(f"{family['seed']}:{tname}").sample(points, int(t["count"])):
            out.append({"name": variant_name(tname, point), "template": tname, "params": point,
                        "config": variant_config(tname, t, point, "family")})
    return out


def variant_config(tname: str, template: dict, point: dict, prefix: str) -> dict:
    """The front-end config (YAML-ready) of one point of a template, named <prefix>/<variant name>; nf (the
    width) is the point's 'nf', or 32 where the template has none, and the large width 8 times it."""
    layers = substitute(copy.deepcopy(template["layers"]), point, f"{tname}.layers")
    nf = int(point.get("nf", 32))
    return {"name": f"{prefix}/{variant_name(tname, point)}",
            "model": {"_target_": "elmarc.frontends.declarative.Declared", "input": template["input"],
                      "layers": _with_nf(layers, point.get("nf"))},
            "widths": {"small": nf, "large": 8 * nf},
            "batch_size": {"small": 16, "large": 4}, "gpu_batch_size": {"small": 64, "large": 16}}


def interleaved(variants: list[dict]) -> list[dict]:
    """Round-robin over the templates (each template's first variant, then each one's second, ...): a run in this
    order that stops early has trained some of every template."""
    by_template: dict[str, list[dict]] = {}
    for v in variants:
        by_template.setdefault(v["template"], []).append(v)
    rounds = max(len(vs) for vs in by_template.values())
    return [vs[i] for i in range(rounds) for vs in by_template.values() if i < len(vs)]


def _with_nf(layers, nf):
    """Filter counts equal to the nf parameter written as 'nf', so the large width scales them."""
    if nf is None:
        return layers
    return [{**layer, "filters": "nf"} if isinstance(layer, dict) and layer.get("filters") == nf else layer for layer in layers]


def header(family: dict, source: str) -> str:
    return (f"# Variant of the family {family['name']!r} (seed {family['seed']}), written by\n"
            f"# `python -m elmarc.frontends.family write {source}`: edit the family file, not this one.\n")


def write(family: dict, out_dir: Path = OUT, source: str = "") -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for v in sample(family):
        path = out_dir / f"{v['name']}.yaml"
        text = header(family, source) + f"# template {v['template']}, {v['params']}\n" + yaml.safe_dump(
            v["config"], sort_keys=False, default_flow_style=None, width=120)
        path.write_text(text)
        paths.append(path)
    return paths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m elmarc.frontends.family", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["write", "list"])
    parser.add_argument("family", nargs="?", default=str(DEFAULT))
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--interleave", action="store_true", help="list: round-robin over the templates")
    args = parser.parse_args(argv)
    try:
        family = load(args.family)
        if args.command == "list":
            variants = sample(family)
            for v in interleaved(variants) if args.interleave else variants:
                print(f"family/{v['name']}")
        else:
            source = Path(args.family).resolve()
            shown = source.relative_to(CONF.parents[1]) if source.is_relative_to(CONF.parents[1]) else source
            for p in write(family, Path(args.out), str(shown)):
                print(p)
    except FamilyError as exc:
        print(f"elmarc: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
