"""The MQTT link to headquarters (PROTOCOL.md v1, docs/protocol.md).

``envelope`` signs and checks messages; ``changes`` parses change-log entries; ``engine`` decides
what each inbound message does; ``snapshot`` packs and assembles snapshots; ``outbox`` drains
transactions; ``link`` owns the paho client; ``service`` runs them for the terminal. The store is
reached only through ``port.SyncPort`` (implemented in ``terminal.store.sync_port``). ``hq`` is
the reference HQ tool, a separate program.
"""
