"""`juqueue simulate`: price a sweep per policy before spending an hour of it.

A discrete-event simulation of one cluster under the controller's own policy functions
(`juqueue.policy`). The pure model: `distributions` (duration and wait strings), `workload`
(runs, cluster conditions), `original` (0.0.15's scale-in rule), `engine` (the simulation),
`report` (the table and the JSON). Reading def dirs, work dirs and CSV files is in `sources`,
drawing the plot in `plot`.
"""
