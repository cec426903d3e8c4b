"""`juqueue simulate`: price a sweep per policy before spending an hour of it.

A discrete-event simulation of one cluster under the controller's own policy functions
(`juqueue.policy`, imported, never copied). The pure model: `distributions` (duration and
wait strings), `workload` (runs, cluster conditions), `state` (nodes, runs, the ready queue,
policies, results), `report` (the table and the JSON). The simulation: `engine` (the event
loop), `events` (the event queue), `cluster` (SimCluster: nodes, slots, runs, queue waits),
`controller_step` (the controller's batch and tick: surplus, consolidation, idle stops),
`dispatch` (placement and scale-out), `ticks` (which ticks are evaluated), `original` (0.0.15's
scale-in rule and step), `replacements` (wall time without a gap), `snapshot` (the consolidation
snapshot). Input and output: `sources` (def dirs, a work dir's store, CSV
files), `inputs` (the CLI's options resolved), `plot` (matplotlib, the extra `.[plot]`); the
command is `juqueue.cli.simulate`.
"""
