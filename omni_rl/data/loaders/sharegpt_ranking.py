"""LLaMA-Factory sharegpt ranking format (used by Omni-RewardData).

`conversations` (from/value or role/content turns ending with the user), `chosen`/`rejected` (a turn
or a string), optional `system`, and `images|videos|audios` lists matching the `<image>`/... placeholders.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from omni_rl.data.loaders.base import Loader, check_task, need, register
from omni_rl.data.schema import DataError, Media, PreferencePair, Response

_USER = {"human", "user"}
_ASSISTANT = {"gpt", "assistant", "model"}


def _turn(turn: Any, rid: str, fld: str) -> tuple[str, str]:
    """(role, text) from a sharegpt or OpenAI-style turn."""
    if isinstance(turn, str):
        return "assistant", turn
    if not isinstance(turn, dict):
        raise DataError(rid, fld, f"expected a turn object, got {type(turn).__name__}")
    role = str(turn.get("from", turn.get("role", ""))).lower()
    text = turn.get("value", turn.get("content"))
    if not isinstance(text, str):
        raise DataError(rid, fld, "turn has no text (`value`/`content`)")
    return role, text


def render_conversation(turns: list[Any], rid: str) -> tuple[str, str | None]:
    """Prompt text (the last user turn, with earlier turns as labelled context) and a system turn."""
    if not isinstance(turns, list) or not turns:
        raise DataError(rid, "conversations", "expected a non-empty list of turns")
    parsed = [_turn(t, rid, f"conversations[{i}]") for i, t in enumerate(turns)]
    system = next((t for r, t in parsed if r == "system"), None)
    parsed = [(r, t) for r, t in parsed if r != "system"]
    if not parsed or parsed[-1][0] not in _USER:
        raise DataError(rid, "conversations", "the last turn must be from the user (human)")
    if len(parsed) == 1:
        return parsed[0][1], system
    lines = [f"{'User' if r in _USER else 'Assistant'}: {t}" for r, t in parsed]
    return "\n\n".join(lines), system


@register
class ShareGPTRankingLoader(Loader):
    """Task from option `task`, a `task` column, or the media lists (image -> ti2t, ...)."""

    name = "sharegpt_ranking"
    OPTIONS: ClassVar[dict[str, str]] = {
        "task": "task for every row (default: from media)",
        "system_as_criteria": "use the system turn as criteria",
    }
    description = "LLaMA-Factory sharegpt ranking / Omni-RewardData (conversations, chosen, rejected, media)"

    def convert(self, row: dict[str, Any], index: int) -> Iterable[PreferencePair]:
        """The `system` turn becomes criteria when option system_as_criteria=true, else meta."""
        rid = self.row_id(row, index)
        turns = row.get("conversations", row.get("messages"))
        if turns is None:
            raise DataError(rid, "conversations", "missing (expected `conversations` or `messages`)")
        prompt, system = render_conversation(turns, rid)
        system = row.get("system") or system
        media = Media(
            images=self.ctx.media(rid, "images", row.get("images")),
            videos=self.ctx.media(rid, "videos", row.get("videos")),
            audios=self.ctx.media(rid, "audios", row.get("audios")),
        )
        chosen = _turn(need(row, "chosen", rid), rid, "chosen")[1]
        rejected = _turn(need(row, "rejected", rid), rid, "rejected")[1]
        task = self.options.get("task") or row.get("task")
        if task:
            task = check_task(task, rid)
        else:
            task = "ti2t" if media.images else "tv2t" if media.videos else "ta2t" if media.audios else "t2t"
        as_criteria = bool(self.options.get("system_as_criteria", False))
        yield PreferencePair(
            id=rid,
            task=task,
            prompt=prompt,
            prompt_media=media,
            chosen=Response(chosen),
            rejected=Response(rejected),
            criteria=system if as_criteria and system else None,
            source=self.options.get("source_name", self.name),
            subset=str(row.get("subset") or ""),
            meta={"system": system} if system and not as_criteria else {},
        )
