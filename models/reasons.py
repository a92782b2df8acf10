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
    CARD_SPEND_ONLY_ENDED = "card_spend_only_ended"
    CARD_MISMATCH = "card_mismatch"
    CARD_CLASS_MISMATCH = "card_class_mismatch"  # the class byte on the card is not the registry's
    CARD_ISSUER_UNKNOWN = "card_issuer_unknown"  # issued by someone other than this site's issuer
    CARD_KEY_UNKNOWN = "card_key_unknown"  # the card has no key of the id asked for (6A 88)
    HOLDER_UNKNOWN = "holder_unknown"
    HOLDER_INACTIVE = "holder_inactive"
    NO_ACCESS = "no_access"
    OUTSIDE_SCHEDULE = "outside_schedule"
    PASSAGE_CONFIRMED = "passage_confirmed"
    PASSAGE_TIMEOUT = "passage_timeout"
    PASSAGE_UNKNOWN = "passage_unknown"  # the daemon stopped while the gate was open
    GATE_FAULT = "gate_fault"
    ANTI_PASSBACK = "anti_passback"
    REMOTE_OPEN = "remote_open"
    DOOR_LOCKED = "door_locked"  # lockdown ordered by HQ: nobody passes
    FREE_PASSAGE = "free_passage"  # evacuation ordered by HQ: the gate stands open
    SERVICE_NOT_ALLOWED = "service_not_allowed"
    CANTEEN_NOT_ALLOWED = "canteen_not_allowed"
    OUTSIDE_MEAL_PERIOD = "outside_meal_period"
    NO_PRICE = "no_price"
    AMOUNT_INVALID = "amount_invalid"
    AMOUNT_REQUIRED = "amount_required"  # a cashier-priced sale tapped before the amount: no record
    DUPLICATE_TAP = "duplicate_tap"
    OVER_TX_LIMIT = "over_tx_limit"
    OVER_DAY_LIMIT = "over_day_limit"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    OFFLINE_LIMIT_CARD = "offline_limit_card"
    OFFLINE_LIMIT_TERMINAL = "offline_limit_terminal"
    PIN_REQUIRED = "pin_required"
    PAY_CONFIRM_REQUIRED = "pay_confirm_required"  # face pay asks before charging: no record
    PIN_WRONG = "pin_wrong"
    PIN_LOCKED = "pin_locked"
    CANCELLED_BY_USER = "cancelled_by_user"
    CORRECTION_NOT_AUTHORISED = "correction_not_authorised"
    CORRECTION_NOT_FOUND = "correction_not_found"
    CORRECTION_EXCEEDS = "correction_exceeds"
    FACE_MISMATCH = "face_mismatch"
    FACE_REQUIRED = "face_required"
    FACE_NOT_LIVE = "face_not_live"
    FACE_NOT_ENROLLED = "face_not_enrolled"
    FACE_UNKNOWN = "face_unknown"
    FACE_UNAVAILABLE = "face_unavailable"
    QR_INVALID = "qr_invalid"  # not a genuine v1 code: malformed, bad signature, from the future
    QR_EXPIRED = "qr_expired"
    QR_REPLAYED = "qr_replayed"  # a code already accepted here, shown again
    QR_UNKNOWN_KEY = "qr_unknown_key"  # no such holder or key id (a revoked phone, most often)


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
    Reason.CARD_SPEND_ONLY_ENDED: ("余额消费期已满，请到卡务中心", "Spend-only period has ended"),
    Reason.CARD_MISMATCH: ("卡片信息与登记不符，请到卡务中心", "Card data differs from registry"),
    Reason.CARD_CLASS_MISMATCH: (
        "卡类与登记不符，请到卡务中心",
        "Card class differs from registry",
    ),
    Reason.CARD_ISSUER_UNKNOWN: ("非本系统发行的卡", "Card not issued for this site"),
    Reason.CARD_KEY_UNKNOWN: (
        "卡片密钥版本不符，请到卡务中心",
        "Card key not accepted: see the office",
    ),
    Reason.HOLDER_UNKNOWN: ("无此持卡人", "Card holder not registered"),
    Reason.HOLDER_INACTIVE: ("持卡人已停用", "Card holder not active"),
    Reason.NO_ACCESS: ("无此门禁权限", "No access to this door"),
    Reason.OUTSIDE_SCHEDULE: ("不在通行时段", "Outside permitted hours"),
    Reason.PASSAGE_CONFIRMED: ("已通行", "Passed"),
    Reason.PASSAGE_TIMEOUT: ("未通行", "Not passed"),
    Reason.PASSAGE_UNKNOWN: ("通行结果未知", "Passage outcome unknown"),
    Reason.GATE_FAULT: ("闸机故障，请联系管理员", "Gate did not open"),
    Reason.ANTI_PASSBACK: ("未刷卡出门，禁止重复进入", "No exit recorded since the last entry"),
    Reason.REMOTE_OPEN: ("远程开门", "Opened remotely"),
    Reason.DOOR_LOCKED: ("通道已锁闭", "Entrance locked"),
    Reason.FREE_PASSAGE: ("紧急疏散，请直接通行", "Free passage: walk through"),
    Reason.SERVICE_NOT_ALLOWED: ("无此消费权限", "Card not enabled for this service"),
    Reason.CANTEEN_NOT_ALLOWED: ("此卡不能在本餐厅使用", "Card not valid in this canteen"),
    Reason.OUTSIDE_MEAL_PERIOD: ("非营业时段", "Outside meal hours"),
    Reason.NO_PRICE: ("未设置价格，请联系管理员", "No price set for this meal"),
    Reason.AMOUNT_INVALID: ("金额无效", "Invalid amount"),
    Reason.AMOUNT_REQUIRED: ("请先输入金额", "Enter the amount first"),
    Reason.DUPLICATE_TAP: ("刚刚已扣款，确认再次消费？", "Just charged: confirm to pay again"),
    Reason.OVER_TX_LIMIT: ("超过单笔限额", "Over the per-payment limit"),
    Reason.OVER_DAY_LIMIT: ("超过当日限额", "Over the daily limit"),
    Reason.INSUFFICIENT_BALANCE: ("余额不足", "Insufficient balance"),
    Reason.OFFLINE_LIMIT_CARD: ("脱机消费已达上限", "Offline limit for this card reached"),
    Reason.OFFLINE_LIMIT_TERMINAL: ("终端脱机额度已满", "Offline limit of this terminal reached"),
    Reason.PIN_REQUIRED: ("请输入密码", "Enter PIN"),
    Reason.PAY_CONFIRM_REQUIRED: ("确认支付？", "OK to pay"),
    Reason.PIN_WRONG: ("密码错误", "Wrong PIN"),
    Reason.PIN_LOCKED: ("密码错误次数过多，已锁定", "PIN locked after too many failures"),
    Reason.CANCELLED_BY_USER: ("交易已取消", "Cancelled"),
    Reason.CORRECTION_NOT_AUTHORISED: ("无纠错权限", "Not authorised to correct"),
    Reason.CORRECTION_NOT_FOUND: ("原交易不存在", "Original payment not found"),
    Reason.CORRECTION_EXCEEDS: ("纠错金额超过原交易", "Correction exceeds the payment"),
    Reason.FACE_MISMATCH: ("人脸与持卡人不符", "Face does not match the card holder"),
    Reason.FACE_REQUIRED: ("请正对摄像头刷脸", "Face check required: look at the camera"),
    Reason.FACE_NOT_LIVE: ("活体检测未通过", "Liveness check failed"),
    Reason.FACE_NOT_ENROLLED: ("未登记人脸，请到卡务中心", "No face enrolled: see the card office"),
    Reason.FACE_UNKNOWN: ("未识别到登记人员", "Face not recognised"),
    Reason.FACE_UNAVAILABLE: ("人脸识别暂不可用，请刷卡", "Face check unavailable: use your card"),
    Reason.QR_INVALID: ("无效二维码", "Code not valid"),
    Reason.QR_EXPIRED: ("二维码已过期，请刷新", "Code expired: refresh it"),
    Reason.QR_REPLAYED: ("二维码已使用，请刷新", "Code already used: refresh it"),
    Reason.QR_UNKNOWN_KEY: ("电子卡未登记或已停用", "Electronic card not registered or revoked"),
}


def message_zh(reason: Reason) -> str:
    """Short Chinese text for the display."""
    return _MESSAGES[reason][0]


def message_en(reason: Reason) -> str:
    """Short English text for logs and the diag CLI."""
    return _MESSAGES[reason][1]
