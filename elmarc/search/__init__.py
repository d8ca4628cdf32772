"""The architecture search over a declared space (hydra/sweeper=search): space, sweeper, report."""
