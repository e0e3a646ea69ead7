"""The FAQ search through the real bot: the example help desk (examples/helpdesk.yaml and its
knowledge base), the real aiohttp endpoint and adapter, a local connector, both stores."""

from __future__ import annotations

from app import SESSIONS
from storage.models import SessionState
from tests.harness import texts


def first_article(text: str, titles: list[str]) -> str:
    """The title that comes first in a card's text."""
    found = sorted((text.index(t), t) for t in titles if t in text)
    assert found, text
    return found[0][1]


async def test_a_synonym_question_gets_the_right_article_first(bot, new_chat) -> None:
    chat = new_chat("Grace Hopper")
    await chat.say("hi")
    # none of the article's words but "computer": BM25 alone put "won't turn on" first
    sent = await chat.answer("my computer has become really laggy")
    faq = texts(sent)
    assert "These articles may answer your question:" in faq
    assert first_article(faq, ["Your computer is running slow", "Your laptop won't turn on",
                               "Windows keeps asking to restart for updates"]) == (
        "Your computer is running slow")
    shown = texts(await chat.say("yes"))
    assert "Glad that helped" in shown
    [session] = [s for s in await bot.app[SESSIONS].list()
                 if s.conversation_id == chat.user.conversation_id]
    assert session.state == SessionState.DEFLECTED
    assert session.metadata["Faq.ArticleId"] == "it-laptop-slow"


async def test_a_question_the_base_cannot_answer_gets_no_card(bot, new_chat) -> None:
    chat = new_chat("Alan Turing")
    await chat.say("hi")
    # BM25 alone offered "Resigning" here ("last")
    sent = await chat.answer("who won the game last night")
    shown = texts(sent)
    assert "These articles may answer your question:" not in shown
    assert "Resigning" not in shown
