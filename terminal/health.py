"""The device health HQ sees in the terminal's status (PROTOCOL.md: reader, SAM, camera, gate,
disk, clock source), in words an operator can act on; asked on the sync thread, every status."""

from collections.abc import Mapping

from drivers.interfaces import Health
from terminal.config import Config, PcscReaderSection, PsamKeyStoreSection
from terminal.diag.facts import clock_facts, clock_state, disk_facts, disk_state


def status_health(
    config: Config, devices: Mapping[str, Health], *, clock_behind_journal: bool
) -> dict[str, str]:
    """``devices`` are the built ones by name (``reader`` always)."""
    states = _device_states(devices)
    states["sam"] = _sam_state(config, devices["reader"])
    states["disk"] = disk_state(disk_facts(config.terminal.state_dir))
    clock = clock_facts(config.terminal.timezone)
    states["clock"] = clock_state(clock, clock_behind_journal)
    return states


def _sam_state(config: Config, reader: Health) -> str:
    section = config.reader
    if not isinstance(section, PcscReaderSection) or section.key_store is None:
        return "none (no key store: simulated reader or UID mode)"
    if not isinstance(section.key_store, PsamKeyStoreSection):
        return "none (software key store)"
    return "unavailable" if reader.state == "key_store_unavailable" else "ok"


def _device_states(health: Mapping[str, Health]) -> dict[str, str]:
    # HQ sees the warning too: a UID-mode reader must not look like a healthy one.
    return {
        name: f"{h.state}: {h.detail}"
        if not h.ok
        else f"warning: {h.warning}"
        if h.warning
        else "ok"
        for name, h in health.items()
    }
