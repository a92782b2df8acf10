"""One enum of reason codes for every decision, with the words a display or log shows.

The code (the enum value) is the stable contract with HQ and the journal; the messages are for
people and may be reworded freely.
"""

from enum import StrEnum


class Reason(StrEnum):
    """Why a decision came out the way it did. Values are stable protocol strings."""

    ALLOWED = "allowed"
    CARD_UNKNOWN = "card_unknown"
    CARD_MALFORMED = "card_malformed"
    CARD_NOT_GENUINE = "card_not_genuine"
    CARD_LOST = "card_lost"
    CARD_REPLACED = "card_replaced"
    CARD_CANCELLED = "card_cancelled"
    CARD_FROZEN = "card_frozen"
    CARD_EXPIRED = "card_expired"
    CARD_NOT_YET_VALID = "card_not_yet_valid"
    CARD_SPEND_ONLY = "card_spend_only"
    CARD_MISMATCH = "card_mismatch"
    HOLDER_UNKNOWN = "holder_unknown"
    HOLDER_INACTIVE = "holder_inactive"
    NO_ACCESS = "no_access"
    OUTSIDE_SCHEDULE = "outside_schedule"
    PASSAGE_CONFIRMED = "passage_confirmed"
    PASSAGE_TIMEOUT = "passage_timeout"
    GATE_FAULT = "gate_fault"


_MESSAGES: dict[Reason, tuple[str, str]] = {
    Reason.ALLOWED: ("请通行", "Welcome"),
    Reason.CARD_UNKNOWN: ("无效卡", "Card not recognised"),
    Reason.CARD_MALFORMED: ("卡片数据错误，请重刷", "Card data unreadable, tap again"),
    Reason.CARD_NOT_GENUINE: ("非法卡", "Card failed authentication"),
    Reason.CARD_LOST: ("此卡已挂失", "Card reported lost"),
    Reason.CARD_REPLACED: ("此卡已补办新卡，旧卡作废", "Card replaced; this card is void"),
    Reason.CARD_CANCELLED: ("此卡已注销", "Card cancelled"),
    Reason.CARD_FROZEN: ("此卡已冻结", "Card frozen"),
    Reason.CARD_EXPIRED: ("卡片已过期", "Card expired"),
    Reason.CARD_NOT_YET_VALID: ("卡片尚未生效", "Card not yet valid"),
    Reason.CARD_SPEND_ONLY: ("此卡仅限消费", "Card valid for purchases only"),
    Reason.CARD_MISMATCH: ("卡片信息与登记不符，请到卡务中心", "Card data differs from registry"),
    Reason.HOLDER_UNKNOWN: ("无此持卡人", "Card holder not registered"),
    Reason.HOLDER_INACTIVE: ("持卡人已停用", "Card holder not active"),
    Reason.NO_ACCESS: ("无此门禁权限", "No access to this door"),
    Reason.OUTSIDE_SCHEDULE: ("不在通行时段", "Outside permitted hours"),
    Reason.PASSAGE_CONFIRMED: ("已通行", "Passed"),
    Reason.PASSAGE_TIMEOUT: ("未通行", "Not passed"),
    Reason.GATE_FAULT: ("闸机故障，请联系管理员", "Gate did not open"),
}


def message_zh(reason: Reason) -> str:
    """Short Chinese text for the display."""
    return _MESSAGES[reason][0]


def message_en(reason: Reason) -> str:
    """Short English text for logs and the diag CLI."""
    return _MESSAGES[reason][1]
