"""One module per `emosplat` subcommand.

Each module has `HELP` (one line), `add_arguments(parser)` and `run(args) -> int`.
`emo_backend.cli` lists them; nothing heavy is imported until a command runs.
"""
