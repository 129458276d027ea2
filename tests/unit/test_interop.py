"""The tolerance table: loading, validation, matching by vendor/model/firmware."""

from __future__ import annotations

from pathlib import Path

import pytest

from csms.core import interop
from csms.core.errors import ConfigurationError
from csms.core.interop import Tolerance


class TestLoad:
    def test_toml_and_json_read_the_same(self, tmp_path: Path) -> None:
        """Either format; globals and per-profile tolerances."""
        toml = tmp_path / "interop.toml"
        toml.write_text(
            'tolerances = ["station_id_case"]\n'
            "[[profiles]]\n"
            'name = "ACME old"\n'
            'vendor = "ACME*"\n'
            'firmware = "1.*"\n'
            'tolerances = ["timestamp_without_timezone"]\n'
        )
        json = tmp_path / "interop.json"
        json.write_text(
            '{"tolerances": ["station_id_case"], "profiles": [{"name": "ACME old",'
            ' "vendor": "ACME*", "firmware": "1.*", "tolerances": ["timestamp_without_timezone"]}]}'
        )
        assert interop.load(str(toml)) == interop.load(str(json))

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ('tolerances = ["be_lenient"]', "unknown be_lenient"),
            ('tolerances = ["missing_subprotocol"]', "CSMS_DEFAULT_SUBPROTOCOL"),
            ('[[profiles]]\nvendor = "A"\ntolerances = ["station_id_case"]', "top-level"),
            ('[[profiles]]\nvendr = "A"', "unknown keys"),
            ("colour = 1", "unknown keys"),
            ("tolerances = [", "not valid TOML"),
        ],
    )
    def test_mistakes_are_configuration_errors(
        self, tmp_path: Path, text: str, message: str
    ) -> None:
        """A typo in the table stops the start with a message naming it."""
        path = tmp_path / "interop.toml"
        path.write_text(text)
        with pytest.raises(ConfigurationError, match=message):
            interop.load(str(path))

    def test_missing_file_is_a_configuration_error(self, tmp_path: Path) -> None:
        """A wrong path names the setting."""
        with pytest.raises(ConfigurationError, match="CSMS_INTEROP_PROFILES"):
            interop.load(str(tmp_path / "nope.toml"))

    def test_empty_setting_is_strict(self) -> None:
        """No file: nothing tolerated."""
        assert interop.load("") == interop.InteropProfiles()
        assert interop.load("").for_station("ACME", "X", "1") == frozenset()


class TestMatching:
    def test_patterns_are_case_insensitive_globs_and_profiles_add_up(self) -> None:
        """Every matching profile contributes; non-matching ones do not."""
        table = interop.parse(
            {
                "tolerances": ["basic_auth_user"],
                "profiles": [
                    {"vendor": "acme*", "tolerances": ["enum_spelling"]},
                    {
                        "vendor": "ACME",
                        "model": "AC22",
                        "firmware": "2.[0-3].*",
                        "tolerances": ["timestamp_hour_offset"],
                    },
                    {"vendor": "Other", "tolerances": ["data_transfer_object_data"]},
                ],
            }
        )
        assert table.for_station("ACME", "AC22", "2.1.7") == {
            Tolerance.BASIC_AUTH_USER,
            Tolerance.ENUM_SPELLING,
            Tolerance.TIMESTAMP_HOUR_OFFSET,
        }
        assert table.for_station("Acme Corp", "AC11", "9") == {
            Tolerance.BASIC_AUTH_USER,
            Tolerance.ENUM_SPELLING,
        }
        assert table.for_station(None, None, None) == {Tolerance.BASIC_AUTH_USER}
