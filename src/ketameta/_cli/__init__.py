"""The parts of the ``ketameta`` command; `ketameta.cli` is the entry point and re-exports them.

* `ketameta._cli.errors`: `CliError` and the one-line error and warning messages;
* `ketameta._cli.inputs`: reading and checking the effects CSV and the output options;
* `ketameta._cli.text`: the metafor-like text printed by ``pool`` and ``subgroup``;
* `ketameta._cli.files`: the ``--out`` files (CSV, Markdown, JSON) and the ``--plot`` figure;
* `ketameta._cli.commands`: the subcommands ``pool``, ``subgroup``, ``validate-data``, ``report``;
* `ketameta._cli.parser`: the argument parser, its options and help texts.

Only the standard library and `ketameta.exceptions` are imported here at module level; pandas,
the library and the review are imported inside the functions that need them.
"""
