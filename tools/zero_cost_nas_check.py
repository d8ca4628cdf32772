"""elmarc's proxies against SamsungLabs/zero-cost-nas on the same small CNN, minibatch and labels.

    python tools/zero_cost_nas_check.py /path/to/zero-cost-nas      # a checkout (its foresight/ package)

Prints each proxy's value from both codes and their ratio. The reference's measures run on a plain nn.Module of
Conv2d/Linear layers (they patch those layers' forwards), so the network here is one: two convs, ReLU, a global
max-pool, a linear head, in float64. Not a test: the reference is not a dependency of elmarc.
"""
from __future__ import annotations

import sys
import types

import torch
import torch.nn.functional as F
from torch import nn


def network(seed: int = 0) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, (3, 5)), nn.ReLU(),
                         nn.AdaptiveMaxPool2d(1), nn.Flatten()).double()
    head = nn.Linear(6, 3).double()
    return body, head


def batch(seed: int = 1, n: int = 8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 12, 10, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


def reference(root: str, names: list[str]) -> dict[str, float]:
    sys.path.insert(0, root)
    from foresight.pruners import measures
    from foresight.pruners.predictive import copynet

    x, y = batch()
    out = {}
    for name in names:
        body, head = network()
        net = nn.Sequential(body, head)
        net.get_prunable_copy = types.MethodType(copynet, net)
        value = measures.calc_measure(name, net, "cpu", x, y, loss_fn=F.cross_entropy, split_data=1)
        out[name] = float(value) if name == "jacob_cov" else float(sum(torch.sum(v) for v in value))
    return out


def ours(names: list[str]) -> dict[str, float]:
    from elmarc.train import proxies

    body, head = network()
    net = proxies.ProxyNet(body, head)
    x, y = batch()
    return {name: rec["value"] for name, rec in proxies.score(net, x, y, names).items()}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    names = ["synflow", "snip", "grad_norm", "fisher", "jacob_cov"]
    ref, mine = reference(argv[0], names), ours(names)
    print(f"{'proxy':<10} {'zero-cost-nas':>16} {'elmarc':>16} {'ratio':>10}")
    for n in names:
        print(f"{n:<10} {ref[n]:>16.10g} {mine[n]:>16.10g} {mine[n] / ref[n] if ref[n] else float('nan'):>10.6g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
