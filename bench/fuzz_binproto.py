"""Coverage-guided fuzzing of binproto with atheris (libFuzzer): the long run behind the bounded fuzz tests.

    .venv/bin/pip install atheris
    .venv/bin/python bench/fuzz_binproto.py -max_total_time=300 -print_final_stats=1 [CORPUS_DIR]

Every input goes through decode(), decode_price_rows() (with and without a symbol table), decode_v1_price_records()
and from_json(); anything but ProtocolError escaping is a crash. Whatever decodes must encode back to a frame that
decodes to the same message. The golden vectors from docs/protocol.md seed the corpus. libFuzzer prints the number
of inputs tried ("#N DONE" / "stat::number_of_executed_units").
"""

import re
import sys
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

with atheris.instrument_imports():
    import binproto as bp

NAMES = {i: f"S{i}" for i in range(300)}


def seeds() -> list[bytes]:
    text = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```hex \w+\n(.*?)^```", text, flags=re.M | re.S)
    return [bytes.fromhex(" ".join(re.sub(r"^[0-9a-f]{4}:|#.*$", "", line) for line in b.splitlines())) for b in blocks]


def check(data: bytes) -> None:
    try:
        msg = bp.decode(data)
    except bp.ProtocolError:
        pass
    else:
        pad = msg.version == bp.V1 and len(data) == bp.V1_PACKET_SIZE and len(msg.ticks) < 8
        if bp.decode(bp.encode(msg, pad=pad)) != msg or bp.from_json(bp.to_json(msg)) != msg:
            raise AssertionError(f"round trip changed {msg!r}")
    for names in (None, NAMES):
        try:
            bp.decode_price_rows(data, names)
        except bp.ProtocolError:
            pass
    try:
        bp.decode_v1_price_records(data)
    except bp.ProtocolError:
        pass
    try:
        bp.from_json(data)
    except bp.ProtocolError:
        pass


def main() -> None:
    args = list(sys.argv)
    corpus = [a for a in args[1:] if not a.startswith("-")]
    if corpus:
        folder = Path(corpus[0])
        folder.mkdir(parents=True, exist_ok=True)
        for i, seed in enumerate(seeds()):
            (folder / f"golden_{i:02d}").write_bytes(seed)
    atheris.Setup(args, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
