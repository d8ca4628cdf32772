"""The packaged Hydra configs (a package, so that Hydra finds them as pkg://elmarc.conf)."""
