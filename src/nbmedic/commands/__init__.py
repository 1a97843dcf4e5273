"""One module per subcommand; each exposes ``run_<name>(args) -> int``."""
