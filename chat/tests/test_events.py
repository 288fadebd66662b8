"""Live chat events under load: queued token deltas are merged, and nothing a reader sees changes.

The browser rebuilds a turn's text from each token frame's offset (static/js/chat.js); whatever
`coalesce` merges, the text it ends with and the order of every other frame must be the same.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from chat.events import coalesce


def _token(turn: str, offset: int, text: str) -> dict[str, Any]:
    return {"type": "chat.event", "event": {"type": "token", "turn_id": turn, "offset": offset, "text": text}}


def _other(turn: str, kind: str, seq: int) -> dict[str, Any]:
    return {"type": "chat.event", "event": {"type": kind, "turn_id": turn, "seq": seq}}


def _as_the_browser_reads(messages: list[dict[str, Any]]) -> tuple[dict[str, str], list[tuple[str, int]]]:
    """Each turn's text, and the other events in the order they came."""
    texts: dict[str, str] = {}
    others = []
    for message in messages:
        event = message["event"]
        if event["type"] == "token":
            texts[event["turn_id"]] = texts.get(event["turn_id"], "")[: event["offset"]] + event["text"]
        else:
            others.append((event["type"], event["seq"]))
    return texts, others


def test_a_burst_of_deltas_goes_out_as_one_frame_per_conversation() -> None:
    batch = [("conv.a", _token("t1", 0, "O job ")), ("conv.b", _token("t2", 0, "Three ")),
             ("conv.a", _token("t1", 6, "FP_CALC_FOLHA ")), ("conv.b", _token("t2", 6, "jobs ")),
             ("conv.a", _token("t1", 20, "abendou."))]
    groups = coalesce(batch)
    assert [m["event"]["text"] for m in groups["conv.a"]] == ["O job FP_CALC_FOLHA abendou."]
    assert [m["event"]["text"] for m in groups["conv.b"]] == ["Three jobs "]
    assert groups["conv.a"][0]["event"]["offset"] == 0


def test_deltas_never_merge_across_a_citation_or_into_another_turn() -> None:
    batch = [("conv.a", _token("t1", 0, "Falhou ")), ("conv.a", _other("t1", "citation", 7)),
             ("conv.a", _token("t1", 7, "ontem")), ("conv.a", _token("t9", 0, "Outra resposta"))]
    sends = coalesce(batch)["conv.a"]
    assert [m["event"]["type"] for m in sends] == ["token", "citation", "token", "token"]
    assert [m["event"].get("text") for m in sends] == ["Falhou ", None, "ontem", "Outra resposta"]


def test_a_replayed_delta_that_does_not_continue_the_text_stays_apart() -> None:
    batch = [("conv.a", _token("t1", 0, "abc")), ("conv.a", _token("t1", 0, "abc")), ("conv.a", _token("t1", 3, "def"))]
    sends = coalesce(batch)["conv.a"]
    assert [(m["event"]["offset"], m["event"]["text"]) for m in sends] == [(0, "abc"), (0, "abcdef")]


@st.composite
def _interleaved_turns(draw: Any) -> list[tuple[str, dict[str, Any]]]:
    """Several conversations streaming at once, with stored events between their deltas."""
    streams = []
    seq = 0
    for n in range(draw(st.integers(1, 4))):
        group, turn, offset, stream = f"conv.{n}", f"turn{n}", 0, []
        for piece in draw(st.lists(st.one_of(st.text(min_size=1, max_size=6), st.sampled_from(["tool_result", "citation"])),
                                   max_size=12)):
            if piece in ("tool_result", "citation"):
                seq += 1
                stream.append((group, _other(turn, piece, seq)))
            else:
                stream.append((group, _token(turn, offset, piece)))
                offset += len(piece)
        streams.append(stream)
    batch: list[tuple[str, dict[str, Any]]] = []
    while any(streams):
        stream = draw(st.sampled_from([s for s in streams if s]))
        batch.append(stream.pop(0))
    return batch


@settings(max_examples=200, deadline=None)
@given(_interleaved_turns())
def test_merging_changes_nothing_a_reader_sees(batch: list[tuple[str, dict[str, Any]]]) -> None:
    groups = coalesce(batch)
    for group in {g for g, _ in batch}:
        unmerged = [m for g, m in batch if g == group]
        assert _as_the_browser_reads(groups[group]) == _as_the_browser_reads(unmerged)
        assert len(groups[group]) <= len(unmerged)
