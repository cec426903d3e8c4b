"""The API's typed shapes (FastAPI `response_model`s, so `/docs` and `/redoc` show them).

One module per resource: `nodes` (a node, node actions), `runs` (the run shape, one run with
its attempts and events, log chunks, the run verbs' answers), `status` (the overview, definition
errors), `experiments` and `usage` (node-hours), `control` (health, reload, stop), `errors` (every
error answer's `detail`). Fields keep the
names and meanings scripts already read (the README documents them).
"""
