"""The ``[qr]`` section: whether this terminal takes electronic-card codes (docs/qr.md).

Off by default: a site turns it on where holders show codes, once HQ sends their phones' keys.
The reader's own keys (``driver``, the scanner's port, ...) are the driver's settings
(``drivers.qr.settings``), which this section extends;
``skew_seconds`` is the one judgment a site may tune, how far phone and terminal clocks may
disagree before a code counts as not yet issued or already expired.
"""

from pydantic import Field

from drivers.qr.settings import QrSettings
from models.qr import DEFAULT_SKEW_S


class QrSection(QrSettings):
    """Electronic-card QR codes (电子卡): a holder's phone shows a signed code instead of a card."""

    enabled: bool = Field(
        False,
        description="Take electronic-card codes: open the QR reader and decide each code shown "
        "like a card tap (judged on the holder's standing, so a holder whose card was reported "
        "lost still gets in with the phone).",
    )
    skew_seconds: int = Field(
        DEFAULT_SKEW_S,
        ge=0,
        le=60,
        description="How far the phone's clock and this terminal's may disagree: a code is "
        "taken from skew_seconds before it was issued until skew_seconds after it expires "
        "(codes live at most 60 s).",
    )
