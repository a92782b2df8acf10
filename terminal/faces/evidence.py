"""Security-event stills: the one kind of face image the terminal keeps, for a limited time."""

import logging
from dataclasses import KW_ONLY, dataclass
from datetime import datetime, timedelta

from drivers.camera.images import encode_jpeg
from drivers.camera.interface import Frame
from models.errors import DriverError, StoreError
from terminal.faces.verifier import FaceVerifier
from terminal.store.faces import FaceStore

logger = logging.getLogger(__name__)


def keep_still(
    faces: FaceStore,
    frame: Frame | None,
    *,
    kind: str,
    at: datetime,
    retention: timedelta,
    holder_id: str | None,
    tx_seq: int,
) -> None:
    """Store ``frame`` as the still of security event ``kind`` (journal record ``tx_seq``).

    Nothing is kept when there is no frame or retention is zero (the operator chose to keep
    none). A failure to keep it is logged, never raised: the decision is already durable.
    """
    if frame is None or retention <= timedelta(0):
        return
    try:
        faces.add_still(
            encode_jpeg(frame),
            kind=kind,
            at=at,
            retention=retention,
            holder_id=holder_id,
            tx_seq=tx_seq,
        )
    except (DriverError, StoreError) as exc:
        logger.error("evidence still of %s not kept: %s", kind, exc)


@dataclass(eq=False)
class FaceUse:
    """What a flow needs to use faces: the verifier, the store for stills, how long a check may
    take, and how long a security still is kept."""

    verifier: FaceVerifier
    faces: FaceStore
    _: KW_ONLY
    seconds: float
    retention: timedelta
