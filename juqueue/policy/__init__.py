"""JuQueue's decisions, pure: plain data in, a decision out, `now` passed in; no I/O, no clock.

The controller (`juqueue/controller/`) and the simulator (`juqueue/simulate/`) gather state, call
these, and carry out what they return, so both decide the same way and every rule can be
unit-tested and property-checked alone.

Which module decides what:
- scaling: how many nodes a cluster needs, which idle nodes to release (`scaling.py`); demand in
  slots and whether a k-slot run fits a node at all (`slot_demand.py`).
- queue order: which ready run starts first (priority, then longest known duration first, then
  queued time, then definition order: `queue_order.py`).
- placement: which slot indices of which node each queued run gets (`slot_placement.py`); which
  GPUs and CPUs a slot gets is the worker's (`juqueue.workers.slots`).
- consolidation: which surplus nodes to release or empty, and where their runs move
  (`consolidation.py`, over the snapshot in `consolidation_model.py`); what a move costs and saves
  (`consolidation_cost.py`); the surplus found without ranking every node (`consolidation_rank.py`);
  why each node is surplus or kept, in words (`consolidation_reasons.py`).
- wall time: which nodes get a replacement job before their wall-time warning (`replacement.py`).
- budgets: whether a node may start under the node-hour caps (`budget.py`).
- durations: a run's expected duration, one definition for every feature that weighs it
  (`duration.py`).
- outcomes: what an ended attempt means for its run, and whether a run's dependencies let it
  start (`outcome.py`).
"""
