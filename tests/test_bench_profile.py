"""The bench's py-spy summary (bench/profile.py): each sample counts once, for the first stage any of its frames
names, so a storm sampled by the GIL says which code held the server's one core. Shares are of wall time, or with
the GIL sampled, of the samples taken (with how many a held GIL would have given beside them)."""

from __future__ import annotations

from bench import profile

MAIN = "thread (0x7f01): MainThread"
DB = "thread (0x7f02): suho-db_3"
PSYCOPG_UNDER_DJANGO = (
    f"{DB};_returning_connections.<locals>.run (suho/asyncdb.py:33);ea_resync (trading/connection.py:139);"
    "tenant_reads (suho/sql.py:140);CursorWrapper.execute (django/db/backends/utils.py:79);"
    "PostgresClientQuery.dump (psycopg/_queries.py:299)"
)
DJANGO_ONLY = (
    f"{DB};ea_resync (trading/connection.py:139);BaseDatabaseWrapper.cursor (django/db/backends/base/base.py:320)"
)
TOKEN = (
    f"{DB};ea_token_hello (trading/connection.py:110);ea_access_verify (accounts/services/ea_auth.py:60);"
    "decode (jwt/api_jwt.py:1)"
)
HANDSHAKE = f"{MAIN};HTTPChannel.lineReceived (twisted/web/http.py:2300)"
UPGRADE = (
    f"{MAIN};HTTPChannel.lineReceived (twisted/web/http.py:2300);WebRequest.process (daphne/http_protocol.py:74);"
    "WebSocketServerProtocol.processHandshake (autobahn/websocket/protocol.py:3178)"
)


def test_a_gil_summary_counts_each_sample_for_its_most_specific_storm_stage(tmp_path):
    path = tmp_path / "storm.txt"
    path.write_text(f"{PSYCOPG_UNDER_DJANGO} 30\n{DJANGO_ONLY} 10\n{TOKEN} 5\n{HANDSHAKE} 15\n{UPGRADE} 5\n")
    summary = profile.summarise(path, 1, first_stages=profile.STORM_GIL_STAGES, gil=True)
    db = summary["stages"]["suho-db"]  # with the GIL sampled: shares of the 65 samples
    assert db == {
        "psycopg: parameters bound into the SQL, the query sent, the results read": 30 / 65,
        "Django: connection and cursor wrappers": 10 / 65,
        "HELLO: the access token's signature and claims (simplejwt, PyJWT)": 5 / 65,
    }
    handshake = {
        "WebSocket handshake: the HTTP request (Twisted, daphne)": 15 / 65,
        "the WebSocket layer: handshake, framing, masking (autobahn, daphne's WebSocket protocol)": 5 / 65,
    }
    assert summary["stages"]["event loop (MainThread)"] == handshake
    assert summary["threads"] == {"suho-db": 45 / 65, "event loop (MainThread)": 20 / 65}
    text = profile.markdown(summary)
    assert summary["gil_held"] == 0.65 and "held the GIL in 65% of the samples" in text
    assert "| thread | GIL held | stage | GIL held |" in text
    assert "| suho-db | 69% | psycopg: parameters bound into the SQL, the query sent, the results read | 46% |" in text


def test_a_summary_without_the_gil_says_busy():
    summary = {"seconds": 8, "threads": {"suho-db": 0.5}, "stages": {"suho-db": {"other": 0.5}}}
    assert "| thread | busy | stage | busy |" in profile.markdown(summary)
