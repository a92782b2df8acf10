"""The ``[privacy]`` section (docs/privacy.md).

What a terminal keeps is decided by its role and configuration (``terminal.store.keeping``);
the two choices a site makes on purpose are here: full names instead of the masked form, and
which master key of the key store PIN hashes are sealed with (``terminal.privacy`` derives it).
"""

from pydantic import Field

from models.settings import Section


class PrivacySection(Section):
    """What this terminal keeps of holders' personal data beyond what its role needs."""

    full_names: bool = Field(
        False,
        description="Keep holders' names in full. Off: the store keeps each name as the display "
        "shows it (family name only, 张*), which is all the customer display and diag show; "
        "a site that needs full names on the terminal sets this on purpose.",
    )
    pin_key_id: int | None = Field(
        None,
        ge=0,
        le=255,
        description="Master key id of the reader's key store (PSAM or key file) that PIN hashes "
        "are sealed with, so that the database alone allows no offline search of PINs; empty: "
        "reader.key_id. Needs a PC/SC reader in cpu mode. Changing it drops the sealed hashes "
        "until HQ's snapshot brings them again.",
    )
