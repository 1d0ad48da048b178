"""Take credentials out of text before it is shown: a URI's userinfo and secret-looking query
parameters (MLFLOW_TRACKING_URI may well be https://user:token@host/?token=...)."""

from __future__ import annotations

import re

# scheme://userinfo@ : the userinfo runs to the last '@' before the path (it may hold a raw '@').
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)[^/?#\s]*@")
_CREDENTIAL_PARAMETERS = (
    "token|secret|password|passwd|pwd|key|signature|sig|credential|auth|session|"
    "x-amz-security-token|code"
)
_SECRET_QUERY = re.compile(
    rf"(?P<key>[?&;][^=&#\s]*(?:{_CREDENTIAL_PARAMETERS})[^=&#\s]*)=[^&#\s]*", re.IGNORECASE
)
HIDDEN = "***"


def credentials(text: str) -> str:
    """`text` with every URI's userinfo and every token-like query value replaced by ***."""
    text = _USERINFO.sub(lambda m: f"{m.group('scheme')}{HIDDEN}@", text)
    return _SECRET_QUERY.sub(lambda m: f"{m.group('key')}={HIDDEN}", text)
