"""Adaptive Cards for Switchboard: templates bound to session metadata, the bot's own cards, and
the checks that keep every card within what Teams renders (schema 1.5, 28 KB)."""

from cards.binding import TemplateError, bind, bind_text
from cards.builders import (
    CARD_VERSION,
    chosen_card,
    help_card,
    menu_card,
    question_card,
    text_card,
)
from cards.expressions import Expression, ExpressionError, format_value, is_true, logic_true, parse
from cards.schema import (
    CARD_CONTENT_TYPE,
    MAX_CARD_BYTES,
    attachment,
    card_size,
    validate_card,
)
from cards.template_checks import check_template, template_expressions
from cards.templates import (
    BUILTIN_TEMPLATES,
    builtin_template,
    load_template,
    parse_template,
    validate_template,
)
from cards.text import card_text

__all__ = [
    "BUILTIN_TEMPLATES",
    "CARD_CONTENT_TYPE",
    "CARD_VERSION",
    "MAX_CARD_BYTES",
    "Expression",
    "ExpressionError",
    "TemplateError",
    "attachment",
    "bind",
    "bind_text",
    "builtin_template",
    "card_size",
    "card_text",
    "check_template",
    "chosen_card",
    "format_value",
    "help_card",
    "is_true",
    "load_template",
    "logic_true",
    "menu_card",
    "parse",
    "parse_template",
    "question_card",
    "template_expressions",
    "text_card",
    "validate_card",
    "validate_template",
]
