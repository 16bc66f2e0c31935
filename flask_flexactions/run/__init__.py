"""How a run goes: one parsed request through one execution core, its transaction, its
safety nets (locks, keys, audit, jobs) and its answer."""
