"""Personal data and secrets in a real `csms serve`: id tokens masked in the
logs when asked (CSMS_LOG_MASK_TOKENS), passwords and the API token never in
the logs nor in the database file."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import aiohttp
import orjson
import pytest

from scripts.simulate import SimStation
from tests.integration.test_process import Server, run_cli, server_factory

__all__ = ["server_factory"]  # the fixture, imported for this module's tests

OLD_PASSWORD = "Old-Station-Secret-0042"
NEW_PASSWORD = "New-Station-Secret-0043"
API_TOKEN = "api-token-must-not-leak-7731"
RFID = "04A1B2C3D4E5"


def database_bytes(directory: Path) -> bytes:
    """The SQLite database, its WAL and shared-memory files, as stored."""
    files = sorted(directory.glob("csms.db*"))
    assert files
    return b"".join(p.read_bytes() for p in files)


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """SQLite: the database is one file this test can read."""
    return sqlite_url


class TestSecretsAndTokens:
    async def test_logs_mask_id_tokens_and_never_show_secrets(
        self, server_factory: object, database_url: str, tmp_path: Path
    ) -> None:
        """A session with a wrong and a right password, an RFID, a password rotation through
        the REST API and a wrong API token: the RFID shows as ********D4E5, no password, no
        API token, no Basic credentials anywhere in stdout or in the database file."""
        added = run_cli(database_url, "stations", "add", "CP-PD", "--password", OLD_PASSWORD)
        assert added.returncode == 0
        assert run_cli(database_url, "tokens", "add", RFID).returncode == 0
        server: Server = server_factory(  # type: ignore[operator]
            CSMS_UNKNOWN_STATIONS="reject",
            CSMS_API_TOKEN=API_TOKEN,
            CSMS_LOG_MASK_TOKENS="true",
            CSMS_LOG_LEVEL="debug",
        )
        with pytest.raises(Exception, match="401"):
            await SimStation(server.ws_url, "CP-PD", password="guess-" + OLD_PASSWORD).connect()
        async with SimStation(server.ws_url, "CP-PD", password=OLD_PASSWORD) as cp:
            await cp.boot()
            assert (await cp.authorize(RFID))["idTagInfo"]["status"] == "Accepted"
            tx = await cp.start(1, RFID, meter_start_wh=0)
            await cp.stop(tx, 1_000)
            async with aiohttp.ClientSession() as http:
                url = f"http://127.0.0.1:{server.http_port}/api/v1/stations/CP-PD/password"
                bearer = {"Authorization": f"Bearer {API_TOKEN}"}
                async with http.post(url, json={"password": NEW_PASSWORD}, headers=bearer) as r:
                    assert r.status == 200, await r.text()
                wrong = {"Authorization": "Bearer " + API_TOKEN[::-1]}
                async with http.get(url.rsplit("/", 1)[0], headers=wrong) as r:
                    assert r.status == 401
        async with SimStation(server.ws_url, "CP-PD", password=NEW_PASSWORD) as cp:
            await cp.heartbeat()
        code, _, out = await asyncio.to_thread(server.terminate)
        assert code == 0

        lines = [orjson.loads(line) for line in out.strip().splitlines()]
        checked = [line for line in lines if line["event"] == "id_token_checked"]
        assert checked
        assert {line["id_token"] for line in checked} == {"********D4E5"}
        secrets = [
            RFID,
            OLD_PASSWORD,
            NEW_PASSWORD,
            API_TOKEN,
            API_TOKEN[::-1],
            base64.b64encode(f"CP-PD:{OLD_PASSWORD}".encode()).decode(),
        ]
        for secret in secrets:
            assert secret not in out, secret
        stored = await asyncio.to_thread(database_bytes, tmp_path)
        for secret in (OLD_PASSWORD, NEW_PASSWORD, API_TOKEN):
            assert secret.encode() not in stored, secret

    async def test_without_the_setting_id_tokens_are_logged_in_full(
        self, server_factory: object, database_url: str
    ) -> None:
        """Masking is the operator's choice; by default support sees the whole UID."""
        assert run_cli(database_url, "tokens", "add", RFID).returncode == 0
        server: Server = server_factory(CSMS_UNKNOWN_STATIONS="accept")  # type: ignore[operator]
        async with SimStation(server.ws_url, "CP-FULL") as cp:
            await cp.authorize(RFID)
        _, _, out = await asyncio.to_thread(server.terminate)
        checked = [orjson.loads(line) for line in out.splitlines() if '"id_token_checked"' in line]
        assert checked[0]["id_token"] == RFID
