"""Log processors: id tokens masked on request, secrets always dropped."""

from __future__ import annotations

from typing import Any

import pytest

from csms.telemetry.log import mask_id_tokens, mask_token


class TestMaskIdTokens:
    @pytest.mark.parametrize(
        ("token", "masked"),
        [("04A1B2C3D4E5", "********D4E5"), ("ABCDE", "*BCDE"), ("ABCD", "****"), ("", "")],
    )
    def test_keeps_the_last_four_characters(self, token: str, masked: str) -> None:
        """Enough to tell cards apart, not enough to clone one; short ones vanish."""
        assert mask_token(token) == masked

    def test_masks_token_keys_at_any_depth(self) -> None:
        """A logged payload's idTag / idToken.idToken is masked; other keys are not."""
        event: dict[str, Any] = {
            "event": "call_refused",
            "id_token": "04A1B2C3D4E5",
            "station_id": "CP-1",
            "payload": {"idToken": {"idToken": "DEADBEEF01", "type": "ISO14443"}},
            "batch": [{"idTag": "CAFEBABE99"}],
        }
        masked = mask_id_tokens(None, "info", event)
        assert masked["id_token"] == "********D4E5"
        assert masked["station_id"] == "CP-1"
        assert masked["payload"]["idToken"] == {"idToken": "******EF01", "type": "ISO14443"}
        assert masked["batch"] == [{"idTag": "******BE99"}]
