"""An outsider's attack kit against a spore swarm run, written from docs/protocol.md.

`client` speaks the store service's HTTP protocol (section 2) directly, so that
requests can be bent in ways the package's own client never would; `swarm`
reads the run (manifest, records, updates) and builds valid signed updates
with the package's public building blocks; `attacks` holds one function per
attack; `attacker` is the process a test starts next to a real network.
"""
