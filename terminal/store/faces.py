"""Face templates, registration photos waiting to be enrolled, and security-event stills.

Personal data rules (RULES.md, PIPL): the terminal keeps templates, not photos. A registration
photo HQ sends for on-device enrolment is deleted as soon as its template is stored (or it is
rejected); stills are kept only for security events and only until their retention ends; removing
a holder removes their templates and stills (migration 0006 does it in the same transaction as
the sync change, :meth:`FaceStore.purge_holder` does it on request).
"""

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from models.errors import StoreError
from models.matcher import Template, TemplateError
from terminal.store.store import Store

logger = logging.getLogger(__name__)

_UPSERT = (
    "INSERT INTO face_templates (holder_id, model, template, source, quality, updated) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (holder_id, model) DO UPDATE SET "
    "template = excluded.template, source = excluded.source, quality = excluded.quality, "
    "updated = excluded.updated"
)


def _stamp(at: datetime) -> str:
    return at.isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class StoredTemplate:
    holder_id: str
    template: Template
    source: str
    updated: str


@dataclass(frozen=True, slots=True)
class PendingPhoto:
    """A registration photo from HQ waiting for on-device enrolment."""

    holder_id: str
    photo: bytes


@dataclass(frozen=True, slots=True)
class Purged:
    templates: int
    stills: int
    photos: int


class FaceStore:
    """Face data in the terminal's database, through the :class:`Store`'s one connection."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """``Store.write()`` with sqlite3 errors turned into :class:`StoreError`."""
        try:
            with self.store.write() as conn:
                yield conn
        except sqlite3.Error as exc:
            raise StoreError(f"face data could not be written: {exc}") from exc

    def put_template(
        self,
        holder_id: str,
        template: Template,
        *,
        source: str,
        at: datetime,
        quality: float | None = None,
    ) -> None:
        with self._write() as conn:
            conn.execute(
                _UPSERT,
                (holder_id, template.model, template.to_bytes(), source, quality, _stamp(at)),
            )

    def get_template(self, holder_id: str, model: str) -> Template | None:
        with self.store.read() as conn:
            row = conn.execute(
                "SELECT template FROM face_templates WHERE holder_id = ? AND model = ?",
                (holder_id, model),
            ).fetchone()
        if row is None:
            return None
        return Template.from_bytes(model, bytes(row[0]))

    def templates(self, model: str) -> Iterator[StoredTemplate]:
        """Every template of ``model``; a corrupt row is logged (without its data) and skipped."""
        with self.store.read() as conn:
            rows = conn.execute(
                "SELECT holder_id, template, source, updated FROM face_templates WHERE model = ?",
                (model,),
            ).fetchall()
        for holder_id, blob, source, updated in rows:
            try:
                template = Template.from_bytes(model, bytes(blob))
            except TemplateError as exc:
                logger.error("skipping an unusable face template: %s", exc)
                continue
            yield StoredTemplate(str(holder_id), template, str(source), str(updated))

    def fingerprint(self, model: str) -> tuple[int, str]:
        """Changes whenever a template of ``model`` is added, replaced or removed (count and
        newest update), so a gallery can be reloaded only when needed."""
        with self.store.read() as conn:
            count, newest = conn.execute(
                "SELECT count(*), coalesce(max(updated), '') FROM face_templates WHERE model = ?",
                (model,),
            ).fetchone()
        return int(count), str(newest)

    def models(self) -> dict[str, int]:
        """Template counts per model id (for the diag CLI: templates nobody can use show up)."""
        with self.store.read() as conn:
            rows = conn.execute(
                "SELECT model, count(*) FROM face_templates GROUP BY model"
            ).fetchall()
        return {str(model): int(count) for model, count in rows}

    def coverage(self, model: str) -> float:
        """Share of the holders with any template who have one of ``model`` (0 with none): how
        far HQ has come in sending a new model's templates."""
        with self.store.read() as conn:
            have, everyone = conn.execute(
                "SELECT count(DISTINCT CASE WHEN model = ? THEN holder_id END), "
                "count(DISTINCT holder_id) FROM face_templates",
                (model,),
            ).fetchone()
        return int(have) / int(everyone) if everyone else 0.0

    def remove_template(self, holder_id: str, model: str | None = None) -> int:
        with self._write() as conn:
            if model is None:
                cursor = conn.execute(
                    "DELETE FROM face_templates WHERE holder_id = ?", (holder_id,)
                )
            else:
                cursor = conn.execute(
                    "DELETE FROM face_templates WHERE holder_id = ? AND model = ?",
                    (holder_id, model),
                )
            return cursor.rowcount

    def pending_photos(self, limit: int = 100) -> list[PendingPhoto]:
        with self.store.read() as conn:
            rows = conn.execute(
                "SELECT holder_id, photo FROM faces WHERE photo IS NOT NULL LIMIT ?", (limit,)
            ).fetchall()
        return [PendingPhoto(str(h), bytes(p)) for h, p in rows]

    def finish_photo(self, holder_id: str, result: Template | None, *, at: datetime) -> None:
        """Store the template computed from a pending photo (or nothing, when it was rejected)
        and delete the photo in the same transaction."""
        with self._write() as conn:
            if result is not None:
                conn.execute(
                    _UPSERT,
                    (holder_id, result.model, result.to_bytes(), "device", None, _stamp(at)),
                )
            conn.execute("UPDATE faces SET photo = NULL WHERE holder_id = ?", (holder_id,))

    def add_still(
        self,
        jpeg: bytes,
        *,
        kind: str,
        at: datetime,
        retention: timedelta,
        holder_id: str | None = None,
        tx_seq: int | None = None,
    ) -> int:
        """Keep a security-event still until ``at + retention``; returns its id. ``tx_seq`` links
        it to the security event journalled with that transaction."""
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO face_stills (event_id, holder_id, kind, at, expires, jpeg) VALUES ("
                "(SELECT max(id) FROM events WHERE tx_seq = ?), ?, ?, ?, ?, ?)",
                (tx_seq, holder_id, kind, _stamp(at), _stamp(at + retention), jpeg),
            )
            return int(cursor.lastrowid or 0)

    def still(self, still_id: int) -> tuple[int | None, bytes] | None:
        """``(event id, JPEG)`` of one still, for the diag CLI and the upload of evidence."""
        with self.store.read() as conn:
            row = conn.execute(
                "SELECT event_id, jpeg FROM face_stills WHERE id = ?", (still_id,)
            ).fetchone()
        return None if row is None else (None if row[0] is None else int(row[0]), bytes(row[1]))

    def stills(self, holder_id: str | None = None) -> list[tuple[int, str, str]]:
        """``(id, kind, at)`` of kept stills, oldest first (the images stay in the database)."""
        query = "SELECT id, kind, at FROM face_stills"
        args: tuple[str, ...] = ()
        if holder_id is not None:
            query += " WHERE holder_id = ?"
            args = (holder_id,)
        with self.store.read() as conn:
            rows = conn.execute(query + " ORDER BY at, id", args).fetchall()
        return [(int(i), str(k), str(a)) for i, k, a in rows]

    def expire_stills(self, now: datetime) -> int:
        """Delete stills whose retention has ended; returns how many."""
        with self._write() as conn:
            return conn.execute(
                "DELETE FROM face_stills WHERE expires <= ?", (_stamp(now),)
            ).rowcount

    def purge_holder(self, holder_id: str) -> Purged:
        """Delete every template, still and pending photo of ``holder_id``."""
        with self._write() as conn:
            templates = conn.execute(
                "DELETE FROM face_templates WHERE holder_id = ?", (holder_id,)
            ).rowcount
            stills = conn.execute(
                "DELETE FROM face_stills WHERE holder_id = ?", (holder_id,)
            ).rowcount
            photos = conn.execute(
                "UPDATE faces SET photo = NULL WHERE holder_id = ? AND photo IS NOT NULL",
                (holder_id,),
            ).rowcount
        return Purged(templates, stills, photos)
