"""`juqueue simulate`: price a sweep per policy before spending an hour of it.

A discrete-event simulation of one cluster under the controller's own policy functions
(`juqueue.policy`, imported, never copied). The pure model: `distributions` (duration and
wait strings), `workload` (runs, cluster conditions), `state` (nodes, runs, the ready queue,
policies, results), `original` (0.0.15's scale-in rule), `snapshot` (the consolidation
snapshot), `replacements` (wall time without a gap), `engine` (the simulation), `report`
(the table and the JSON). Input and output: `sources` (def dirs, a work dir's store, CSV
files), `inputs` (the CLI's options resolved), `plot` (matplotlib, the extra `.[plot]`); the
command is `juqueue.cli_simulate`.
"""
