"""`switchboard-admin`: the admin's command line (also `python -m admin`).

One module per command group: `config` (validate, draw), `manifest` (build, check, publish),
`simulate`, `sessions` (list, show) and `agents` (list). `admin.cli` puts them together.
"""
