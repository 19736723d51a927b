#!/usr/bin/env python3
"""Coverage-guided fuzzing of the protocol readers with atheris (pip install atheris).

    python fuzz/fuzz_protocol.py -max_total_time=60

Any exception other than RemoteProtocolError is a bug; so is a chunk over 1 MiB.
"""

import sys

import atheris

with atheris.instrument_imports():
    from work_queue.errors import RemoteProtocolError
    from work_queue.protocol import messages as m
    from work_queue.protocol.reader import NEED_DATA, Chunk, MessageReader


def test_one_input(data: bytes) -> None:
    if not data:
        return
    parse = m.parse_from_worker if data[0] & 1 else m.parse_from_manager
    split = 1 + data[0] % 17
    reader = MessageReader(parse)
    body = data[1:]
    try:
        for i in range(0, len(body), split):
            reader.feed(body[i:i + split])
            while (ev := reader.next_event()) is not NEED_DATA:
                if isinstance(ev, Chunk):
                    assert len(ev.data) <= 1 << 20
    except RemoteProtocolError:
        pass


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
